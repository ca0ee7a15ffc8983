package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/banger-dev/banger/internal/sysexec"
)

// device is a device node of a base tree archive.
type device struct {
	Member       string // archive member name, e.g. "./dev/null"
	Path         string // absolute path in the image, e.g. "/dev/null"
	Char         bool   // character (else block) device
	Major, Minor int64
	Mode         int64 // permission bits
	UID, GID     int
}

// archiveInfo is what a build needs to know about a base tree archive
// before unpacking it.
type archiveInfo struct {
	Bytes   int64 // ext4 space the tree needs (see treeBytes)
	Devices []device
}

// readArchive lists a base tree archive's device nodes and sizes the tree.
func readArchive(p string) (archiveInfo, error) {
	f, err := os.Open(p)
	if err != nil {
		return archiveInfo{}, err
	}
	defer f.Close()
	var info archiveInfo
	var data, entries int64
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return archiveInfo{}, fmt.Errorf("read the base tree archive %s: %w", p, err)
		}
		entries++
		switch h.Typeflag {
		case tar.TypeReg:
			data += (h.Size + 4095) &^ 4095
		case tar.TypeChar, tar.TypeBlock:
			abs := path.Clean("/" + h.Name)
			if err := checkPath(abs); err != nil {
				return archiveInfo{}, fmt.Errorf("base tree archive %s: device %w", p, err)
			}
			info.Devices = append(info.Devices, device{
				Member: h.Name, Path: abs, Char: h.Typeflag == tar.TypeChar,
				Major: h.Devmajor, Minor: h.Devminor, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid,
			})
		}
	}
	info.Bytes = data + entries*256 + data/10 + 128<<20
	return info, nil
}

// excludeList is the content of pack-image.sh's BANGER_EXCLUDE file: the
// device nodes' member names, one a line.
func excludeList(devs []device) string {
	var b strings.Builder
	for _, d := range devs {
		b.WriteString(d.Member)
		b.WriteByte('\n')
	}
	return b.String()
}

// deviceRequests are the debugfs requests that make devs in an image as
// the archive had them: node, type, numbers, permission bits, owner.
func deviceRequests(devs []device) []string {
	var out []string
	for _, d := range devs {
		kind, ftype := "b", 0o060000
		if d.Char {
			kind, ftype = "c", 0o020000
		}
		// debugfs's mknod links its name into the current directory as is.
		out = append(out,
			"cd "+path.Dir(d.Path),
			fmt.Sprintf("mknod %s %s %d %d", path.Base(d.Path), kind, d.Major, d.Minor),
			"cd /",
			fmt.Sprintf("sif %s mode 0%o", d.Path, int64(ftype)|d.Mode),
			fmt.Sprintf("sif %s uid %d", d.Path, d.UID),
			fmt.Sprintf("sif %s gid %d", d.Path, d.GID),
		)
	}
	return out
}

// writeDevices makes devs in the ext4 image img with debugfs, writing the
// image file (which the user owns) and nothing else: how a build in a user
// namespace, which cannot make device nodes, gets them into its image.
func writeDevices(ctx context.Context, run sysexec.Runner, img string, devs []device) error {
	if len(devs) == 0 {
		return nil
	}
	// debugfs's mknod would add a second entry of the same name.
	fsys := extFS{run: run, img: img}
	for _, d := range devs {
		in, err := fsys.stat(ctx, d.Path)
		if err != nil {
			return fmt.Errorf("write the device nodes into the image: %w", err)
		}
		if in.Exists {
			return fmt.Errorf("write the device nodes into the image: %s already exists in %s", d.Path, img)
		}
	}
	reqs := deviceRequests(devs)
	res, err := run.Run(ctx, sysexec.Cmd{
		Argv:  []string{"debugfs", "-w", "-f", "-", img},
		Stdin: strings.NewReader(strings.Join(reqs, "\n") + "\n"),
	})
	if err != nil {
		return fmt.Errorf("write the device nodes into the image: %w", err)
	}
	// debugfs exits 0 even when a request fails; it says so on stderr
	// after echoing each request.
	for _, line := range strings.Split(string(res.Stderr), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "debugfs ") {
			return fmt.Errorf("write the device nodes into the image: debugfs -w %s: %s", img, line)
		}
	}
	return nil
}
