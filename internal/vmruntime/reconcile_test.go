package vmruntime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

// A daemon killed after launching a VMM but before recording its pid leaves
// a VMM nobody knows: reconcile finds it by its socket directory, ends it
// and marks the VM stopped with the reason.
func TestReconcileEndsUnrecordedVMM(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.rt.Provision(ctx, f.vm, nop); err != nil {
		t.Fatal(err)
	}
	started, err := f.rt.Start(ctx, f.vm, nop)
	if err != nil {
		t.Fatal(err)
	}
	// What the record says after such a crash: starting, no pid.
	rec := f.vm
	rec.State = api.VMStarting
	changed, notes, err := f.rt.Reconcile(ctx, []api.VM{rec})
	if err != nil {
		t.Fatal(err)
	}
	if f.rt.Alive(started) {
		t.Fatalf("the unrecorded VMM (pid %d) still runs; notes: %v", started.PID, notes)
	}
	if len(changed) != 1 || changed[0].State != api.VMStopped || !strings.Contains(changed[0].LastError, "interrupted") {
		t.Fatalf("changed = %+v", changed)
	}
	if _, err := os.Stat(f.rt.Layout.VM(f.vm.ID).SockDir); !os.IsNotExist(err) {
		t.Errorf("socket dir left behind: %v", err)
	}
}

// Per-VM directories whose VM has no record (a delete interrupted after the
// row went) are removed; anything not named like a VM id is left alone.
func TestReconcileSweepsFilesWithoutRecord(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.rt.Provision(ctx, f.vm, nop); err != nil {
		t.Fatal(err)
	}
	l := f.rt.Layout
	orphan := l.VM("deadbeef")
	for _, d := range []string{orphan.Dir, orphan.SockDir, filepath.Join(l.VMsDir(), "not-a-vm")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.rt.Reconcile(ctx, []api.VM{f.vm}); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{orphan.Dir, orphan.SockDir} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s survived the sweep: %v", gone, err)
		}
	}
	for _, kept := range []string{l.VM(f.vm.ID).WorkDisk(), filepath.Join(l.VMsDir(), "not-a-vm"), l.RuntimeDir} {
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("%s was removed: %v", kept, err)
		}
	}
}

// A resume interrupted after its VMM launched, before the record said
// running, leaves a VMM nobody recorded: reconcile ends it and the VM stays
// suspended (its saved state is still on disk); its tap goes too.
func TestReconcileKeepsSuspendedEndsItsVMM(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.rt.Provision(ctx, f.vm, nop); err != nil {
		t.Fatal(err)
	}
	started, err := f.rt.Start(ctx, f.vm, nop)
	if err != nil {
		t.Fatal(err)
	}
	rec := f.vm
	rec.State = api.VMSuspended
	changed, notes, err := f.rt.Reconcile(ctx, []api.VM{rec})
	if err != nil {
		t.Fatal(err)
	}
	if f.rt.Alive(started) {
		t.Fatalf("the unrecorded VMM (pid %d) still runs; notes: %v", started.PID, notes)
	}
	if len(changed) != 0 {
		t.Errorf("a suspended VM with pid 0 was changed: %+v", changed)
	}
	// A stale pid on a suspended record is cleared, the state kept.
	rec.PID = started.PID
	changed, _, err = f.rt.Reconcile(ctx, []api.VM{rec})
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].State != api.VMSuspended || changed[0].PID != 0 {
		t.Errorf("changed = %+v, want the VM suspended with pid 0", changed)
	}
}
