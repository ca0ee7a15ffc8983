package vm

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/store"
)

// A VMM that dies behind the daemon's back: the next read reports the VM
// stopped with the reason, its leftovers are cleaned, and it starts again.
func TestDeadVMMIsSettledOnRead(t *testing.T) {
	rt := &recordingRuntime{}
	s := newService(t, rt)
	if _, err := s.Create(ctx, api.VMCreateParams{Name: "dev"}, nil); err != nil {
		t.Fatal(err)
	}
	rt.dead.Store(true)
	vm, err := s.Get(ctx, "dev")
	if err != nil || vm.State != api.VMStopped || vm.PID != 0 || !strings.Contains(vm.LastError, "exited") {
		t.Fatalf("after the VMM died: %+v %v", vm, err)
	}
	if last := rt.calls[len(rt.calls)-1]; last != "stop dev" {
		t.Errorf("leftovers not cleaned: last runtime call %q", last)
	}
	rt.dead.Store(false)
	if vm, err = s.Start(ctx, "dev", nil); err != nil || vm.State != api.VMRunning || vm.LastError != "" {
		t.Fatalf("start after the VMM died: %+v %v", vm, err)
	}
}

// A create the host cannot boot is refused before the record exists.
func TestCreatePreflightRefusesBeforeRecording(t *testing.T) {
	rt := &recordingRuntime{}
	s := newService(t, rt)
	s.Preflight = func(context.Context, Check, api.VM) error {
		rt.rec("preflight")
		return api.NewError(api.CodeFailedPrecondition, "cannot start a VM: firecracker missing", "install it")
	}
	if _, err := s.Create(ctx, api.VMCreateParams{Name: "dev"}, nil); code(err) != api.CodeFailedPrecondition {
		t.Fatalf("err = %v", err)
	}
	if vms, _ := s.List(ctx); len(vms) != 0 {
		t.Fatalf("refused create left %+v", vms)
	}
	if strings.Join(rt.calls, ",") != "preflight" {
		t.Fatalf("runtime calls %v: want only the preflight", rt.calls)
	}
	// --no-start boots nothing, so it is not held to the boot checks.
	if _, err := s.Create(ctx, api.VMCreateParams{Name: "dev", NoStart: true}, nil); err != nil {
		t.Fatal(err)
	}
}

// A start refused by a precondition leaves the VM as it was.
func TestRefusedStartChangesNothing(t *testing.T) {
	rt := &recordingRuntime{}
	s := newService(t, rt)
	if _, err := s.Create(ctx, api.VMCreateParams{Name: "dev", NoStart: true}, nil); err != nil {
		t.Fatal(err)
	}
	rt.failStart = api.NewError(api.CodeFailedPrecondition, "cannot start a VM: 1 host check failed (nothing was changed)", "fix")
	if _, err := s.Start(ctx, "dev", nil); code(err) != api.CodeFailedPrecondition {
		t.Fatalf("err = %v", err)
	}
	vm, _ := s.Get(ctx, "dev")
	if vm.State != api.VMStopped || vm.LastError != "" {
		t.Fatalf("refused start changed the VM: %+v", vm)
	}
	// Any other failure is recorded.
	rt.failStart = errors.New("boom")
	s.Start(ctx, "dev", nil)
	if vm, _ = s.Get(ctx, "dev"); vm.State != api.VMError {
		t.Fatalf("failed start not recorded: %+v", vm)
	}
}

// Delete removes the record before the files, so an interruption leaves
// only files with no VM (swept at the next daemon start), never a VM whose
// disks are gone.
func TestDeleteRemovesRecordFirst(t *testing.T) {
	rt := &recordingRuntime{}
	s := newService(t, rt)
	if _, err := s.Create(ctx, api.VMCreateParams{Name: "dev", NoStart: true}, nil); err != nil {
		t.Fatal(err)
	}
	destroyed := false
	rt.onDestroy = func(vm api.VM) {
		destroyed = true
		if _, err := s.Store.GetVM(ctx, vm.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("files destroyed while the record still exists (GetVM: %v)", err)
		}
	}
	if err := s.Delete(ctx, "dev", false); err != nil || !destroyed {
		t.Fatal(err, destroyed)
	}
}

// Summaries agree with List on every field the table shows, including the
// disk really allocated and a running VM whose VMM died (settled: stopped).
func TestSummariesMatchList(t *testing.T) {
	rt := &recordingRuntime{}
	s := newService(t, rt)
	for _, p := range []api.VMCreateParams{{Name: "up"}, {Name: "gone"}, {Name: "rec", NoStart: true}} {
		if _, err := s.Create(ctx, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Store.CreateVM(ctx, store.NewVM{Name: "bare", Image: "debian", VCPUs: 1, MemoryMiB: 256, DiskBytes: 1 << 30,
		Subnet: netip.MustParsePrefix("172.30.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	sums, err := s.Summaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vms, err := s.List(ctx)
	if err != nil || len(vms) != len(sums) || len(vms) != 4 {
		t.Fatalf("%d summaries, %d VMs (%v)", len(sums), len(vms), err)
	}
	for i, vm := range vms {
		want := api.VMSummary{ID: vm.ID, Name: vm.Name, State: vm.State, IP: vm.IP, VCPUs: vm.VCPUs, MemoryMiB: vm.MemoryMiB,
			DiskBytes: vm.DiskBytes, DiskAllocatedBytes: vm.DiskAllocatedBytes, Image: vm.Image, CreatedAt: vm.CreatedAt}
		if sums[i] != want {
			t.Errorf("summary %+v\n  want %+v", sums[i], want)
		}
	}
	if sums[3].Name != "up" || sums[3].State != api.VMRunning || sums[3].DiskAllocatedBytes <= 0 || sums[0].DiskAllocatedBytes != 0 {
		t.Errorf("summaries %+v", sums)
	}

	rt.dead.Store(true)
	if sums, err = s.Summaries(ctx); err != nil {
		t.Fatal(err)
	}
	for _, v := range sums {
		if v.State == api.VMRunning {
			t.Errorf("%s still running after its VMM died", v.Name)
		}
	}
	if vm, _ := s.Store.GetVM(ctx, "up"); vm.State != api.VMStopped || !strings.Contains(vm.LastError, "exited") {
		t.Errorf("dead VMM not settled in the store: %+v", vm)
	}
}
