package mcpserver

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
)

const (
	DefaultReadBytes  = 256 << 10
	MaxReadBytes      = 4 << 20
	MaxWriteBytes     = 8 << 20
	DefaultDirEntries = 1000
	MaxDirEntries     = agentproto.MaxDirEntries
)

type ReadFileInput struct {
	Name     string `json:"name" jsonschema:"the VM's name"`
	Path     string `json:"path" jsonschema:"the file in the guest (absolute, or relative to /root)"`
	MaxBytes int    `json:"max_bytes,omitempty" jsonschema:"bytes returned at most (default 262144, at most 4194304)"`
}

type ReadFileOutput struct {
	Path          string `json:"path"`
	Content       string `json:"content"`
	Encoding      string `json:"encoding" jsonschema:"utf-8 (text) or base64 (other bytes)"`
	SizeBytes     int64  `json:"size_bytes" jsonschema:"the file's size"`
	ReturnedBytes int    `json:"returned_bytes"`
	Truncated     bool   `json:"truncated" jsonschema:"the file is longer than what was returned"`
}

type WriteFileInput struct {
	Name     string `json:"name" jsonschema:"the VM's name"`
	Path     string `json:"path" jsonschema:"the file in the guest (absolute, or relative to /root); its directory must exist"`
	Content  string `json:"content" jsonschema:"the file's content"`
	Encoding string `json:"encoding,omitempty" jsonschema:"utf-8 (default) or base64"`
	Mode     string `json:"mode,omitempty" jsonschema:"octal permissions, e.g. 0755 (default 0644)"`
}

type WriteFileOutput struct {
	Path         string `json:"path"`
	BytesWritten int64  `json:"bytes_written"`
}

type ListDirInput struct {
	Name       string `json:"name" jsonschema:"the VM's name"`
	Path       string `json:"path" jsonschema:"the directory in the guest (absolute, or relative to /root)"`
	MaxEntries int    `json:"max_entries,omitempty" jsonschema:"entries returned at most (default 1000, at most 10000)"`
}

type ListDirOutput struct {
	Path      string     `json:"path"`
	Entries   []DirEntry `json:"entries" jsonschema:"sorted by name"`
	Truncated bool       `json:"truncated" jsonschema:"the directory has more entries than returned"`
}

type DirEntry struct {
	Name      string `json:"name"`
	Type      string `json:"type" jsonschema:"file, dir, symlink or other"`
	SizeBytes int64  `json:"size_bytes"`
	Mode      string `json:"mode" jsonschema:"octal permissions"`
}

func (s *Server) readFile(ctx context.Context, _ *mcp.CallToolRequest, in ReadFileInput) (ReadFileOutput, error) {
	if err := s.allowed(in.Name); err != nil {
		return ReadFileOutput{}, err
	}
	if in.Path == "" {
		return ReadFileOutput{}, api.NewError(api.CodeInvalidArgument, "path is empty", "e.g. /etc/os-release")
	}
	max := in.MaxBytes
	if max < 0 || max > MaxReadBytes {
		return ReadFileOutput{}, api.NewError(api.CodeInvalidArgument,
			fmt.Sprintf("max_bytes %d: must be between 1 and %d", max, MaxReadBytes), "omit it for the default")
	}
	if max == 0 {
		max = DefaultReadBytes
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	got := make(chan error, 1)
	go func() {
		err := s.agent(in.Name).Get(ctx, in.Path, false, pw)
		pw.CloseWithError(err)
		got <- err
	}()
	out, err := readFirstFile(pr, in.Path, max)
	// Enough was read: stop the guest's stream (the rest of a long file).
	pr.CloseWithError(errors.New("read enough"))
	cancel()
	gerr := <-got
	if err != nil {
		// The guest's error says more than a cut archive does.
		if gerr != nil && !strings.Contains(gerr.Error(), "read enough") && !errors.Is(gerr, context.Canceled) {
			return ReadFileOutput{}, gerr
		}
		return ReadFileOutput{}, err
	}
	return out, nil
}

// readFirstFile reads the single entry of the tar vm cp's Get sends for a
// file, keeping at most max bytes.
func readFirstFile(r io.Reader, p string, max int) (ReadFileOutput, error) {
	tr := tar.NewReader(r)
	h, err := tr.Next()
	if err != nil {
		return ReadFileOutput{}, fmt.Errorf("read %s from the guest: %w", p, err)
	}
	switch h.Typeflag {
	case tar.TypeReg:
	case tar.TypeDir:
		return ReadFileOutput{}, api.NewError(api.CodeInvalidArgument, p+" is a directory", "list it with vm_list_dir")
	case tar.TypeSymlink:
		return ReadFileOutput{}, api.NewError(api.CodeInvalidArgument,
			fmt.Sprintf("%s is a symbolic link to %s", p, bound(h.Linkname, 1024)), "read the file it points to")
	default:
		return ReadFileOutput{}, api.NewError(api.CodeInvalidArgument, p+" is not a regular file", "")
	}
	data, err := io.ReadAll(io.LimitReader(tr, int64(max)))
	if err != nil {
		return ReadFileOutput{}, fmt.Errorf("read %s from the guest: %w", p, err)
	}
	out := ReadFileOutput{Path: p, SizeBytes: h.Size, ReturnedBytes: len(data), Truncated: h.Size > int64(len(data))}
	// A cut may split the last UTF-8 sequence: text is still text.
	if text := trimPartialRune(data, out.Truncated); utf8.Valid(text) {
		out.Content, out.Encoding, out.ReturnedBytes = string(text), "utf-8", len(text)
	} else {
		out.Content, out.Encoding = base64.StdEncoding.EncodeToString(data), "base64"
	}
	return out, nil
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of a cut.
func trimPartialRune(b []byte, cut bool) []byte {
	if !cut {
		return b
	}
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}

func (s *Server) writeFile(ctx context.Context, _ *mcp.CallToolRequest, in WriteFileInput) (WriteFileOutput, error) {
	if err := s.allowed(in.Name); err != nil {
		return WriteFileOutput{}, err
	}
	data, mode, err := writeContent(in)
	if err != nil {
		return WriteFileOutput{}, err
	}
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	base := path.Base(in.Path)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: base, Mode: mode, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
		return WriteFileOutput{}, err
	}
	tw.Write(data)
	if err := tw.Close(); err != nil {
		return WriteFileOutput{}, err
	}
	res, err := s.agent(in.Name).Put(ctx, path.Dir(in.Path), "", &tarball)
	if err != nil {
		return WriteFileOutput{}, err
	}
	return WriteFileOutput{Path: in.Path, BytesWritten: res.Bytes}, nil
}

// writeContent checks vm_write_file's input and decodes its content.
func writeContent(in WriteFileInput) ([]byte, int64, error) {
	if in.Path == "" || strings.HasSuffix(in.Path, "/") || path.Base(in.Path) == "." || path.Base(in.Path) == ".." {
		return nil, 0, api.NewError(api.CodeInvalidArgument, fmt.Sprintf("path %q does not name a file", in.Path), "e.g. /root/notes.txt")
	}
	var data []byte
	switch in.Encoding {
	case "", "utf-8":
		data = []byte(in.Content)
	case "base64":
		var err error
		if data, err = base64.StdEncoding.DecodeString(in.Content); err != nil {
			return nil, 0, api.NewError(api.CodeInvalidArgument, "content is not base64: "+err.Error(), "")
		}
	default:
		return nil, 0, api.NewError(api.CodeInvalidArgument, fmt.Sprintf("encoding %q: use utf-8 or base64", in.Encoding), "")
	}
	if len(data) > MaxWriteBytes {
		return nil, 0, api.NewError(api.CodeInvalidArgument,
			fmt.Sprintf("content is %d bytes: vm_write_file writes at most %d", len(data), MaxWriteBytes), "copy big files with banger vm cp")
	}
	mode := int64(0o644)
	if in.Mode != "" {
		m, err := strconv.ParseUint(in.Mode, 8, 32)
		if err != nil || m > 0o7777 {
			return nil, 0, api.NewError(api.CodeInvalidArgument, fmt.Sprintf("mode %q is not octal permissions", in.Mode), "e.g. 0644 or 0755")
		}
		mode = int64(m)
	}
	return data, mode, nil
}

// listDir asks the agent for the directory's entries; an agent from
// before GET /v1/dir (an image built before it) gets GNU find run instead.
func (s *Server) listDir(ctx context.Context, _ *mcp.CallToolRequest, in ListDirInput) (ListDirOutput, error) {
	if err := s.allowed(in.Name); err != nil {
		return ListDirOutput{}, err
	}
	if in.Path == "" {
		return ListDirOutput{}, api.NewError(api.CodeInvalidArgument, "path is empty", "e.g. /root")
	}
	max := in.MaxEntries
	if max < 0 || max > MaxDirEntries {
		return ListDirOutput{}, api.NewError(api.CodeInvalidArgument,
			fmt.Sprintf("max_entries %d: must be between 1 and %d", max, MaxDirEntries), "omit it for the default")
	}
	if max == 0 {
		max = DefaultDirEntries
	}
	res, err := s.agent(in.Name).ReadDir(ctx, in.Path, max)
	if agentclient.IsTooOld(err) {
		return s.listDirWithFind(ctx, in, max)
	}
	if err != nil {
		return ListDirOutput{}, err
	}
	out := ListDirOutput{Path: in.Path, Entries: []DirEntry{}, Truncated: res.Truncated}
	for _, e := range res.Entries {
		out.Entries = append(out.Entries, DirEntry{Name: bound(e.Name, 4096), Type: e.Type, SizeBytes: e.Size, Mode: fmt.Sprintf("0%o", e.Mode&0o7777)})
	}
	return out, nil
}

// listDirWithFind runs GNU find in the guest, for agents without
// GET /v1/dir: one NUL-terminated record per entry.
func (s *Server) listDirWithFind(ctx context.Context, in ListDirInput, max int) (ListDirOutput, error) {
	req := agentproto.ExecRequest{Argv: []string{"find", "-H", in.Path, "-mindepth", "1", "-maxdepth", "1",
		"-printf", `%y %m %s %P\0`}, TimeoutMillis: 60_000}
	res, err := runExec(ctx, s.agent(in.Name), req, "", 8<<20)
	if err != nil {
		return ListDirOutput{}, err
	}
	if res.ExitCode != 0 {
		return ListDirOutput{}, api.NewError(api.CodeInvalidArgument,
			fmt.Sprintf("list %s: %s", in.Path, strings.TrimSpace(bound(res.Stderr, 1024))), "")
	}
	entries, truncated := parseFind(res.Stdout, max)
	return ListDirOutput{Path: in.Path, Entries: entries, Truncated: truncated || res.StdoutTruncated}, nil
}

// parseFind reads find's "%y %m %s %P\0" records, sorted by name, at most
// max of them.
func parseFind(out string, max int) ([]DirEntry, bool) {
	entries := []DirEntry{}
	for _, rec := range strings.Split(out, "\x00") {
		f := strings.SplitN(rec, " ", 4)
		if len(f) != 4 || f[3] == "" {
			continue
		}
		size, _ := strconv.ParseInt(f[2], 10, 64)
		typ := map[string]string{"f": "file", "d": "dir", "l": "symlink"}[f[0]]
		if typ == "" {
			typ = "other"
		}
		entries = append(entries, DirEntry{Name: bound(f[3], 4096), Type: typ, SizeBytes: size, Mode: "0" + f[1]})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	if len(entries) > max {
		return entries[:max], true
	}
	return entries, false
}
