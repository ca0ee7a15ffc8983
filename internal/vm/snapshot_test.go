package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

// fakeSnapshots writes real snapshot directories (a disk file and the
// manifest) without a VMM.
type fakeSnapshots struct {
	s            *Service
	failCapture  error
	mismatch     []string
	captures     []string
	failIdentity error
}

func (f *fakeSnapshots) SnapshotsDir(vm api.VM) string {
	return filepath.Join(f.s.Layout.VM(vm.ID).Dir, "snapshots")
}
func (f *fakeSnapshots) SuspendDir(vm api.VM) string {
	return filepath.Join(f.s.Layout.VM(vm.ID).Dir, "suspend")
}
func (f *fakeSnapshots) Capture(_ context.Context, vm api.VM, dir string, memory, disks, resume bool, _ func(api.Progress)) (api.SnapshotManifest, error) {
	f.captures = append(f.captures, filepath.Base(dir))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return api.SnapshotManifest{}, err
	}
	if f.failCapture != nil {
		os.RemoveAll(dir)
		return api.SnapshotManifest{}, f.failCapture
	}
	os.WriteFile(filepath.Join(dir, "work.ext4"), []byte("disk"), 0o600)
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte("{}"), 0o600)
	return api.SnapshotManifest{Image: vm.Image, VMM: "qemu"}, nil
}
func (f *fakeSnapshots) CheckManifest(context.Context, api.VM, api.SnapshotManifest, bool) ([]string, error) {
	return f.mismatch, nil
}
func (f *fakeSnapshots) RestoreDisks(context.Context, api.VM, string, api.SnapshotManifest) error {
	return nil
}
func (f *fakeSnapshots) ResumeFrom(_ context.Context, vm api.VM, _ string, _ func(api.Progress)) (api.VM, error) {
	vm.State, vm.VMM, vm.PID = api.VMRunning, "qemu", 4343
	return vm, nil
}
func (f *fakeSnapshots) ReadManifest(dir string) (api.SnapshotManifest, error) {
	_, err := os.Stat(filepath.Join(dir, "manifest.json"))
	return api.SnapshotManifest{}, err
}
func (f *fakeSnapshots) SizeOnDisk(string) int64 { return 4096 }
func (f *fakeSnapshots) CloneDisks(context.Context, api.VM, string, api.SnapshotManifest) error {
	return nil
}
func (f *fakeSnapshots) Reidentify(context.Context, api.VM, bool) error { return f.failIdentity }
func (f *fakeSnapshots) WaitIdentity(context.Context, api.VM) error     { return nil }

func newSnapService(t *testing.T) (*Service, *fakeSnapshots, api.VM) {
	t.Helper()
	s := newService(t, nil)
	f := &fakeSnapshots{s: s}
	s.Snapshots = f
	vm, err := s.Create(ctx, api.VMCreateParams{Name: "dev", NoStart: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, f, vm
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

func TestSnapshotCreateAndBadInput(t *testing.T) {
	s, f, vm := newSnapService(t)
	snap, err := s.SnapshotCreate(ctx, api.SnapshotCreateParams{VM: "dev", Name: "s1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Name != "s1" || snap.HasMemory || snap.SizeBytes != 4096 {
		t.Errorf("snapshot of a stopped VM = %+v, want disk-only s1", snap)
	}
	dir := f.SnapshotsDir(vm)
	if got := dirNames(t, dir); !slices.Equal(got, []string{"s1"}) {
		t.Errorf("snapshots dir = %v, want [s1] (the .tmp- directory renamed)", got)
	}
	if _, err := s.SnapshotCreate(ctx, api.SnapshotCreateParams{VM: "dev", Name: "s1"}, nil); code(err) != api.CodeAlreadyExists {
		t.Errorf("name taken: %v", err)
	}
	if _, err := s.SnapshotCreate(ctx, api.SnapshotCreateParams{VM: "dev", Name: "../x"}, nil); code(err) != api.CodeInvalidArgument {
		t.Errorf("bad name: %v", err)
	}
	if _, err := s.SnapshotCreate(ctx, api.SnapshotCreateParams{VM: "nope", Name: "x"}, nil); code(err) != api.CodeNotFound {
		t.Errorf("unknown VM: %v", err)
	}
	f.failCapture = api.NewError(api.CodeResourceExhausted, "not enough disk space for the snapshot", "")
	if _, err := s.SnapshotCreate(ctx, api.SnapshotCreateParams{VM: "dev", Name: "s2"}, nil); code(err) != api.CodeResourceExhausted {
		t.Errorf("capture failure: %v", err)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"s1"}) {
		t.Errorf("after a failed snapshot the dir holds %v, want only s1", got)
	}
	if list, _ := s.SnapshotList(ctx, "dev"); len(list) != 1 {
		t.Errorf("list after a failed snapshot: %+v", list)
	}
	// Only a running VM can be suspended; a suspended one is not started.
	if _, err := s.Suspend(ctx, "dev", nil); code(err) != api.CodeConflict {
		t.Errorf("suspend of a stopped VM: %v", err)
	}
	if _, err := s.Resume(ctx, "dev", nil); code(err) != api.CodeConflict {
		t.Errorf("resume of a stopped VM: %v", err)
	}
	if err := s.SnapshotDelete(ctx, api.SnapshotRef{VM: "dev", Name: "nope"}); code(err) != api.CodeNotFound {
		t.Errorf("delete of an unknown snapshot: %v", err)
	}
	if err := s.SnapshotDelete(ctx, api.SnapshotRef{VM: "dev", Name: "s1"}); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Errorf("after delete the dir holds %v", got)
	}
}

func TestRestoreRefusals(t *testing.T) {
	s, f, _ := newSnapService(t)
	if _, err := s.SnapshotCreate(ctx, api.SnapshotCreateParams{VM: "dev", Name: "s1"}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := s.Restore(ctx, api.VMRestoreParams{VM: "dev", Snapshot: "nope"}, nil)
	if code(err) != api.CodeNotFound || !strings.Contains(err.Error(), `no snapshot named "nope"`) {
		t.Errorf("unknown snapshot: %v", err)
	}
	f.mismatch = []string{"kernel /k changed"}
	_, err = s.Restore(ctx, api.VMRestoreParams{VM: "dev", Snapshot: "s1"}, nil)
	if code(err) != api.CodeFailedPrecondition || !strings.Contains(err.Error(), "kernel /k changed") {
		t.Errorf("manifest mismatch: %v", err)
	}
	if list, _ := s.SnapshotList(ctx, "dev"); len(list) != 1 {
		t.Errorf("a refused restore took a safety snapshot: %+v", list)
	}
	// A disk-only restore of a stopped VM takes a (disk-only) safety
	// snapshot and boots.
	f.mismatch = nil
	res, err := s.Restore(ctx, api.VMRestoreParams{VM: "dev", Snapshot: "s1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.VM.State != api.VMRunning || !strings.HasPrefix(res.Safety, "safety-") {
		t.Errorf("restore result = %+v", res)
	}
	// At once again: the second safety snapshot gets its own name.
	if _, err := s.Stop(ctx, "dev", false); err != nil {
		t.Fatal(err)
	}
	res2, err := s.Restore(ctx, api.VMRestoreParams{VM: "dev", Snapshot: "s1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Safety == res.Safety || !strings.HasPrefix(res2.Safety, "safety-") {
		t.Errorf("second safety snapshot %q (first %q)", res2.Safety, res.Safety)
	}
}

// TestReconcileSnapshots: what interrupted operations leave is settled at
// daemon start.
func TestReconcileSnapshots(t *testing.T) {
	s, f, vm := newSnapService(t)
	if _, err := s.SnapshotCreate(ctx, api.SnapshotCreateParams{VM: "dev", Name: "good"}, nil); err != nil {
		t.Fatal(err)
	}
	dir := f.SnapshotsDir(vm)
	// A row whose files are incomplete, a half-written snapshot, and a
	// complete directory whose row was never written (crash before it).
	if _, err := s.Store.AddSnapshot(ctx, api.Snapshot{VMID: vm.ID, VM: "dev", Name: "half"}); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "half"), 0o700)
	os.MkdirAll(filepath.Join(dir, ".tmp-x"), 0o700)
	os.MkdirAll(filepath.Join(dir, "norow"), 0o700)
	os.WriteFile(filepath.Join(dir, "norow", "manifest.json"), []byte("{}"), 0o600)
	// Saved suspend state of a stopped VM whose VMM is gone: the suspend
	// was interrupted after the save, so the VM is suspended.
	s.Runtime.(*recordingRuntime).dead.Store(true)
	os.MkdirAll(f.SuspendDir(vm), 0o700)
	os.WriteFile(filepath.Join(f.SuspendDir(vm), "manifest.json"), []byte("{}"), 0o600)

	if _, err := s.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"good"}) {
		t.Errorf("snapshot dirs after reconcile = %v, want [good]", got)
	}
	list, _ := s.SnapshotList(ctx, "dev")
	if len(list) != 1 || list[0].Name != "good" {
		t.Errorf("snapshots after reconcile = %+v, want only good", list)
	}
	if v, _ := s.Get(ctx, "dev"); v.State != api.VMSuspended {
		t.Errorf("VM with complete saved state after reconcile: %s, want suspended", v.State)
	}
	if _, err := s.Start(ctx, "dev", nil); code(err) != api.CodeConflict || !strings.Contains(err.Error(), "suspended") {
		t.Errorf("start of a suspended VM: %v", err)
	}
	// Stopping every VM (daemon stop --stop-vms) leaves a suspended one
	// and its saved state alone.
	if err := s.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get(ctx, "dev"); v.State != api.VMSuspended {
		t.Errorf("StopAll changed a suspended VM to %s", v.State)
	}
	// Stopping a suspended VM discards the saved state.
	if _, err := s.Stop(ctx, "dev", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.SuspendDir(vm)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("saved state left after stopping a suspended VM: %v", err)
	}
	// Saved state of a VM that is not suspended (crash before the VMM
	// ended: it was resumed) is removed.
	os.MkdirAll(f.SuspendDir(vm), 0o700)
	if _, err := s.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.SuspendDir(vm)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale suspend state left: %v", err)
	}
}

func TestClone(t *testing.T) {
	s, f, src := newSnapService(t)
	clone, err := s.Clone(ctx, api.VMCloneParams{Source: "dev", Name: "dev2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if clone.State != api.VMRunning || clone.ID == src.ID || clone.IP == src.IP || clone.MAC == src.MAC ||
		clone.Tap == src.Tap || clone.VsockCID == src.VsockCID || clone.Image != src.Image || clone.MemoryMiB != src.MemoryMiB {
		t.Errorf("clone %+v of %+v", clone, src)
	}
	if _, err := os.Stat(filepath.Join(s.Layout.VM(clone.ID).Dir, "clone-source")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("capture of the source left in the clone's directory: %v", err)
	}
	if _, err := s.Clone(ctx, api.VMCloneParams{Source: "dev", Name: "dev2"}, nil); code(err) != api.CodeAlreadyExists {
		t.Errorf("clone onto a taken name: %v", err)
	}
	if _, err := s.Clone(ctx, api.VMCloneParams{Source: "dev", Name: "x", Snapshot: "nope"}, nil); code(err) != api.CodeNotFound {
		t.Errorf("clone of an unknown snapshot: %v", err)
	}
	// A clone whose guest cannot be re-identified is undone completely.
	f.failIdentity = errors.New("ssh-keygen failed")
	before, _ := s.List(ctx)
	if _, err := s.Clone(ctx, api.VMCloneParams{Source: "dev", Name: "dev3"}, nil); err == nil || !strings.Contains(err.Error(), "ssh-keygen failed") {
		t.Fatalf("failed re-identify: %v", err)
	}
	after, _ := s.List(ctx)
	if len(after) != len(before) {
		t.Errorf("a failed clone left a VM: %d VMs before, %d after", len(before), len(after))
	}
	entries, _ := os.ReadDir(s.Layout.VMsDir())
	if len(entries) != len(before) {
		t.Errorf("a failed clone left files: %d VM dirs for %d VMs", len(entries), len(before))
	}
	if _, err := os.Stat(filepath.Join(s.Layout.VM(clone.ID).Dir, cloneMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a finished clone keeps its unfinished marker: %v", err)
	}
	// A clone the daemon was killed in the middle of is removed at start.
	os.WriteFile(filepath.Join(s.Layout.VM(clone.ID).Dir, cloneMarker), []byte("dev\n"), 0o600)
	if _, err := s.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "dev2"); code(err) != api.CodeNotFound {
		t.Errorf("interrupted clone still listed after reconcile: %v", err)
	}
	if _, err := s.Get(ctx, "dev"); err != nil {
		t.Errorf("the source went with the interrupted clone: %v", err)
	}
}

// A clone is a new VM: max_vms and max_vm_memory_mib refuse it as they
// refuse a create, before anything is made.
func TestCloneRespectsLimits(t *testing.T) {
	s, _, src := newSnapService(t)
	s.Config.MaxVMs = 1
	if _, err := s.Clone(ctx, api.VMCloneParams{Source: "dev", Name: "dev2"}, nil); code(err) != api.CodeResourceExhausted ||
		!strings.Contains(err.Error(), "max_vms") {
		t.Errorf("clone past max_vms = 1: %v", err)
	}
	s.Config.MaxVMs = 0
	s.Config.MaxVMMemoryMiB = src.MemoryMiB - 1
	if _, err := s.Clone(ctx, api.VMCloneParams{Source: "dev", Name: "dev2"}, nil); code(err) != api.CodeResourceExhausted ||
		!strings.Contains(err.Error(), "max_vm_memory_mib") {
		t.Errorf("clone of a %d MiB VM over max_vm_memory_mib = %d: %v", src.MemoryMiB, src.MemoryMiB-1, err)
	}
	if vms, _ := s.List(ctx); len(vms) != 1 {
		t.Errorf("refused clones left VMs: %+v", vms)
	}
	if entries, _ := os.ReadDir(s.Layout.VMsDir()); len(entries) != 1 {
		t.Errorf("refused clones left %d VM directories", len(entries))
	}
}
