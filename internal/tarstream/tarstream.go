// Package tarstream packs a file or tree into a tar stream and unpacks one
// into a directory, for `banger vm cp` on both sides of the agent channel.
// Modes, mtimes and symlinks are kept; owners are not (the unpacking side
// owns what it writes). Unpacking stays inside its directory (os.Root: no
// "..", no absolute names, no writing through symlinks), and each file is
// written under a temporary name and renamed into place, so a transfer that
// fails half way leaves no partial file. Both directions stream: memory use
// does not grow with the size of what is copied.
package tarstream

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// ErrIsDir is returned by Pack for a directory without recursive.
var ErrIsDir = errors.New("is a directory")

// Pack writes src as a tar stream to w, its top entry called name (the base
// name of src when empty). A directory needs recursive. Symlinks are stored
// as links, never followed.
func Pack(w io.Writer, src, name string, recursive bool) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if fi.IsDir() && !recursive {
		return fmt.Errorf("%s %w (copy directories with -r)", src, ErrIsDir)
	}
	if name == "" {
		name = filepath.Base(filepath.Clean(src))
	}
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		entry := name
		if rel != "." {
			entry = path.Join(name, filepath.ToSlash(rel))
		}
		return packOne(tw, p, entry)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func packOne(tw *tar.Writer, p, entry string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() && link == "" {
		return fmt.Errorf("%s: cannot copy a %s (only files, directories and symlinks)", p, fi.Mode().Type())
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = entry
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	hdr.Format = tar.FormatPAX // keeps sub-second mtimes
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	// A file that changes size while being read would corrupt the stream:
	// copy exactly what the header promised.
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		return fmt.Errorf("%s: %w (did it shrink while being copied?)", p, err)
	}
	return nil
}

// Result counts what Unpack wrote.
type Result struct {
	Files int   // entries written (files, directories, symlinks)
	Bytes int64 // file content bytes
}

// Unpack reads a tar stream into dir. When rename is set, the first
// component of every entry is replaced by it (copying "a" to "dir/b").
// Existing files are replaced; a directory entry over an existing
// directory keeps its content.
func Unpack(r io.Reader, dir, rename string) (Result, error) {
	var res Result
	if rename != "" && (strings.ContainsRune(rename, '/') || rename == "." || rename == "..") {
		return res, fmt.Errorf("target name %q must be a plain file name", rename)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return res, err
	}
	defer root.Close()
	type dirTime struct {
		name  string
		mode  fs.FileMode
		mtime time.Time
	}
	var dirs []dirTime
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("read archive: %w", err)
		}
		name, err := entryName(hdr.Name, rename)
		if err != nil {
			return res, err
		}
		mode := fs.FileMode(hdr.Mode) & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o700); err != nil {
				return res, fmt.Errorf("create directory %s: %w", name, err)
			}
			// Owner-writable until the end, so its entries can be written.
			if err := root.Chmod(name, mode|0o700); err != nil {
				return res, err
			}
			dirs = append(dirs, dirTime{name, mode, hdr.ModTime})
		case tar.TypeReg:
			if err := writeFile(root, name, tr, hdr.Size, mode, hdr.ModTime); err != nil {
				return res, err
			}
			res.Bytes += hdr.Size
		case tar.TypeSymlink:
			if err := writeSymlink(root, name, hdr.Linkname); err != nil {
				return res, err
			}
		case tar.TypeXGlobalHeader:
			continue
		default:
			return res, fmt.Errorf("archive entry %s is a %s: only files, directories and symlinks can be copied",
				name, typeName(hdr.Typeflag))
		}
		res.Files++
	}
	// Directory modes and mtimes last: writing into them changed them.
	// Deepest first.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chmod(dirs[i].name, dirs[i].mode); err != nil {
			return res, err
		}
		_ = root.Chtimes(dirs[i].name, dirs[i].mtime, dirs[i].mtime)
	}
	return res, nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("entry of type %q", t)
}

// entryName checks an archive name and applies rename.
func entryName(name, rename string) (string, error) {
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if name == "" || path.IsAbs(name) || clean == ".." || strings.HasPrefix(clean, "../") || clean == "." {
		return "", fmt.Errorf("archive entry %q: want a relative name inside the destination", name)
	}
	if rename != "" {
		_, rest, _ := strings.Cut(clean, "/")
		clean = path.Join(rename, rest)
	}
	return clean, nil
}

// tempName is a sibling of name for writing before the rename.
func tempName(name string) string {
	dir, base := path.Split(name)
	return dir + ".banger-tmp-" + fmt.Sprint(time.Now().UnixNano()) + "-" + base
}

func writeFile(root *os.Root, name string, r io.Reader, size int64, mode fs.FileMode, mtime time.Time) (err error) {
	if err := mkParent(root, name); err != nil {
		return err
	}
	tmp := tempName(name)
	f, err := root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			_ = root.Remove(tmp)
		}
	}()
	if _, err = io.CopyN(f, r, size); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = root.Chtimes(tmp, mtime, mtime); err != nil {
		return err
	}
	if err = root.Rename(tmp, name); err != nil {
		return fmt.Errorf("put %s in place: %w", name, err)
	}
	return nil
}

func writeSymlink(root *os.Root, name, target string) error {
	if err := mkParent(root, name); err != nil {
		return err
	}
	tmp := tempName(name)
	if err := root.Symlink(target, tmp); err != nil {
		return fmt.Errorf("create symlink %s: %w", name, err)
	}
	if err := root.Rename(tmp, name); err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("put symlink %s in place: %w", name, err)
	}
	return nil
}

func mkParent(root *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create directory %s: %w", dir, err)
		}
	}
	return nil
}
