// Package consolelog bounds a VM's serial console log on disk. The guest
// controls what it prints, so the file a hypervisor writes must not grow
// without limit. The hypervisor keeps its descriptor open (and Firecracker
// does not write in append mode), so the file is never truncated or renamed
// under it: the oldest output is copied to a rotated file and then punched
// out of the live one (FALLOC_FL_PUNCH_HOLE). Offsets stay valid (a reader
// following the log sees them only grow) and the punched range takes no disk
// space; readers start at the first byte that still holds data.
package consolelog

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// MaxBytes is how much console output a VM keeps in its live log; one more
// chunk of up to MaxBytes/2 is kept in the rotated file (PATH.1).
const MaxBytes = 8 << 20

// blockAlign keeps punched ranges whole filesystem blocks.
const blockAlign = 64 << 10

// DataStart returns the offset of the first byte of f that holds data (after
// any punched hole), or the file's size when none does.
func DataStart(f *os.File) (int64, error) {
	off, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		st, err := f.Stat()
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("find data in %s: %w", f.Name(), err)
	}
	return off, nil
}

// Trim keeps at most max bytes of data in the log at path: when more is
// there, the oldest part down to max/2 is copied to path+".1" (replacing it)
// and punched out of the log. A missing log is not an error.
func Trim(path string, max int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("console log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("console log %s is not a regular file", path)
	}
	start, err := DataStart(f)
	if err != nil {
		return err
	}
	size := st.Size()
	if size-start <= max {
		return nil
	}
	cut := (size - max/2) / blockAlign * blockAlign
	if cut <= start {
		return nil
	}
	if err := rotate(f, path+".1", start, cut); err != nil {
		return err
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, cut); err != nil {
		return fmt.Errorf("trim console log %s: %w", path, err)
	}
	return nil
}

// rotate writes f's bytes [from, to) to dst through a temporary file.
func rotate(f *os.File, dst string, from, to int64) error {
	tmp := dst + ".tmp"
	_ = os.Remove(tmp)
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("rotate console log: %w", err)
	}
	_, err = io.Copy(out, io.NewSectionReader(f, from, to-from))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rotate console log: %w", err)
	}
	return nil
}
