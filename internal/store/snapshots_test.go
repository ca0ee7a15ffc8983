package store

import (
	"errors"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

func TestSnapshots(t *testing.T) {
	s := openTest(t)
	seedImage(t, s, "debian")
	vm, err := s.CreateVM(ctx, newVM("dev", "172.30.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateVM(ctx, newVM("other", "172.30.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	m := api.SnapshotManifest{Kernel: "/k", KernelSHA256: "aa", Image: "debian", ImageSHA256: "bb", VMM: "qemu", VMMVersion: "7.2.22", RootDisk: "rootfs.qcow2"}
	snap, err := s.AddSnapshot(ctx, api.Snapshot{VMID: vm.ID, VM: "dev", Name: "one", HasMemory: true, SizeBytes: 1234, Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	if snap.VM != "dev" || !snap.HasMemory || snap.SizeBytes != 1234 || snap.Manifest != m || snap.CreatedAt.IsZero() {
		t.Errorf("stored snapshot = %+v", snap)
	}
	if _, err := s.AddSnapshot(ctx, api.Snapshot{VMID: vm.ID, VM: "dev", Name: "one"}); !errors.Is(err, ErrNameTaken) {
		t.Errorf("duplicate name: %v, want ErrNameTaken", err)
	}
	// The name is per VM.
	if _, err := s.AddSnapshot(ctx, api.Snapshot{VMID: other.ID, VM: "other", Name: "one"}); err != nil {
		t.Errorf("same name on another VM: %v", err)
	}
	if _, err := s.AddSnapshot(ctx, api.Snapshot{VMID: vm.ID, VM: "dev", Name: "two"}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListSnapshots(ctx, vm.ID)
	if err != nil || len(list) != 2 || list[0].Name != "one" || list[1].Name != "two" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if _, err := s.GetSnapshot(ctx, vm.ID, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown snapshot: %v", err)
	}
	if err := s.DeleteSnapshot(ctx, vm.ID, "one"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSnapshot(ctx, vm.ID, "one"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	// Deleting the VM removes its snapshots' rows.
	if err := s.DeleteVM(ctx, vm.ID); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListSnapshots(ctx, vm.ID); len(list) != 0 {
		t.Errorf("snapshots of a deleted VM: %+v", list)
	}
	if _, err := s.AddSnapshot(ctx, api.Snapshot{VMID: "deadbeef", Name: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("snapshot of a missing VM: %v", err)
	}
}
