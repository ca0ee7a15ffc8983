package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/store"
	"github.com/banger-dev/banger/internal/validate"
)

// cloneMarker, in a VM's directory, marks a clone not yet finished.
const cloneMarker = "clone.incomplete"

// Clone makes a new VM from Source's current state or one of its
// snapshots. The clone gets its own record and so its own name, address,
// MAC, tap, vsock CID and DNS name; its guest is then given a new
// machine-id, SSH host keys and hostname (and with memory its address)
// through the agent. Source is paused only while its state is captured.
// Nothing is shared: the clone's disks are copies (reflinks where the
// filesystem can).
func (s *Service) Clone(ctx context.Context, p api.VMCloneParams, progress func(api.Progress)) (api.VM, error) {
	progress = orNop(progress)
	rt, err := s.snapshots()
	if err != nil {
		return api.VM{}, err
	}
	if err := validate.VMName(p.Name); err != nil {
		return api.VM{}, invalid(err)
	}
	src, err := s.Get(ctx, p.Source)
	if err != nil {
		return api.VM{}, err
	}
	unlock := s.lock(src.ID)
	defer unlock()
	if src, err = s.Get(ctx, src.ID); err != nil {
		return api.VM{}, err
	}
	src = s.settle(ctx, src)
	var (
		dir    string
		m      api.SnapshotManifest
		memory bool
	)
	if p.Snapshot != "" {
		snap, err := s.getSnapshot(ctx, src, p.Snapshot)
		if err != nil {
			return api.VM{}, err
		}
		dir, m, memory = filepath.Join(rt.SnapshotsDir(src), snap.Name), snap.Manifest, snap.HasMemory
		bad, err := rt.CheckManifest(ctx, src, m, memory)
		if err != nil {
			return api.VM{}, s.snapErr(src, "clone", err)
		}
		if len(bad) > 0 {
			return api.VM{}, api.NewError(api.CodeFailedPrecondition,
				fmt.Sprintf("snapshot %s of %s cannot be cloned: %s", snap.Name, src.Name, strings.Join(bad, "; ")), "")
		}
	} else {
		switch src.State {
		case api.VMRunning, api.VMStopped, api.VMError:
		default:
			return api.VM{}, api.NewError(api.CodeConflict, "VM "+src.Name+" is "+string(src.State),
				"clone it when it runs or is stopped, or clone one of its snapshots with --snapshot")
		}
		memory = src.State == api.VMRunning
	}
	shape := api.VM{Name: p.Name, Image: src.Image, VCPUs: src.VCPUs, MemoryMiB: src.MemoryMiB, DiskBytes: src.DiskBytes}
	if err := s.preflight(ctx, CheckStart, shape); err != nil {
		return api.VM{}, err
	}
	// A clone is a new VM: the host's limits hold for it as for a create.
	if err := s.checkMemoryLimit(src.MemoryMiB); err != nil {
		return api.VM{}, err
	}
	s.createMu.Lock()
	if err := s.checkCountLimit(ctx); err != nil {
		s.createMu.Unlock()
		return api.VM{}, err
	}
	// Port forwards are not copied: the source holds those host ports.
	vm, err := s.Store.CreateVM(ctx, store.NewVM{
		Name: p.Name, Image: src.Image, VCPUs: src.VCPUs, MemoryMiB: src.MemoryMiB, DiskBytes: src.DiskBytes,
		Subnet: s.Config.Subnet, VsockPath: func(id string) string { return s.Layout.VM(id).VsockSocket() },
		AutoForward: src.AutoForward,
	})
	s.createMu.Unlock()
	if err != nil {
		return api.VM{}, s.mapErr(err)
	}
	unlockNew := s.lock(vm.ID)
	defer unlockNew()
	// The marker says the clone is unfinished: a daemon killed before it
	// is removed leaves a VM that the next start deletes (reconcile).
	marker := filepath.Join(s.Layout.VM(vm.ID).Dir, cloneMarker)
	if err := os.MkdirAll(filepath.Dir(marker), 0o700); err != nil {
		s.undoCreate(vm)
		return api.VM{}, err
	}
	if err := os.WriteFile(marker, []byte(src.Name+"\n"), 0o600); err != nil {
		s.undoCreate(vm)
		return api.VM{}, err
	}
	fail := func(err error) (api.VM, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if cur, gerr := s.Store.GetVM(ctx, vm.ID); gerr == nil && cur.PID > 0 {
			_, _ = s.Runtime.Stop(ctx, cur, true)
		}
		s.undoCreate(vm)
		return api.VM{}, s.snapErr(vm, "clone", err)
	}
	if p.Snapshot == "" {
		// The source's state, captured as a snapshot would be, inside the
		// clone's own directory (removed with it on failure).
		dir = filepath.Join(s.Layout.VM(vm.ID).Dir, "clone-source")
		if m, err = rt.Capture(ctx, src, dir, memory, true, true, progress); err != nil {
			return fail(err)
		}
	}
	crashPoint("clone", "clone-disks")
	progress(api.Progress{Step: "clone-disks", Message: "copying the disks for " + vm.Name})
	if err := rt.CloneDisks(ctx, vm, dir, m); err != nil {
		return fail(err)
	}
	if memory {
		vm.VMM = m.VMM
		started, err := rt.ResumeFrom(ctx, vm, dir, progress)
		if err != nil {
			return fail(err)
		}
		// Record the VMM at once so a failure below (or a crash) stops it.
		if _, err := s.Store.UpdateVM(context.Background(), vm.ID, store.VMUpdate{VMM: &started.VMM, PID: &started.PID}); err != nil {
			_, _ = s.Runtime.Stop(context.Background(), started, true)
			return fail(err)
		}
		vm = started
	} else {
		started, err := s.start(ctx, vm, progress, false)
		if err != nil {
			return fail(err)
		}
		vm = started
	}
	progress(api.Progress{Step: "identity", Message: "new machine-id, SSH host keys, hostname and address for " + vm.Name})
	if err := rt.Reidentify(ctx, vm, memory); err != nil {
		return fail(err)
	}
	if err := rt.WaitIdentity(ctx, vm); err != nil {
		return fail(err)
	}
	if p.Snapshot == "" {
		_ = os.RemoveAll(dir)
	}
	crashPoint("clone", "record")
	st, empty := api.VMRunning, ""
	now := time.Now()
	if vm.StartedAt != nil {
		now = *vm.StartedAt
	}
	out, err := s.Store.UpdateVM(context.Background(), vm.ID, store.VMUpdate{
		State: &st, VMM: &vm.VMM, PID: &vm.PID, StartedAt: &now, LastError: &empty,
	})
	s.changed(ctx)
	if err != nil {
		return api.VM{}, s.mapErr(err)
	}
	_ = os.Remove(marker)
	out.DiskAllocatedBytes = s.allocated(out.ID)
	return out, nil
}
