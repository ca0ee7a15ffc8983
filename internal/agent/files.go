package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/splice"
	"github.com/banger-dev/banger/internal/tarstream"
)

// guestPath takes the path query parameter: absolute, or relative to the
// work directory (/root).
func (h *handler) guestPath(w http.ResponseWriter, r *http.Request, key string) (string, bool) {
	p := r.URL.Query().Get(key)
	if p == "" {
		writeError(w, http.StatusBadRequest, api.NewError(api.CodeInvalidArgument, "missing "+key+" parameter", ""))
		return "", false
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(h.opts.WorkDir, p)
	}
	return filepath.Clean(p), true
}

// getPath takes a GET request's path parameter (guestPath), answering
// any other method or a missing path.
func (h *handler) getPath(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !requireMethod(w, r, http.MethodGet) {
		return "", false
	}
	return h.guestPath(w, r, "path")
}

// stat answers GET /v1/stat?path=P.
func (h *handler) stat(w http.ResponseWriter, r *http.Request) {
	p, ok := h.getPath(w, r)
	if !ok {
		return
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		writeJSON(w, http.StatusOK, agentproto.Stat{})
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, api.NewError(api.CodeInvalidArgument, err.Error(), ""))
		return
	}
	writeJSON(w, http.StatusOK, agentproto.Stat{Exists: true, IsDir: fi.IsDir(), Mode: uint32(fi.Mode()), Size: fi.Size()})
}

// dir answers GET /v1/dir?path=P&max=N: P's entries by name (read
// without following symlinks), the first N of them.
func (h *handler) dir(w http.ResponseWriter, r *http.Request) {
	p, ok := h.getPath(w, r)
	if !ok {
		return
	}
	max, err := strconv.Atoi(r.URL.Query().Get("max"))
	if err != nil || max < 1 || max > agentproto.MaxDirEntries {
		writeError(w, http.StatusBadRequest, api.NewError(api.CodeInvalidArgument,
			fmt.Sprintf("max %q: must be between 1 and %d", r.URL.Query().Get("max"), agentproto.MaxDirEntries), ""))
		return
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		writeError(w, http.StatusNotFound, api.NewError(api.CodeNotFound, fmt.Sprintf("%s does not exist in the guest", p), ""))
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, api.NewError(api.CodeInvalidArgument, err.Error(), ""))
		return
	}
	defer f.Close()
	// Names only, sorted, then the first max looked at: a huge directory
	// costs its names, not a stat each.
	names, err := f.Readdirnames(-1)
	if errors.Is(err, syscall.ENOTDIR) {
		writeError(w, http.StatusBadRequest, api.NewError(api.CodeInvalidArgument, fmt.Sprintf("%s is not a directory", p), "read it as a file"))
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, api.NewError(api.CodeInvalidArgument, fmt.Sprintf("list %s: %v", p, err), ""))
		return
	}
	sort.Strings(names)
	res := agentproto.DirResult{Entries: []agentproto.DirEntry{}}
	if len(names) > max {
		names, res.Truncated = names[:max], true
	}
	for _, name := range names {
		fi, err := os.Lstat(filepath.Join(p, name))
		if err != nil {
			continue // gone since it was listed
		}
		res.Entries = append(res.Entries, agentproto.DirEntry{Name: name, Type: entryType(fi.Mode()), Mode: chmodBits(fi.Mode()), Size: fi.Size()})
	}
	writeJSON(w, http.StatusOK, res)
}

func entryType(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "other"
}

// chmodBits is m's permissions as chmod and ls -l number them (Go keeps
// setuid, setgid and sticky apart from the low bits).
func chmodBits(m fs.FileMode) uint32 {
	bits := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits
}

// files serves GET /v1/files?path=P[&recursive=1] (a tar of P, top entry
// named for P's base) and PUT /v1/files?dir=D[&name=N] (a tar unpacked in
// D, its top entry renamed to N).
func (h *handler) files(w http.ResponseWriter, r *http.Request) {
	if !requireMethod(w, r, http.MethodGet, http.MethodPut) {
		return
	}
	// A transfer lasts as long as it needs: no server timeouts.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	if r.Method == http.MethodGet {
		h.getFiles(w, r)
		return
	}
	dir, ok := h.guestPath(w, r, "dir")
	if !ok {
		return
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		writeError(w, http.StatusNotFound, api.NewError(api.CodeNotFound, fmt.Sprintf("directory %s does not exist in the guest", dir),
			"create it first (banger vm exec NAME -- mkdir -p "+dir+")"))
		return
	}
	res, err := tarstream.Unpack(r.Body, dir, r.URL.Query().Get("name"))
	if err != nil {
		writeError(w, http.StatusBadRequest, api.NewError(api.CodeInvalidArgument, "copy into "+dir+": "+err.Error(), ""))
		return
	}
	writeJSON(w, http.StatusOK, agentproto.PutResult{Files: res.Files, Bytes: res.Bytes})
}

func (h *handler) getFiles(w http.ResponseWriter, r *http.Request) {
	p, ok := h.guestPath(w, r, "path")
	if !ok {
		return
	}
	fi, err := os.Lstat(p)
	if err != nil {
		writeError(w, http.StatusNotFound, api.NewError(api.CodeNotFound, fmt.Sprintf("%s does not exist in the guest", p), ""))
		return
	}
	recursive := r.URL.Query().Get("recursive") == "1"
	if fi.IsDir() && !recursive {
		writeError(w, http.StatusBadRequest, api.NewError(api.CodeInvalidArgument, p+" is a directory in the guest", "copy directories with -r"))
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := tarstream.Pack(w, p, "", recursive); err != nil {
		// Headers are out: break the stream so the host sees a cut
		// archive, not a complete one.
		panic(http.ErrAbortHandler)
	}
}

// connect serves POST /v1/connect?port=N: after the upgrade the stream is
// a TCP connection to 127.0.0.1:N in the guest (::1 when only that
// answers).
func (h *handler) connect(w http.ResponseWriter, r *http.Request) {
	if !requireMethod(w, r, http.MethodPost) || !requireUpgrade(w, r, agentproto.ConnectUpgrade) {
		return
	}
	port, err := strconv.Atoi(r.URL.Query().Get("port"))
	if err != nil || port < 1 || port > 65535 {
		writeError(w, http.StatusBadRequest, api.NewError(api.CodeInvalidArgument,
			fmt.Sprintf("port %q: want 1-65535", r.URL.Query().Get("port")), ""))
		return
	}
	var d net.Dialer
	d.Timeout = 5 * time.Second
	target, err := d.DialContext(r.Context(), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		target, err = d.DialContext(r.Context(), "tcp", net.JoinHostPort("::1", strconv.Itoa(port)))
	}
	if err != nil {
		writeError(w, http.StatusBadGateway, api.NewError(api.CodeFailedPrecondition,
			fmt.Sprintf("nothing accepts connections on port %d in the guest", port), "start the service in the VM first"))
		return
	}
	defer target.Close()
	conn, rd, err := hijack(w, agentproto.ConnectUpgrade)
	if err != nil {
		return
	}
	defer conn.Close()
	splice.Join(&bufferedConn{Conn: conn, r: rd}, target)
}

// bufferedConn reads what the HTTP server buffered before the connection.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes: a vsock connection shuts its write side, a
// yamux stream's Close sends FIN and keeps reading until the host's.
func (c *bufferedConn) CloseWrite() error {
	switch conn := c.Conn.(type) {
	case interface{ CloseWrite() error }:
		return conn.CloseWrite()
	case *yamux.Stream:
		return conn.Close()
	}
	return c.Conn.Close()
}

// listeners answers GET /v1/listeners from /proc/net/tcp and tcp6.
func (h *handler) listeners(w http.ResponseWriter, r *http.Request) {
	if !requireMethod(w, r, http.MethodGet) {
		return
	}
	var out agentproto.ListenersResult
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		data, err := readLimited(filepath.Join(h.opts.ProcRoot, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, api.NewError(api.CodeInternal, err.Error(), ""))
			return
		}
		out.Listeners = append(out.Listeners, parseListeners(data)...)
	}
	writeJSON(w, http.StatusOK, out)
}
