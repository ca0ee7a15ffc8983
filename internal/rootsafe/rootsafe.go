// Package rootsafe answers one question for code that runs as root: can a
// user other than root change what this path names? A path is root-safe when
// every component, from / down, is owned by root and writable by nobody else,
// so no user can swap the file, or a directory above it, for their own.
package rootsafe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Policy says how strict a check is.
type Policy struct {
	// AllowStickyDirs accepts a world-writable directory with the sticky bit
	// (/tmp, /var/tmp) above the path: other users can add entries there but
	// not rename or remove root's. Programs and the helper binary never sit
	// under one.
	AllowStickyDirs bool
	// Symlinks are followed only when root owns them (only root could have
	// made them, and the target is checked in turn).
}

// Strict is the policy for programs root runs: no sticky directories.
var Strict = Policy{}

// maxLinks bounds symlink resolution (the kernel's own limit is 40).
const maxLinks = 40

// Check reports why path is not root-safe, or nil when it is. path must be
// absolute and must exist.
func Check(path string, p Policy) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%s: not an absolute path", path)
	}
	return p.walk(filepath.Clean(path), 0, true)
}

// CheckParent is Check for a directory root is about to create entries in:
// dir itself may be a sticky directory (under AllowStickyDirs), since what
// root creates there is then checked in turn.
func CheckParent(dir string, p Policy) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%s: not an absolute path", dir)
	}
	return p.walk(filepath.Clean(dir), 0, false)
}

func (p Policy) walk(path string, links int, lastIsTarget bool) error {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	cur := "/"
	if err := p.checkEntry(cur, lastIsTarget && path == "/"); err != nil {
		return err
	}
	for i, part := range parts {
		if part == "" {
			continue
		}
		next := filepath.Join(cur, part)
		var st unix.Stat_t
		if err := unix.Lstat(next, &st); err != nil {
			return fmt.Errorf("%s: %w", next, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if st.Uid != 0 {
				return fmt.Errorf("%s is a symlink owned by uid %d, not root: refusing to follow it", next, st.Uid)
			}
			if links >= maxLinks {
				return fmt.Errorf("%s: too many levels of symlinks", path)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return fmt.Errorf("%s: %w", next, err)
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			rest := filepath.Join(append([]string{target}, parts[i+1:]...)...)
			return p.walk(filepath.Clean(rest), links+1, lastIsTarget)
		}
		if err := p.checkStat(next, &st, lastIsTarget && i == len(parts)-1); err != nil {
			return err
		}
		cur = next
	}
	return nil
}

func (p Policy) checkEntry(path string, last bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return p.checkStat(path, &st, last)
}

func (p Policy) checkStat(path string, st *unix.Stat_t, last bool) error {
	if st.Uid != 0 {
		return fmt.Errorf("%s is owned by uid %d, not root: a root-run program must not trust it (make it root-owned: chown root:root %s)", path, st.Uid, path)
	}
	if st.Mode&0o022 == 0 {
		return nil
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if !last && isDir && p.AllowStickyDirs && st.Mode&unix.S_ISVTX != 0 {
		return nil
	}
	return fmt.Errorf("%s is writable by group or others (mode %04o): a root-run program must not trust it (chmod go-w %s)", path, st.Mode&0o7777, path)
}

// ErrNotFound is returned (wrapped) by LookProgram when no candidate exists.
var ErrNotFound = errors.New("program not found")

// ProgramDirs are the only directories root-run code takes programs from; the
// caller's PATH is never consulted.
var ProgramDirs = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// LookProgram returns the absolute path of name in ProgramDirs, the first
// candidate that exists; it must be a root-safe executable regular file.
func LookProgram(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, '/') {
		return "", fmt.Errorf("program name %q refused: give a bare name", name)
	}
	for _, d := range ProgramDirs {
		path := filepath.Join(d, name)
		st, err := os.Stat(path)
		if err != nil {
			continue
		}
		if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s is not an executable file", path)
		}
		if err := Check(path, Strict); err != nil {
			return "", err
		}
		return path, nil
	}
	return "", fmt.Errorf("%s: %w in %s", name, ErrNotFound, strings.Join(ProgramDirs, ", "))
}
