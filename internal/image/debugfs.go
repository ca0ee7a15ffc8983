package image

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/banger-dev/banger/internal/sysexec"
)

// ext4Magic is the ext2/3/4 superblock magic, at byte 56 of the superblock,
// which starts 1024 bytes into the device.
const (
	ext4Magic       = 0xEF53
	ext4MagicOffset = 1024 + 56
)

// IsExt4 reports whether the file at p carries an ext2/3/4 superblock.
func IsExt4(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var b [2]byte
	if _, err := f.ReadAt(b[:], ext4MagicOffset); err != nil {
		if err == io.EOF {
			return false, nil
		}
		return false, err
	}
	return binary.LittleEndian.Uint16(b[:]) == ext4Magic, nil
}

// extFS reads an ext4 image with debugfs, read-only and without mounting.
type extFS struct {
	run sysexec.Runner
	img string
}

// inode is what debugfs stat says about a path.
type inode struct {
	Exists bool
	Type   string // "regular", "directory", "symlink", "character special", ...
	Mode   uint32
	Size   int64
	Link   string // fast symlink target
}

var (
	statTypeRe = regexp.MustCompile(`Type:\s+(\S+(?: special)?)\s+Mode:\s+([0-7]+)`)
	statSizeRe = regexp.MustCompile(`\sSize:\s+(\d+)`)
	statLinkRe = regexp.MustCompile(`Fast link dest:\s+"(.*)"`)
	safePathRe = regexp.MustCompile(`^/[A-Za-z0-9._+@/-]*$`)
)

// request runs one debugfs request. debugfs exits 0 even when the request
// fails, so callers read its stdout; its stderr carries the reason.
func (f extFS) request(ctx context.Context, req string) (string, string, error) {
	res, err := f.run.Run(ctx, sysexec.Cmd{Argv: []string{"debugfs", "-R", req, f.img}})
	if err != nil {
		return "", "", err
	}
	return string(res.Stdout), string(res.Stderr), nil
}

func checkPath(p string) error {
	if !safePathRe.MatchString(p) {
		return fmt.Errorf("path %q cannot be passed to debugfs", p)
	}
	return nil
}

func (f extFS) stat(ctx context.Context, p string) (inode, error) {
	if err := checkPath(p); err != nil {
		return inode{}, err
	}
	out, _, err := f.request(ctx, "stat "+p)
	if err != nil {
		return inode{}, err
	}
	m := statTypeRe.FindStringSubmatch(out)
	if m == nil {
		return inode{}, nil // "File not found by ext2_lookup"
	}
	mode, _ := strconv.ParseUint(m[2], 8, 32)
	in := inode{Exists: true, Type: m[1], Mode: uint32(mode)}
	if s := statSizeRe.FindStringSubmatch(out); s != nil {
		in.Size, _ = strconv.ParseInt(s[1], 10, 64)
	}
	if l := statLinkRe.FindStringSubmatch(out); l != nil {
		in.Link = l[1]
	}
	return in, nil
}

// resolve stats p, following symlinks (e.g. /usr/bin/vim through
// /etc/alternatives) up to a few hops.
func (f extFS) resolve(ctx context.Context, p string) (inode, string, error) {
	for range 8 {
		in, err := f.stat(ctx, p)
		if err != nil || !in.Exists || in.Type != "symlink" || in.Link == "" {
			return in, p, err
		}
		if strings.HasPrefix(in.Link, "/") {
			p = path.Clean(in.Link)
		} else {
			p = path.Join(path.Dir(p), in.Link)
		}
	}
	return inode{}, p, fmt.Errorf("%s: too many levels of symbolic links", p)
}

// cat returns a file's content; ok is false when it does not exist.
func (f extFS) cat(ctx context.Context, p string) (string, bool, error) {
	in, err := f.stat(ctx, p)
	if err != nil || !in.Exists {
		return "", false, err
	}
	out, _, err := f.request(ctx, "cat "+p)
	return out, err == nil, err
}

// ls lists the names in a directory (without . and ..).
func (f extFS) ls(ctx context.Context, dir string) ([]string, error) {
	if err := checkPath(dir); err != nil {
		return nil, err
	}
	out, _, err := f.request(ctx, "ls -p "+dir)
	if err != nil {
		return nil, err
	}
	// ls -p prints /inode/mode/uid/gid/name/size/ one entry a line.
	var names []string
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Split(line, "/")
		if len(fields) >= 6 && fields[5] != "." && fields[5] != ".." && fields[5] != "" {
			names = append(names, fields[5])
		}
	}
	return names, nil
}
