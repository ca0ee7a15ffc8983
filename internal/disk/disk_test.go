package disk

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/testneed"
	"golang.org/x/sys/unix"
)

func needTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := sysexec.LookPath(tool); err != nil {
			t.Skipf("%v (apt-get install e2fsprogs qemu-utils)", err)
		}
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// sparseImage makes a file of size bytes with a few data extents separated
// by holes, returning the data written at each offset.
func sparseImage(t testing.TB, path string, size int64) map[int64][]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	written := map[int64][]byte{}
	for _, off := range []int64{0, size / 3, size - 8192} {
		b := make([]byte, 8192)
		rand.Read(b)
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		written[off] = b
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return written
}

func TestCloneRootfsKeepsHolesAndContent(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "image.ext4"), filepath.Join(dir, "rootfs.ext4")
	const size = 128 << 20
	sparseImage(t, src, size)
	method, err := CloneRootfs(ctxT(t), src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if method != MethodReflink && method != MethodSparse {
		t.Fatalf("method = %q", method)
	}
	t.Logf("clone method on this filesystem: %s", method)
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != size {
		t.Errorf("clone size = %d, want %d", fi.Size(), size)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("clone mode = %v, want 0600", fi.Mode().Perm())
	}
	if alloc := AllocatedBytes(dst); alloc > 4<<20 {
		t.Errorf("clone allocates %d bytes for 24 KiB of data: holes were filled", alloc)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Error("clone content differs from the image")
	}
}

func TestCloneRootfsRefusesExisting(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "image"), filepath.Join(dir, "rootfs")
	sparseImage(t, src, 1<<20)
	os.WriteFile(dst, []byte("keep me"), 0o600)
	if _, err := CloneRootfs(ctxT(t), src, dst); err == nil {
		t.Fatal("CloneRootfs overwrote an existing disk")
	}
	if b, _ := os.ReadFile(dst); string(b) != "keep me" {
		t.Error("existing file was changed")
	}
}

func TestCloneRootfsFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "image"), filepath.Join(dir, "rootfs")
	sparseImage(t, src, 64<<20)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	method, err := CloneRootfs(ctx, src, dst)
	if method == MethodReflink {
		// The temp dir's filesystem shares blocks: a reflink is one ioctl
		// that completes without copying, so there is nothing to interrupt.
		t.Log("reflink here: cancellation has no copy to interrupt")
		os.Remove(dst)
	} else {
		if err == nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("partial clone left behind: %v", err)
		}
	}
	if _, err := CloneRootfs(ctxT(t), filepath.Join(dir, "missing"), dst); err == nil {
		t.Error("cloning a missing image succeeded")
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("file left behind after a missing image: %v", err)
	}
}

// xfsMount makes a reflink-capable XFS filesystem for one test: a sparse
// file, a loop device, mkfs.xfs -m reflink=1 and a mount under a temporary
// directory, all undone when the test ends.
func xfsMount(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		testneed.Skip(t, "needs root to loop-mount an XFS filesystem")
	}
	for _, tool := range []string{"mkfs.xfs", "losetup", "mount", "umount", "filefrag"} {
		if _, err := sysexec.LookPath(tool); err != nil {
			testneed.Skip(t, "%v (apt-get install xfsprogs util-linux mount e2fsprogs)", err)
		}
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "xfs.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 512<<20); err != nil { // sparse: XFS wants 300 MiB at least
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if _, err := sysexec.Run(ctx, "mkfs.xfs", "-q", "-m", "reflink=1", img); err != nil {
		t.Fatal(err)
	}
	loop, err := sysexec.Output(ctx, "losetup", "--find", "--show", img)
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	t.Cleanup(func() {
		if _, err := sysexec.Run(context.Background(), "losetup", "--detach", loop); err != nil {
			t.Errorf("losetup --detach %s: %v", loop, err)
		}
	})
	if _, err := sysexec.Run(ctx, "mount", "-t", "xfs", loop, mnt); err != nil {
		t.Fatalf("mount %s: %v", loop, err)
	}
	// Registered after the detach, so it runs before it.
	t.Cleanup(func() {
		if _, err := sysexec.Run(context.Background(), "umount", mnt); err != nil {
			t.Errorf("umount %s: %v", mnt, err)
		}
	})
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil || st.Type != unix.XFS_SUPER_MAGIC {
		t.Fatalf("%s is not XFS after mounting (type %#x, %v)", mnt, st.Type, err)
	}
	return mnt
}

// TestCloneRootfsReflink runs the reflink path on a real XFS (reflink=1) the
// test makes: the clone shares the image's blocks (filefrag reports the
// extents shared), reads back the same, and writing it leaves the image
// untouched (copy on write, not a second name for the same file).
func TestCloneRootfsReflink(t *testing.T) {
	mnt := xfsMount(t)
	ctx := ctxT(t)
	src, dst := filepath.Join(mnt, "image"), filepath.Join(mnt, "rootfs")
	written := sparseImage(t, src, 64<<20)
	method, err := CloneRootfs(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if method != MethodReflink {
		t.Fatalf("method on XFS with reflink=1 = %q, want %q", method, MethodReflink)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Size() != 64<<20 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("clone: %v, %v", fi, err)
	}
	out, err := sysexec.Output(ctx, "filefrag", "-v", dst)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "shared"); n < len(written) {
		t.Errorf("filefrag shows %d shared extents in the clone, want at least %d (one per data extent):\n%s", n, len(written), out)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Fatal("reflinked content differs")
	}
	f, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("the guest wrote this"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(src)
	if !bytes.Equal(after, a) {
		t.Error("writing the clone changed the image")
	}
}

func TestCreateOverlay(t *testing.T) {
	needTools(t, "qemu-img")
	dir := t.TempDir()
	base := filepath.Join(dir, "image.ext4")
	sparseImage(t, base, 1<<30)
	// A relative base must be recorded as an absolute path.
	t.Chdir(dir)
	dst := filepath.Join(dir, "vm.qcow2")
	if err := CreateOverlay(ctxT(t), "image.ext4", dst); err != nil {
		t.Fatal(err)
	}
	out, err := sysexec.Output(ctxT(t), "qemu-img", "info", "--output=json", dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"format": "qcow2"`, `"backing-filename": "` + base + `"`, `"backing-filename-format": "raw"`, `"virtual-size": 1073741824`} {
		if !strings.Contains(out, want) {
			t.Errorf("qemu-img info lacks %s:\n%s", want, out)
		}
	}
	if alloc := AllocatedBytes(dst); alloc > 1<<20 {
		t.Errorf("overlay allocates %d bytes", alloc)
	}
	if err := CreateOverlay(ctxT(t), base, dst); err == nil {
		t.Error("CreateOverlay overwrote an existing overlay")
	}
	missing := filepath.Join(dir, "other.qcow2")
	if err := CreateOverlay(ctxT(t), filepath.Join(dir, "nope"), missing); err == nil {
		t.Error("overlay on a missing base succeeded")
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Error("failed overlay left a file")
	}
}

func TestCreateOverlayFailureKeepsArgv(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "image")
	sparseImage(t, base, 1<<20)
	dst := filepath.Join(dir, "vm.qcow2")
	// A "qemu-img" that fails after creating its output shows cleanup.
	fake := filepath.Join(dir, "fake-qemu-img")
	script := "#!/bin/sh\nfor a; do last=$a; done\necho partial > \"$last\"\necho 'disk full' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	err := CreateOverlayWith(ctxT(t), fake, base, dst)
	var se *sysexec.Error
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "disk full") || se.Argv[0] != fake {
		t.Fatalf("err = %v, want a sysexec.Error with argv and stderr", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Error("failed overlay left a file")
	}
}

// dumpe2fs returns the superblock fields of an ext4 image.
func dumpe2fs(t *testing.T, path string) map[string]string {
	t.Helper()
	out, err := sysexec.Output(ctxT(t), "dumpe2fs", "-h", path)
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return fields
}

func fsBytes(t *testing.T, path string) int64 {
	f := dumpe2fs(t, path)
	blocks, err1 := strconv.ParseInt(f["Block count"], 10, 64)
	bs, err2 := strconv.ParseInt(f["Block size"], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("dumpe2fs fields: %v %v", err1, err2)
	}
	return blocks * bs
}

func TestWorkDiskCreateAndGrow(t *testing.T) {
	needTools(t, "mkfs.ext4", "e2label", "dumpe2fs", "e2fsck", "resize2fs")
	path := filepath.Join(t.TempDir(), "work.ext4")
	if err := CreateWorkDisk(ctxT(t), path, 256<<20); err != nil {
		t.Fatal(err)
	}
	label, err := sysexec.Output(ctxT(t), "e2label", path)
	if err != nil || label != WorkDiskLabel {
		t.Fatalf("e2label = %q, %v; want %q", label, err, WorkDiskLabel)
	}
	if got := fsBytes(t, path); got != 256<<20 {
		t.Errorf("filesystem size = %d, want %d", got, 256<<20)
	}
	if alloc := AllocatedBytes(path); alloc > 64<<20 {
		t.Errorf("fresh work disk allocates %d bytes: not sparse", alloc)
	}
	if n, err := ext4Bytes(path); err != nil || n != 256<<20 {
		t.Errorf("ext4Bytes = %d, %v", n, err)
	}

	if err := GrowWorkDisk(ctxT(t), path, 1<<30); err != nil {
		t.Fatal(err)
	}
	if got := fsBytes(t, path); got != 1<<30 {
		t.Errorf("after grow filesystem size = %d, want %d", got, 1<<30)
	}
	if _, err := sysexec.Run(ctxT(t), "e2fsck", "-fn", path); err != nil {
		t.Errorf("grown filesystem not clean: %v", err)
	}
	if label, _ := sysexec.Output(ctxT(t), "e2label", path); label != WorkDiskLabel {
		t.Errorf("label lost after grow: %q", label)
	}

	err = GrowWorkDisk(ctxT(t), path, 512<<20)
	if err == nil || !strings.Contains(err.Error(), "refusing to shrink") {
		t.Fatalf("shrink: err = %v", err)
	}
	if fi, _ := os.Stat(path); fi.Size() != 1<<30 {
		t.Errorf("refused shrink changed the file size to %d", fi.Size())
	}
	if err := GrowWorkDisk(ctxT(t), path, 1<<30); err != nil {
		t.Errorf("grow to the same size: %v", err)
	}
}

func TestGrowWorkDiskRefusesCorruptAndRestoresSize(t *testing.T) {
	needTools(t, "e2fsck", "resize2fs")
	path := filepath.Join(t.TempDir(), "work.ext4")
	// Not a filesystem at all: e2fsck fails, nothing may change.
	sparseImage(t, path, 32<<20)
	before, _ := os.ReadFile(path)
	if err := GrowWorkDisk(ctxT(t), path, 64<<20); err == nil || !strings.Contains(err.Error(), "e2fsck") {
		t.Fatalf("err = %v, want an e2fsck failure", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("failed grow modified the disk")
	}
}

func TestCreateWorkDiskFailures(t *testing.T) {
	needTools(t, "mkfs.ext4")
	dir := t.TempDir()
	small := filepath.Join(dir, "small.ext4")
	if err := CreateWorkDisk(ctxT(t), small, 1<<20); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("tiny disk: err = %v", err)
	}
	if _, err := os.Stat(small); !os.IsNotExist(err) {
		t.Error("refused disk left a file")
	}
	// A failing mkfs.ext4 (first in PATH) must leave no file behind, and the
	// error must carry its argv and stderr.
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	fake := "#!/bin/sh\necho 'mkfs.ext4: Device size reported to be zero' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "mkfs.ext4"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	bad := filepath.Join(dir, "bad.ext4")
	err := CreateWorkDisk(ctxT(t), bad, 64<<20)
	if err == nil || !strings.Contains(err.Error(), "mkfs.ext4 -q -F -L banger-root") || !strings.Contains(err.Error(), "size reported to be zero") {
		t.Fatalf("err = %v, want the failing argv and its stderr", err)
	}
	if _, serr := os.Stat(bad); !os.IsNotExist(serr) {
		t.Errorf("failed work disk left a file (err was %v)", err)
	}
	existing := filepath.Join(dir, "exists.ext4")
	os.WriteFile(existing, []byte("data"), 0o600)
	if err := CreateWorkDisk(ctxT(t), existing, 64<<20); err == nil {
		t.Error("CreateWorkDisk overwrote an existing file")
	}
}

func TestGrowWorkDiskRefusesLocked(t *testing.T) {
	needTools(t, "mkfs.ext4", "e2fsck", "resize2fs", "qemu-io")
	path := filepath.Join(t.TempDir(), "work.ext4")
	if err := CreateWorkDisk(ctxT(t), path, 32<<20); err != nil {
		t.Fatal(err)
	}
	// qemu-io takes the same OFD locks a running QEMU holds.
	stdinR, stdin, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinR.Close()
	cmd, err := sysexec.Start(sysexec.Cmd{Argv: []string{"qemu-io", "-f", "raw", path}, Stdin: stdinR}, false)
	if err != nil {
		t.Skip(err)
	}
	// Closing qemu-io's stdin ends it.
	defer func() { stdin.Close(); cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for checkNotLocked(path) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := GrowWorkDisk(ctxT(t), path, 64<<20); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("grow of a locked disk: err = %v", err)
	}
}

func TestAllocatedBytes(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	os.WriteFile(a, make([]byte, 1<<20), 0o600)
	got := AllocatedBytes(a, filepath.Join(dir, "missing"))
	if got < 1<<20 || got > 2<<20 {
		t.Errorf("AllocatedBytes = %d, want about 1 MiB", got)
	}
}

func TestGrowWorkDiskUndoesExtensionWhenResizeFails(t *testing.T) {
	needTools(t, "mkfs.ext4", "e2fsck")
	dir := t.TempDir()
	path := filepath.Join(dir, "work.ext4")
	if err := CreateWorkDisk(ctxT(t), path, 32<<20); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	fake := "#!/bin/sh\necho 'resize2fs: No space left on device' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "resize2fs"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	err := GrowWorkDisk(ctxT(t), path, 64<<20)
	if err == nil || !strings.Contains(err.Error(), "resize2fs") || !strings.Contains(err.Error(), "No space left") {
		t.Fatalf("err = %v, want the resize2fs failure", err)
	}
	if fi, _ := os.Stat(path); fi.Size() != 32<<20 {
		t.Errorf("file left at %d bytes after a failed grow, want %d", fi.Size(), 32<<20)
	}
}
