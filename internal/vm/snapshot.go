package vm

// Snapshots, restore and suspend: records and rules here, files and VMM
// work in the SnapshotRuntime (internal/vmruntime).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/store"
	"github.com/banger-dev/banger/internal/validate"
)

// SnapshotRuntime saves and restores VM state (internal/vmruntime).
type SnapshotRuntime interface {
	// SnapshotsDir holds one directory per snapshot of vm.
	SnapshotsDir(vm api.VM) string
	// SuspendDir holds a suspended vm's saved state.
	SuspendDir(vm api.VM) string
	// Capture saves vm into dir (which must not exist; removed on error):
	// memory and device state when memory, both disks when disks. A
	// running VM is paused throughout and resumed at the end when resume.
	Capture(ctx context.Context, vm api.VM, dir string, memory, disks, resume bool, progress func(api.Progress)) (api.SnapshotManifest, error)
	// CheckManifest lists what no longer matches the snapshot's needs.
	CheckManifest(ctx context.Context, vm api.VM, m api.SnapshotManifest, memory bool) ([]string, error)
	// RestoreDisks puts the snapshot's disks in place of a stopped vm's.
	RestoreDisks(ctx context.Context, vm api.VM, dir string, m api.SnapshotManifest) error
	// ResumeFrom starts vm from the state saved in dir and waits for its
	// agent.
	ResumeFrom(ctx context.Context, vm api.VM, dir string, progress func(api.Progress)) (api.VM, error)
	// ReadManifest reads a complete snapshot directory's manifest.
	ReadManifest(dir string) (api.SnapshotManifest, error)
	// SizeOnDisk is what a snapshot directory occupies.
	SizeOnDisk(dir string) int64
	// CloneDisks gives a new VM the disks saved in dir.
	CloneDisks(ctx context.Context, dst api.VM, dir string, m api.SnapshotManifest) error
	// Reidentify gives a cloned guest its own machine-id, SSH host keys
	// and hostname, and with memory its MAC and address.
	Reidentify(ctx context.Context, vm api.VM, memory bool) error
	// WaitIdentity waits until the clone's agent reports its name and its
	// sshd answers.
	WaitIdentity(ctx context.Context, vm api.VM) error
}

// tmpPrefix names a snapshot directory still being written.
const tmpPrefix = ".tmp-"

func (s *Service) snapshots() (SnapshotRuntime, error) {
	if s.Snapshots == nil {
		return nil, api.NewError(api.CodeFailedPrecondition, "this bangerd has no snapshot support", "")
	}
	return s.Snapshots, nil
}

// SnapshotCreate saves a VM: memory and device state too when it runs
// (unless NoMemory), both disks always.
func (s *Service) SnapshotCreate(ctx context.Context, p api.SnapshotCreateParams, progress func(api.Progress)) (api.Snapshot, error) {
	if p.Name == "" {
		p.Name = "snap-" + time.Now().UTC().Format("20060102-150405")
	}
	if err := validate.SnapshotName(p.Name); err != nil {
		return api.Snapshot{}, invalid(err)
	}
	vm, unlock, err := s.getLocked(ctx, p.VM)
	if err != nil {
		return api.Snapshot{}, err
	}
	defer unlock()
	vm = s.settle(ctx, vm)
	return s.snapshotLocked(ctx, vm, p, orNop(progress))
}

func (s *Service) snapshotLocked(ctx context.Context, vm api.VM, p api.SnapshotCreateParams, progress func(api.Progress)) (api.Snapshot, error) {
	rt, err := s.snapshots()
	if err != nil {
		return api.Snapshot{}, err
	}
	switch vm.State {
	case api.VMRunning, api.VMStopped, api.VMError:
	case api.VMSuspended:
		return api.Snapshot{}, api.NewError(api.CodeConflict, "VM "+vm.Name+" is suspended",
			"resume it first (banger vm resume "+vm.Name+")")
	default:
		return api.Snapshot{}, api.NewError(api.CodeConflict, "VM "+vm.Name+" is "+string(vm.State), "wait for it to finish, then retry")
	}
	if _, err := s.Store.GetSnapshot(ctx, vm.ID, p.Name); err == nil {
		return api.Snapshot{}, api.NewError(api.CodeAlreadyExists,
			fmt.Sprintf("VM %s already has a snapshot named %q", vm.Name, p.Name),
			"pick another --name, or delete it (banger vm snapshot delete "+vm.Name+" "+p.Name+")")
	} else if !errors.Is(err, store.ErrNotFound) {
		return api.Snapshot{}, err
	}
	running := vm.State == api.VMRunning
	memory := running && !p.NoMemory
	final := filepath.Join(rt.SnapshotsDir(vm), p.Name)
	tmp := filepath.Join(rt.SnapshotsDir(vm), tmpPrefix+p.Name)
	// Directories without a row are leftovers of a crash: not snapshots.
	_ = os.RemoveAll(tmp)
	_ = os.RemoveAll(final)
	m, err := rt.Capture(ctx, vm, tmp, memory, true, !p.Stop, progress)
	if err != nil {
		return api.Snapshot{}, s.snapErr(vm, "snapshot", err)
	}
	// Files complete, then the name, then the row: a crash before the row
	// leaves a directory the next daemon start removes.
	crashPoint("snapshot", "rename")
	if err := os.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp)
		return api.Snapshot{}, err
	}
	crashPoint("snapshot", "record")
	snap, err := s.Store.AddSnapshot(ctx, api.Snapshot{VMID: vm.ID, VM: vm.Name, Name: p.Name, HasMemory: memory,
		SizeBytes: rt.SizeOnDisk(final), Manifest: m})
	if err != nil {
		_ = os.RemoveAll(final)
		return api.Snapshot{}, s.mapErr(err)
	}
	if p.Stop && running {
		// The VM is paused at the saved instant: no graceful shutdown.
		if _, err := s.stopLocked(ctx, vm.ID, true); err != nil {
			return snap, err
		}
	}
	return snap, nil
}

// snapErr passes API errors through and names the VM and operation on
// others.
func (s *Service) snapErr(vm api.VM, op string, err error) error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return err
	}
	return api.NewError(api.CodeInternal, fmt.Sprintf("%s VM %s: %v", op, vm.Name, err), "")
}

// SnapshotList lists a VM's snapshots, oldest first.
func (s *Service) SnapshotList(ctx context.Context, name string) ([]api.Snapshot, error) {
	vm, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.Store.ListSnapshots(ctx, vm.ID)
}

func (s *Service) getSnapshot(ctx context.Context, vm api.VM, name string) (api.Snapshot, error) {
	snap, err := s.Store.GetSnapshot(ctx, vm.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return snap, api.NewError(api.CodeNotFound, fmt.Sprintf("VM %s has no snapshot named %q", vm.Name, name),
			"list them with `banger vm snapshot list "+vm.Name+"`")
	}
	return snap, err
}

// SnapshotDelete removes a snapshot: its row first (a crash then leaves
// only a directory, removed at the next daemon start), then its files.
func (s *Service) SnapshotDelete(ctx context.Context, ref api.SnapshotRef) error {
	rt, err := s.snapshots()
	if err != nil {
		return err
	}
	vm, err := s.Get(ctx, ref.VM)
	if err != nil {
		return err
	}
	unlock := s.lock(vm.ID)
	defer unlock()
	if _, err := s.getSnapshot(ctx, vm, ref.Name); err != nil {
		return err
	}
	if err := s.Store.DeleteSnapshot(ctx, vm.ID, ref.Name); err != nil {
		return s.mapErr(err)
	}
	crashPoint("snapshot-delete", "remove-files")
	return os.RemoveAll(filepath.Join(rt.SnapshotsDir(vm), ref.Name))
}

// Restore returns a VM to a snapshot. The current state is saved first as
// a safety snapshot unless NoSafety. With memory the guest resumes where
// the snapshot was taken; without, it boots from the snapshot's disks.
func (s *Service) Restore(ctx context.Context, p api.VMRestoreParams, progress func(api.Progress)) (api.VMRestoreResult, error) {
	progress = orNop(progress)
	rt, err := s.snapshots()
	if err != nil {
		return api.VMRestoreResult{}, err
	}
	vm, unlock, err := s.getLocked(ctx, p.VM)
	if err != nil {
		return api.VMRestoreResult{}, err
	}
	defer unlock()
	vm = s.settle(ctx, vm)
	snap, err := s.getSnapshot(ctx, vm, p.Snapshot)
	if err != nil {
		return api.VMRestoreResult{}, err
	}
	switch vm.State {
	case api.VMRunning, api.VMStopped, api.VMError:
	case api.VMSuspended:
		return api.VMRestoreResult{}, api.NewError(api.CodeConflict, "VM "+vm.Name+" is suspended",
			"resume it (banger vm resume "+vm.Name+") or stop it (banger vm stop "+vm.Name+") first")
	default:
		return api.VMRestoreResult{}, api.NewError(api.CodeConflict, "VM "+vm.Name+" is "+string(vm.State), "wait for it to finish, then retry")
	}
	dir := filepath.Join(rt.SnapshotsDir(vm), snap.Name)
	bad, err := rt.CheckManifest(ctx, vm, snap.Manifest, snap.HasMemory)
	if err != nil {
		return api.VMRestoreResult{}, s.snapErr(vm, "restore", err)
	}
	if len(bad) > 0 {
		return api.VMRestoreResult{}, api.NewError(api.CodeFailedPrecondition,
			fmt.Sprintf("snapshot %s of %s cannot be restored: %s", snap.Name, vm.Name, strings.Join(bad, "; ")),
			"restore another snapshot, or put the recorded kernel/image/VMM back")
	}
	var res api.VMRestoreResult
	if !p.NoSafety {
		name := "safety-" + time.Now().UTC().Format("20060102-150405")
		// Two restores within a second: the second safety snapshot gets a
		// suffix rather than failing on the name.
		for n := 2; ; n++ {
			if _, err := s.Store.GetSnapshot(ctx, vm.ID, name); err != nil {
				break
			}
			name = fmt.Sprintf("safety-%s-%d", time.Now().UTC().Format("20060102-150405"), n)
		}
		progress(api.Progress{Step: "safety", Message: "saving the current state as snapshot " + name})
		if _, err := s.snapshotLocked(ctx, vm, api.SnapshotCreateParams{Name: name, Stop: vm.State == api.VMRunning}, progress); err != nil {
			return res, fmt.Errorf("safety snapshot (skip it with --no-safety): %w", err)
		}
		res.Safety = name
	} else if vm.State == api.VMRunning {
		if _, err := s.stopLocked(ctx, vm.ID, true); err != nil {
			return res, err
		}
	}
	if vm, err = s.Get(ctx, vm.ID); err != nil {
		return res, err
	}
	if vm.State == api.VMError {
		_, _ = s.Runtime.Stop(ctx, vm, true) // a failed start may have left a VMM
	}
	crashPoint("restore", "restore-disks")
	progress(api.Progress{Step: "restore-disks", Message: "putting the snapshot's disks in place"})
	if err := rt.RestoreDisks(ctx, vm, dir, snap.Manifest); err != nil {
		return res, s.snapErr(vm, "restore", err)
	}
	if !snap.HasMemory {
		res.VM, err = s.start(ctx, vm, progress, true)
		return res, err
	}
	crashPoint("restore", "resume")
	res.VM, err = s.resumeFrom(ctx, vm, dir, progress)
	return res, err
}

// resumeFrom starts vm from saved state and records it running; a failure
// is recorded in the VM's last error with the VM stopped.
func (s *Service) resumeFrom(ctx context.Context, vm api.VM, dir string, progress func(api.Progress)) (api.VM, error) {
	rt, err := s.snapshots()
	if err != nil {
		return vm, err
	}
	if err := s.preflight(ctx, CheckStart, vm); err != nil {
		return api.VM{}, err
	}
	started, err := rt.ResumeFrom(ctx, vm, dir, progress)
	defer s.changed(ctx)
	if err != nil {
		return api.VM{}, s.snapErr(vm, "resume", err)
	}
	empty := ""
	st := api.VMRunning
	out, err := s.Store.UpdateVM(context.Background(), vm.ID, store.VMUpdate{
		State: &st, VMM: &started.VMM, PID: &started.PID, StartedAt: started.StartedAt, LastError: &empty,
	})
	if err != nil {
		return api.VM{}, s.mapErr(err)
	}
	out.DiskAllocatedBytes = s.allocated(out.ID)
	return out, nil
}

// Suspend saves a running VM's memory and device state to disk and ends its
// VMM: host RAM is freed, the record says suspended.
func (s *Service) Suspend(ctx context.Context, name string, progress func(api.Progress)) (api.VM, error) {
	rt, err := s.snapshots()
	if err != nil {
		return api.VM{}, err
	}
	vm, unlock, err := s.getLocked(ctx, name)
	if err != nil {
		return api.VM{}, err
	}
	defer unlock()
	vm = s.settle(ctx, vm)
	if vm.State != api.VMRunning {
		return api.VM{}, api.NewError(api.CodeConflict, "VM "+vm.Name+" is "+string(vm.State)+": only a running VM can be suspended", "")
	}
	dir := rt.SuspendDir(vm)
	_ = os.RemoveAll(dir) // not suspended, so a leftover
	if _, err := rt.Capture(ctx, vm, dir, true, false, false, orNop(progress)); err != nil {
		return api.VM{}, s.snapErr(vm, "suspend", err)
	}
	// The VM stays paused at the saved instant until its VMM is gone.
	crashPoint("suspend", "stop-vmm")
	if _, err := s.Runtime.Stop(ctx, vm, true); err != nil {
		_ = os.RemoveAll(dir)
		_, _ = s.Store.SetVMState(context.Background(), vm.ID, api.VMError, err.Error())
		return api.VM{}, fmt.Errorf("suspend VM %s: %w", vm.Name, err)
	}
	crashPoint("suspend", "record")
	st, zero, empty := api.VMSuspended, 0, ""
	out, err := s.Store.UpdateVM(context.Background(), vm.ID, store.VMUpdate{State: &st, PID: &zero, LastError: &empty, ClearStartedAt: true})
	s.changed(ctx)
	return out, s.mapErr(err)
}

// Resume continues a suspended VM where it was.
func (s *Service) Resume(ctx context.Context, name string, progress func(api.Progress)) (api.VM, error) {
	rt, err := s.snapshots()
	if err != nil {
		return api.VM{}, err
	}
	vm, unlock, err := s.getLocked(ctx, name)
	if err != nil {
		return api.VM{}, err
	}
	defer unlock()
	if vm.State != api.VMSuspended {
		return api.VM{}, api.NewError(api.CodeConflict, "VM "+vm.Name+" is "+string(vm.State)+", not suspended", "")
	}
	dir := rt.SuspendDir(vm)
	m, err := rt.ReadManifest(dir)
	if err != nil {
		return api.VM{}, api.NewError(api.CodeFailedPrecondition, fmt.Sprintf("VM %s: saved state unreadable: %v", vm.Name, err),
			"stop it (banger vm stop "+vm.Name+") to discard the saved state and boot it again")
	}
	if bad, err := rt.CheckManifest(ctx, vm, m, true); err != nil {
		return api.VM{}, s.snapErr(vm, "resume", err)
	} else if len(bad) > 0 {
		return api.VM{}, api.NewError(api.CodeFailedPrecondition,
			fmt.Sprintf("VM %s cannot resume: %s", vm.Name, strings.Join(bad, "; ")),
			"stop it (banger vm stop "+vm.Name+") to discard the saved state and boot it again")
	}
	out, err := s.resumeFrom(ctx, vm, dir, orNop(progress))
	if err != nil {
		return api.VM{}, err
	}
	crashPoint("resume", "remove-state")
	_ = os.RemoveAll(dir)
	return out, nil
}

// reconcileSnapshots runs at daemon start after the runtime's reconcile:
// snapshot directories without a row (a create or delete interrupted) are
// removed, rows whose files are gone are dropped, and saved suspend state
// is kept only for a VM that is suspended (or whose suspend was interrupted
// after its VMM ended).
func (s *Service) reconcileSnapshots(ctx context.Context) ([]string, error) {
	if s.Snapshots == nil {
		return nil, nil
	}
	rt := s.Snapshots
	vms, err := s.Store.ListVMs(ctx)
	if err != nil {
		return nil, err
	}
	var notes []string
	for _, vm := range vms {
		if _, err := os.Stat(filepath.Join(s.Layout.VM(vm.ID).Dir, cloneMarker)); err == nil {
			// A clone interrupted before it was finished: remove it all.
			if vm.PID > 0 {
				_, _ = s.Runtime.Stop(ctx, vm, true)
			}
			s.undoCreate(vm)
			notes = append(notes, vm.Name+": removed a clone that was interrupted before it was finished")
			continue
		}
		rows, err := s.Store.ListSnapshots(ctx, vm.ID)
		if err != nil {
			return notes, err
		}
		known := map[string]bool{}
		for _, r := range rows {
			dir := filepath.Join(rt.SnapshotsDir(vm), r.Name)
			if _, err := rt.ReadManifest(dir); err != nil {
				if err := s.Store.DeleteSnapshot(ctx, vm.ID, r.Name); err == nil {
					notes = append(notes, fmt.Sprintf("%s: snapshot %s dropped: its files are incomplete (%v)", vm.Name, r.Name, err))
				}
				_ = os.RemoveAll(dir)
				continue
			}
			known[r.Name] = true
		}
		entries, _ := os.ReadDir(rt.SnapshotsDir(vm))
		for _, e := range entries {
			if known[e.Name()] {
				continue
			}
			p := filepath.Join(rt.SnapshotsDir(vm), e.Name())
			if err := os.RemoveAll(p); err == nil {
				notes = append(notes, fmt.Sprintf("%s: removed %s left by an interrupted snapshot", vm.Name, p))
			}
		}
		dir := rt.SuspendDir(vm)
		if _, err := os.Stat(dir); err != nil {
			if vm.State == api.VMSuspended {
				st, msg := api.VMStopped, "its saved state is missing; it boots afresh on the next start"
				_, _ = s.Store.SetVMState(ctx, vm.ID, st, msg)
				notes = append(notes, vm.Name+": suspended but "+msg)
			}
			continue
		}
		_, merr := rt.ReadManifest(dir)
		switch {
		case vm.State == api.VMSuspended && merr == nil:
		case vm.State == api.VMStopped && merr == nil && !s.Runtime.Alive(vm):
			// The VMM ended after the state was saved, before the record
			// said suspended.
			_, _ = s.Store.SetVMState(ctx, vm.ID, api.VMSuspended, "")
			notes = append(notes, vm.Name+": suspend was interrupted after the state was saved; marked suspended")
		default:
			_ = os.RemoveAll(dir)
			if vm.State == api.VMSuspended {
				_, _ = s.Store.SetVMState(ctx, vm.ID, api.VMStopped, "its saved state was incomplete; it boots afresh on the next start")
			}
			notes = append(notes, fmt.Sprintf("%s: removed saved state %s (VM is %s)", vm.Name, dir, vm.State))
		}
	}
	return notes, nil
}
