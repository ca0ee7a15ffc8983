// Package disk makes and maintains per-VM disk files: the root disk (a
// copy-on-write clone of an image, or a qcow2 overlay for QEMU) and the ext4
// work disk mounted at /root in the guest. Every function either completes
// or leaves no new file behind.
package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/banger-dev/banger/internal/sysexec"
)

// WorkDiskLabel is the ext4 label the guest mounts at /root.
const WorkDiskLabel = "banger-root"

// MinWorkDiskBytes is the smallest work disk we make: below this ext4's own
// metadata leaves almost nothing for /root.
const MinWorkDiskBytes = 16 << 20

// Clone methods CloneRootfs reports.
const (
	MethodReflink = "reflink"
	MethodSparse  = "sparse copy"
)

// CloneRootfs copies the image src to the new file dst, sharing blocks with
// a reflink where the filesystem supports it (btrfs, XFS, ...) and otherwise
// copying only the data extents so holes stay holes. It returns the method
// used. dst must not exist.
func CloneRootfs(ctx context.Context, src, dst string) (method string, err error) {
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("open image: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("image %s is not a regular file", src)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create VM root disk: %w", err)
	}
	defer func() {
		if cerr := out.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err == nil {
		return MethodReflink, nil
	} else if !reflinkUnsupported(err) {
		return "", fmt.Errorf("reflink %s to %s: %w", src, dst, err)
	}
	if err := sparseCopy(ctx, in, out, fi.Size()); err != nil {
		return "", fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Sync(); err != nil {
		return "", err
	}
	return MethodSparse, nil
}

// reflinkUnsupported reports errors meaning "this filesystem (pair) cannot
// share blocks", as opposed to real I/O failures.
func reflinkUnsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) ||
		errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS)
}

// copyChunk bounds each copy so cancellation is noticed promptly.
const copyChunk = 64 << 20

// sparseCopy copies the data extents of in (found with SEEK_DATA/SEEK_HOLE)
// to the same offsets in out, then sets out's size so trailing holes remain.
func sparseCopy(ctx context.Context, in, out *os.File, size int64) error {
	inFd := int(in.Fd())
	var off int64
	for off < size {
		data, err := unix.Seek(inFd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			return fmt.Errorf("seek data: %w", err)
		}
		hole, err := unix.Seek(inFd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("seek hole: %w", err)
		}
		for pos := data; pos < hole; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(hole-pos, copyChunk)
			if err := copyRange(in, out, pos, n); err != nil {
				return err
			}
			pos += n
		}
		off = hole
	}
	return out.Truncate(size)
}

// copyRange copies n bytes at off, in the kernel when it can.
func copyRange(in, out *os.File, off, n int64) error {
	rOff, wOff := off, off
	for n > 0 {
		c, err := unix.CopyFileRange(int(in.Fd()), &rOff, int(out.Fd()), &wOff, int(n), 0)
		if err != nil {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
				return copyRangeUser(in, out, rOff, n)
			}
			return err
		}
		if c == 0 {
			return io.ErrUnexpectedEOF // the image shrank under us
		}
		n -= int64(c)
	}
	return nil
}

func copyRangeUser(in, out *os.File, off, n int64) error {
	w := io.NewOffsetWriter(out, off)
	_, err := io.Copy(w, io.NewSectionReader(in, off, n))
	return err
}

// CreateOverlay makes dst a qcow2 overlay backed by the raw image base (for
// QEMU, which write-locks its disks so each VM needs its own file). The
// overlay starts at a few hundred KiB whatever the image size.
func CreateOverlay(ctx context.Context, base, dst string) error {
	return CreateOverlayWith(ctx, "qemu-img", base, dst)
}

// CreateOverlayWith is CreateOverlay with a specific qemu-img program.
func CreateOverlayWith(ctx context.Context, qemuImg, base, dst string) error {
	abs, err := filepath.Abs(base)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(abs); err != nil {
		return fmt.Errorf("overlay base: %w", err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("overlay base %s is not a regular file", abs)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("create overlay: %s already exists", dst)
	}
	_, err = sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: []string{qemuImg, "create", "-q", "-f", "qcow2", "-b", abs, "-F", "raw", dst}})
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("create overlay: %w", err)
	}
	return nil
}

// CreateWorkDisk makes a sparse ext4 file of sizeBytes labelled
// banger-root, owned by root inside. No mount is needed. path must not exist.
func CreateWorkDisk(ctx context.Context, path string, sizeBytes int64) (err error) {
	if sizeBytes < MinWorkDiskBytes {
		return fmt.Errorf("work disk size %d bytes is too small: use at least %d MiB", sizeBytes, MinWorkDiskBytes>>20)
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("create work disk: %s already exists", path)
	}
	// Format a temporary file and rename it into place, so a crash mid-mkfs
	// never leaves a half-made disk under the real name.
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // left by an earlier crash
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create work disk: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	err = f.Truncate(sizeBytes)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("size work disk: %w", err)
	}
	_, err = sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: []string{
		"mkfs.ext4", "-q", "-F", "-L", WorkDiskLabel, "-E", "root_owner=0:0", tmp}})
	if err != nil {
		return fmt.Errorf("format work disk: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("create work disk: %w", err)
	}
	return nil
}

// GrowWorkDisk enlarges a work disk (the VM must be stopped) to newBytes:
// check the filesystem, extend the file, then grow ext4 to fill it. It never
// shrinks. When resizing fails the file is put back to its old size.
func GrowWorkDisk(ctx context.Context, path string, newBytes int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("grow work disk: %w", err)
	}
	oldBytes := fi.Size()
	if newBytes < oldBytes {
		return fmt.Errorf("refusing to shrink work disk %s from %d to %d bytes: shrinking could destroy data in /root; choose a size of at least %d bytes",
			path, oldBytes, newBytes, oldBytes)
	}
	if newBytes == oldBytes {
		return nil
	}
	if err := checkNotLocked(path); err != nil {
		return err
	}
	// e2fsck: 0 = clean, 1 = errors fixed; anything else is trouble.
	res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: []string{"e2fsck", "-fy", path}})
	if err != nil && res.ExitCode != 1 {
		return fmt.Errorf("check work disk before growing (repair it with e2fsck -f %s): %w", path, err)
	}
	if err := os.Truncate(path, newBytes); err != nil {
		return fmt.Errorf("extend work disk: %w", err)
	}
	if _, err := sysexec.Run(ctx, "resize2fs", path); err != nil {
		// Undo the extension only when ext4 still fits the old size, so a
		// half-done resize is never cut short.
		if fsBytes, ferr := ext4Bytes(path); ferr == nil && fsBytes <= oldBytes {
			os.Truncate(path, oldBytes)
		}
		return fmt.Errorf("grow work disk filesystem: %w", err)
	}
	return nil
}

// checkNotLocked refuses a disk a running QEMU holds (QEMU takes OFD locks
// on its images).
func checkNotLocked(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return nil // cannot tell; the caller checked the VM is stopped
	}
	if lk.Type != unix.F_UNLCK {
		return fmt.Errorf("work disk %s is in use (locked by a running VM): stop the VM first", path)
	}
	return nil
}

// ext4Bytes reads the filesystem size from the ext4 superblock.
func ext4Bytes(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return 0, err
	}
	if binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 {
		return 0, errors.New("not an ext2/3/4 filesystem")
	}
	blocks := uint64(binary.LittleEndian.Uint32(sb[0x4:]))
	const incompat64bit = 0x80
	if binary.LittleEndian.Uint32(sb[0x60:])&incompat64bit != 0 {
		blocks |= uint64(binary.LittleEndian.Uint32(sb[0x150:])) << 32
	}
	blockSize := int64(1024) << binary.LittleEndian.Uint32(sb[0x18:])
	return int64(blocks) * blockSize, nil
}

// AllocatedBytes is the disk space the files really use (st_blocks), so
// sparse clones and qcow2 overlays count only what they hold. Missing files
// count as zero.
func AllocatedBytes(paths ...string) int64 {
	var total int64
	for _, p := range paths {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err == nil {
			total += st.Blocks * 512
		}
	}
	return total
}
