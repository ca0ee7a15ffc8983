package vmruntime

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
)

// TestDiskSnapshotRoundTrip: a stopped VM's disks are captured with a
// manifest, restored over changed disks, and the manifest check names
// what changed.
func TestDiskSnapshotRoundTrip(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.rt.Provision(ctx, f.vm, nop); err != nil {
		t.Fatal(err)
	}
	files := f.rt.Layout.VM(f.vm.ID)
	mark := func(path, s string) {
		t.Helper()
		fh, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		if _, err := fh.WriteAt([]byte(s), 32<<20); err != nil {
			t.Fatal(err)
		}
	}
	read := func(path string) string {
		t.Helper()
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		b := make([]byte, 8)
		fh.ReadAt(b, 32<<20)
		return string(bytes.TrimRight(b, "\x00"))
	}
	mark(files.WorkDisk(), "work-1")
	mark(files.Rootfs(), "root-1")

	dir := filepath.Join(f.rt.SnapshotsDir(f.vm), ".tmp-s1")
	var steps []string
	m, err := f.rt.Capture(ctx, f.vm, dir, false, true, true, func(p api.Progress) { steps = append(steps, p.Step) })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(steps, StepNames("snapshot")) {
		t.Errorf("snapshot steps = %q, want %q", steps, StepNames("snapshot"))
	}
	if m.RootDisk != "rootfs.ext4" || m.ImageSHA256 != "abc" || m.KernelSHA256 == "" || m.InitrdSHA256 == "" {
		t.Errorf("manifest = %+v", m)
	}
	if got, err := f.rt.ReadManifest(dir); err != nil || got != m {
		t.Errorf("manifest on disk = %+v, %v; want %+v", got, err, m)
	}
	if bad, err := f.rt.CheckManifest(ctx, f.vm, m, true); err != nil || len(bad) != 0 {
		t.Errorf("unchanged pieces reported: %q, %v", bad, err)
	}

	mark(files.WorkDisk(), "work-2")
	mark(files.Rootfs(), "root-2")
	if err := f.rt.RestoreDisks(ctx, f.vm, dir, m); err != nil {
		t.Fatal(err)
	}
	if w, r := read(files.WorkDisk()), read(files.Rootfs()); w != "work-1" || r != "root-1" {
		t.Errorf("after restore: work %q root %q, want work-1 root-1", w, r)
	}
	// The snapshot itself is untouched by the restore and by later writes.
	mark(files.WorkDisk(), "work-3")
	if got := read(filepath.Join(dir, "work.ext4")); got != "work-1" {
		t.Errorf("snapshot work disk = %q after writing the VM's, want work-1", got)
	}
	for _, e := range dirNames(t, files.Dir) {
		if strings.HasSuffix(e, ".restore") {
			t.Errorf("restore left %s", e)
		}
	}

	// A changed kernel matters to a memory snapshot only; a rebuilt image
	// to both.
	b, _ := f.rt.Bundle()
	os.WriteFile(b.KernelPath, []byte("another kernel"), 0o600)
	if bad, _ := f.rt.CheckManifest(ctx, f.vm, m, false); len(bad) != 0 {
		t.Errorf("disk-only check reports %q for a kernel change", bad)
	}
	if bad, _ := f.rt.CheckManifest(ctx, f.vm, m, true); len(bad) != 1 || !strings.Contains(bad[0], "kernel") {
		t.Errorf("memory check after a kernel change = %q", bad)
	}
	image := f.rt.Image
	f.rt.Image = func(ctx context.Context, name string) (api.Image, error) {
		img, err := image(ctx, name)
		img.SHA256 = "def"
		return img, err
	}
	if bad, _ := f.rt.CheckManifest(ctx, f.vm, m, false); len(bad) != 1 || !strings.Contains(bad[0], "image debian was rebuilt") {
		t.Errorf("disk-only check after an image rebuild = %q", bad)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestCaptureRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.rt.Provision(ctx, f.vm, nop); err != nil {
		t.Fatal(err)
	}
	snaps := f.rt.SnapshotsDir(f.vm)
	// Memory of a stopped VM: refused, nothing written.
	_, err := f.rt.Capture(ctx, f.vm, filepath.Join(snaps, "m"), true, true, true, nop)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeConflict {
		t.Errorf("memory snapshot of a stopped VM: %v", err)
	}
	if got := dirNames(t, snaps); len(got) != 0 {
		t.Errorf("refused capture left %v", got)
	}

	// Not enough space: a 1 MiB tmpfs under the snapshots directory cannot
	// take the disks. Needs root for the mount.
	if os.Geteuid() != 0 {
		t.Log("not root: the free-space check is not exercised")
		return
	}
	os.MkdirAll(snaps, 0o700)
	if _, err := sysexec.Run(ctx, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", snaps); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	defer sysexec.Run(context.Background(), "umount", snaps)
	// Give the work disk real blocks to copy.
	fh, _ := os.OpenFile(f.rt.Layout.VM(f.vm.ID).WorkDisk(), os.O_WRONLY, 0)
	fh.WriteAt(bytes.Repeat([]byte{1}, 4<<20), 64<<20)
	fh.Close()
	_, err = f.rt.Capture(ctx, f.vm, filepath.Join(snaps, ".tmp-s"), false, true, true, nop)
	if !errors.As(err, &ae) || ae.Code != api.CodeResourceExhausted || !strings.Contains(err.Error(), "not enough disk space") {
		t.Errorf("capture onto a full filesystem: %v", err)
	}
	if got := dirNames(t, snaps); len(got) != 0 {
		t.Errorf("refused capture left %v", got)
	}
}
