// Package vm is the VM service behind the daemon's vm.* methods: it validates
// requests, keeps VM records in the store and delegates everything that
// touches a hypervisor, disk or network to a Runtime.
package vm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/config"
	"github.com/banger-dev/banger/internal/consolelog"
	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/hostinfo"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/portfwd"
	"github.com/banger-dev/banger/internal/store"
	"github.com/banger-dev/banger/internal/validate"
)

// Runtime does the real work of a VM's life: disks, network, hypervisor.
// The daemon wires the real one (internal/vmruntime); tests use a fake.
type Runtime interface {
	// Provision creates the per-VM disks at vm create.
	Provision(ctx context.Context, vm api.VM, progress func(api.Progress)) error
	// Start boots the VM and returns it with VMM, PID, StartedAt and State set.
	Start(ctx context.Context, vm api.VM, progress func(api.Progress)) (api.VM, error)
	// Stop shuts the VM down (force: kill the VMM without a graceful shutdown).
	Stop(ctx context.Context, vm api.VM, force bool) (api.VM, error)
	Health(ctx context.Context, vm api.VM) (api.VMHealthResult, error)
	// Destroy removes disks, tap and sockets of a stopped VM.
	Destroy(ctx context.Context, vm api.VM) error
	// Reconcile checks VMs against reality at daemon start; it returns the
	// VMs whose record must change and notes on what it fixed.
	Reconcile(ctx context.Context, vms []api.VM) ([]api.VM, []string, error)
	// ResizeDisk grows a stopped VM's work disk.
	ResizeDisk(ctx context.Context, vm api.VM, newBytes int64) error
	// Alive reports whether a VM's recorded VMM process still runs.
	Alive(vm api.VM) bool
	// DialAgent opens a connection to a running VM's guest agent.
	DialAgent(ctx context.Context, vm api.VM) (net.Conn, error)
}

// Check names the host checks Preflight runs before an operation.
type Check string

const (
	// CheckStart: the host can boot this VM (vm create, start, restart).
	CheckStart Check = "vm-start"
	// CheckDiskResize: the work disk of this stopped VM can grow.
	CheckDiskResize Check = "disk-resize"
)

// Service implements the vm.* methods. Set the exported fields, then use it;
// it is safe for concurrent use.
type Service struct {
	Store   *store.Store
	Config  config.Config
	Layout  paths.Layout
	Runtime Runtime // required
	// Snapshots saves and restores VM state; nil refuses snapshot,
	// restore, suspend and resume.
	Snapshots SnapshotRuntime

	// Preflight, when set, checks the host before an operation changes
	// anything, so a host that cannot do it is refused with the failing
	// checks and their fixes, and nothing is left to undo.
	Preflight func(ctx context.Context, check Check, vm api.VM) error
	// OnChange, when set, runs after VM names or addresses may have changed
	// (a start, a delete), e.g. to rewrite an external DNS data file.
	OnChange func(ctx context.Context)

	// HostLimits reports host capacity for validation; nil reads the host.
	HostLimits func() validate.Limits
	// SSHKeyPath is the private key `vm ssh` uses; nil means
	// <bundle dir>/id_ed25519.
	SSHKeyPath func() string

	locks sync.Map // VM id -> *sync.Mutex: one lifecycle operation per VM at a time

	// provisionGuestDir and provisionUser, when set, replace the guest's
	// /var/lib/banger/provision and root (tests run the agent in-process).
	provisionGuestDir, provisionUser string
	// createMu makes max_vms's count and the new row one step: two
	// concurrent creates cannot both take the last place.
	createMu sync.Mutex
}

// checkMemoryLimit refuses memory above config.toml's max_vm_memory_mib.
func (s *Service) checkMemoryLimit(mib int) error {
	if max := s.Config.MaxVMMemoryMiB; max > 0 && mib > max {
		return api.NewError(api.CodeResourceExhausted,
			fmt.Sprintf("memory %d MiB is above this host's limit of %d MiB per VM (max_vm_memory_mib in config.toml)", mib, max),
			fmt.Sprintf("ask for at most --memory %dM, or raise max_vm_memory_mib in %s", max, s.configPath()))
	}
	return nil
}

// checkCountLimit refuses a VM past config.toml's max_vms. Callers hold
// createMu until the new row exists.
func (s *Service) checkCountLimit(ctx context.Context) error {
	max := s.Config.MaxVMs
	if max <= 0 {
		return nil
	}
	sums, err := s.Store.ListVMSummaries(ctx)
	if err != nil {
		return s.mapErr(err)
	}
	if len(sums) >= max {
		return api.NewError(api.CodeResourceExhausted,
			fmt.Sprintf("this host allows %d VMs (max_vms in config.toml) and has %d", max, len(sums)),
			"delete a VM (banger vm delete NAME), or raise max_vms in "+s.configPath())
	}
	return nil
}

func (s *Service) configPath() string {
	if s.Config.Path != "" {
		return s.Config.Path
	}
	return s.Layout.ConfigFile()
}

// crashHook, when set, is called at named points of stop and delete. The
// crash-safety tests set BANGER_TEST_CRASH_AT=<op>:<point> so the daemon
// SIGKILLs itself there, as a crash would. Create and start points live in
// internal/vmruntime under the same variable.
var crashHook func(op, point string)

// crashPointNames declares the service's own crashPoint calls (the
// runtime's steps are declared by vmruntime.StepNames) in the order they
// run. A test reads this package's source and fails when a call
// is missing here, so the crash-safety suite (test/e2e, through CrashPoints)
// covers a new point without anyone remembering to add it.
var crashPointNames = map[string][]string{
	"stop":            {"stop-vmm", "record"},
	"delete":          {"delete-row", "destroy"},
	"snapshot":        {"rename", "record"},
	"snapshot-delete": {"remove-files"},
	"restore":         {"restore-disks", "resume"},
	"suspend":         {"stop-vmm", "record"},
	"resume":          {"remove-state"},
	"clone":           {"clone-disks", "record"},
}

// CrashPoints returns the crash points of op ("stop", "snapshot", ...) in order:
// the places where BANGER_TEST_CRASH_AT=<op>:<point> kills the daemon.
func CrashPoints(op string) []string { return slices.Clone(crashPointNames[op]) }

func init() {
	if at := envknob.CrashAt.Value(); at != "" {
		crashHook = func(op, point string) {
			if op+":"+point == at {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Second)
			}
		}
	}
}

func crashPoint(op, point string) {
	if crashHook != nil {
		crashHook(op, point)
	}
}

// settle notices a VMM that died behind the daemon's back (killed, crashed,
// guest powered off): the VM is cleaned up (tap, sockets) and recorded as
// stopped with the reason, so `vm show` tells the truth and `vm start`
// works again. The caller holds the VM's lock.
func (s *Service) settle(ctx context.Context, vm api.VM) api.VM {
	if vm.State != api.VMRunning || vm.PID <= 0 || s.Runtime.Alive(vm) {
		return vm
	}
	reason := fmt.Sprintf("the %s process (pid %d) exited while the VM was running; `banger vm logs %s` shows the console",
		vm.VMM, vm.PID, vm.Name)
	if _, err := s.Runtime.Stop(ctx, vm, true); err != nil {
		reason += "; cleanup: " + err.Error()
	}
	st, zero := api.VMStopped, 0
	out, err := s.Store.UpdateVM(context.Background(), vm.ID, store.VMUpdate{
		State: &st, PID: &zero, LastError: &reason, ClearStartedAt: true,
	})
	if err != nil {
		return vm
	}
	out.DiskAllocatedBytes = vm.DiskAllocatedBytes
	return out
}

// refresh settles vm unless a lifecycle operation holds its lock (that
// operation owns the record and will settle it itself).
func (s *Service) refresh(ctx context.Context, vm api.VM) api.VM {
	if vm.State != api.VMRunning || vm.PID <= 0 {
		return vm
	}
	m, _ := s.locks.LoadOrStore(vm.ID, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	if !mu.TryLock() {
		return vm
	}
	defer mu.Unlock()
	return s.settle(ctx, vm)
}

// getLocked finds the VM, takes its lifecycle lock and reads the record
// again under it (another operation may have changed it meanwhile). The
// caller calls the returned unlock.
func (s *Service) getLocked(ctx context.Context, name string) (api.VM, func(), error) {
	vm, err := s.Get(ctx, name)
	if err != nil {
		return api.VM{}, nil, err
	}
	unlock := s.lock(vm.ID)
	if vm, err = s.Get(ctx, vm.ID); err != nil {
		unlock()
		return api.VM{}, nil, err
	}
	return vm, unlock, nil
}

func (s *Service) lock(id string) func() {
	m, _ := s.locks.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Limits returns the host capacity requests are validated against.
func (s *Service) Limits() validate.Limits {
	if s.HostLimits != nil {
		return s.HostLimits()
	}
	l := validate.Limits{HostCPUs: hostinfo.CPUs()}
	if m, err := hostinfo.ReadMemory(); err == nil {
		l.HostMemoryBytes = m.TotalBytes
	}
	if fs, err := hostinfo.StatFS(s.Layout.StateDir); err == nil {
		l.FSFreeBytes = fs.FreeBytes
	}
	return l
}

func invalid(err error) error { return api.NewError(api.CodeInvalidArgument, err.Error(), "") }

// Create validates p, records the VM with fresh addresses, provisions its
// disks and (unless NoStart) boots it. A failure before boot leaves nothing
// behind; a boot failure keeps the VM in state "error" so its console log can
// be read.
func (s *Service) Create(ctx context.Context, p api.VMCreateParams, progress func(api.Progress)) (api.VM, error) {
	progress = orNop(progress)
	if err := validate.VMName(p.Name); err != nil {
		return api.VM{}, invalid(err)
	}
	img := s.Config.DefaultImage
	if p.Image != nil {
		if err := validate.ImageName(*p.Image); err != nil {
			return api.VM{}, invalid(err)
		}
		img = *p.Image
	}
	vcpus, mem, disk := s.Config.VCPUs, s.Config.MemoryMiB, s.Config.DiskBytes
	if p.VCPUs != nil {
		vcpus = *p.VCPUs
	}
	if p.MemoryMiB != nil {
		mem = *p.MemoryMiB
	}
	if p.DiskBytes != nil {
		disk = *p.DiskBytes
	}
	lim := s.Limits()
	for _, err := range []error{validate.VCPUs(vcpus, lim), validate.MemoryMiB(mem, lim), validate.DiskBytes(disk, lim)} {
		if err != nil {
			return api.VM{}, invalid(err)
		}
	}
	if err := s.checkMemoryLimit(mem); err != nil {
		return api.VM{}, err
	}
	publish, err := addForwards(nil, p.Publish)
	if err != nil {
		return api.VM{}, err
	}
	prov, err := checkProvision(p)
	if err != nil {
		return api.VM{}, err
	}
	if !p.NoStart {
		// Refuse before the record exists: nothing to undo, and the user
		// gets the failing checks with their fixes.
		if err := s.preflight(ctx, CheckStart, api.VM{Name: p.Name, Image: img, VCPUs: vcpus, MemoryMiB: mem, DiskBytes: disk}); err != nil {
			return api.VM{}, err
		}
	}
	s.createMu.Lock()
	if err := s.checkCountLimit(ctx); err != nil {
		s.createMu.Unlock()
		return api.VM{}, err
	}
	vm, err := s.Store.CreateVM(ctx, store.NewVM{
		Name: p.Name, Image: img, VCPUs: vcpus, MemoryMiB: mem, DiskBytes: disk, Subnet: s.Config.Subnet,
		VsockPath: func(id string) string { return s.Layout.VM(id).VsockSocket() },
		Publish:   publish, AutoForward: p.AutoForward,
	})
	s.createMu.Unlock()
	if err != nil {
		return api.VM{}, s.mapErr(err)
	}
	unlock := s.lock(vm.ID)
	defer unlock()
	progress(api.Progress{Step: "provision", Message: "creating disks for " + p.Name})
	if err := s.Runtime.Provision(ctx, vm, progress); err != nil {
		s.undoCreate(vm)
		return api.VM{}, fmt.Errorf("provision VM %s: %w", vm.Name, err)
	}
	if prov != nil {
		if err := prov.save(s.Layout.VM(vm.ID)); err != nil {
			s.undoCreate(vm)
			return api.VM{}, fmt.Errorf("record the provisioning of VM %s: %w", vm.Name, err)
		}
	}
	if p.NoStart {
		return vm, nil
	}
	return s.start(ctx, vm, progress, false)
}

func (s *Service) preflight(ctx context.Context, check Check, vm api.VM) error {
	if s.Preflight == nil {
		return nil
	}
	return s.Preflight(ctx, check, vm)
}

func (s *Service) changed(ctx context.Context) {
	if s.OnChange != nil {
		s.OnChange(ctx)
	}
}

// undoCreate removes a half-created VM. It runs with a fresh context: the
// request's may be the reason we are undoing.
func (s *Service) undoCreate(vm api.VM) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.Runtime.Destroy(ctx, vm)
	s.removeFiles(vm)
	_ = s.Store.DeleteVM(ctx, vm.ID)
	s.changed(ctx)
}

func (s *Service) removeFiles(vm api.VM) {
	f := s.Layout.VM(vm.ID)
	_ = os.RemoveAll(f.Dir)
	_ = os.RemoveAll(f.SockDir)
}

// List returns all VMs with their allocated disk bytes.
func (s *Service) List(ctx context.Context) ([]api.VM, error) {
	vms, err := s.Store.ListVMs(ctx)
	if err != nil {
		return nil, s.mapErr(err)
	}
	withFiles := s.vmDirs()
	for i := range vms {
		vms[i].DiskAllocatedBytes = s.allocatedIn(withFiles, vms[i].ID)
		vms[i] = s.refresh(ctx, vms[i])
	}
	return vms, nil
}

// Summaries lists every VM as the list table shows it. Only running VMs
// need their full record (to notice a VMM that died), so they alone are
// read in full, in one more query.
func (s *Service) Summaries(ctx context.Context) ([]api.VMSummary, error) {
	sums, err := s.Store.ListVMSummaries(ctx)
	if err != nil {
		return nil, s.mapErr(err)
	}
	var running map[string]api.VM
	for _, v := range sums {
		if v.State == api.VMRunning {
			vms, err := s.Store.ListVMsInState(ctx, api.VMRunning)
			if err != nil {
				return nil, s.mapErr(err)
			}
			running = make(map[string]api.VM, len(vms))
			for _, vm := range vms {
				running[vm.ID] = s.refresh(ctx, vm)
			}
			break
		}
	}
	withFiles := s.vmDirs()
	for i := range sums {
		if vm, ok := running[sums[i].ID]; ok {
			sums[i].State, sums[i].IP = vm.State, vm.IP
		}
		sums[i].DiskAllocatedBytes = s.allocatedIn(withFiles, sums[i].ID)
	}
	return sums, nil
}

// vmDirs names the VMs that have a directory under the state dir, in one
// directory read: a stat per VM was a fifth of vm.list's time with 1,000
// VMs, most of them records only. nil = unknown (stat each).
func (s *Service) vmDirs() map[string]bool {
	f, err := os.Open(s.Layout.VMsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}
	}
	if err != nil {
		return nil
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil
	}
	dirs := make(map[string]bool, len(names))
	for _, n := range names {
		dirs[n] = true
	}
	return dirs
}

// allocatedIn is allocated for a VM known (dirs non-nil) to have files or not.
func (s *Service) allocatedIn(dirs map[string]bool, id string) int64 {
	if dirs != nil && !dirs[id] {
		return 0
	}
	return s.allocated(id)
}

func (s *Service) allocated(id string) int64 {
	f := s.Layout.VM(id)
	// One stat spares three for VMs that have no files yet (created with
	// --no-start, or a create interrupted before its disks).
	if _, err := os.Stat(f.Dir); err != nil {
		return 0
	}
	var total int64
	for _, p := range []string{f.Rootfs(), f.RootfsQcow(), f.WorkDisk()} {
		n, _ := hostinfo.AllocatedBytes(p)
		total += n
	}
	return total
}

// Get returns one VM by name or id.
func (s *Service) Get(ctx context.Context, name string) (api.VM, error) {
	vm, err := s.Store.GetVM(ctx, name)
	if err != nil {
		return api.VM{}, s.mapErr(err)
	}
	vm.DiskAllocatedBytes = s.allocated(vm.ID)
	vm.Provision = provisionStatus(s.Layout.VM(vm.ID))
	return s.refresh(ctx, vm), nil
}

// Set changes resources. vcpus and memory of a running VM are stored and
// apply at its next start; the work disk changes only while stopped and only
// grows.
func (s *Service) Set(ctx context.Context, p api.VMSetParams) (api.VMSetResult, error) {
	vm, unlock, err := s.getLocked(ctx, p.Name)
	if err != nil {
		return api.VMSetResult{}, err
	}
	defer unlock()
	if p.VCPUs == nil && p.MemoryMiB == nil && p.DiskBytes == nil && len(p.Publish) == 0 && len(p.Unpublish) == 0 && p.AutoForward == nil {
		return api.VMSetResult{}, api.NewError(api.CodeInvalidArgument, "nothing to change", "pass --vcpus, --memory, --disk, --publish, --unpublish or --auto-forward")
	}
	lim := s.Limits()
	var u store.VMUpdate
	if p.VCPUs != nil {
		if err := validate.VCPUs(*p.VCPUs, lim); err != nil {
			return api.VMSetResult{}, invalid(err)
		}
		u.VCPUs = p.VCPUs
	}
	if p.MemoryMiB != nil {
		if err := validate.MemoryMiB(*p.MemoryMiB, lim); err != nil {
			return api.VMSetResult{}, invalid(err)
		}
		if err := s.checkMemoryLimit(*p.MemoryMiB); err != nil {
			return api.VMSetResult{}, err
		}
		u.MemoryMiB = p.MemoryMiB
	}
	running := vm.State != api.VMStopped && vm.State != api.VMError
	if p.DiskBytes != nil && *p.DiskBytes != vm.DiskBytes {
		n := *p.DiskBytes
		if running {
			return api.VMSetResult{}, api.NewError(api.CodeConflict,
				fmt.Sprintf("VM %s is %s: the work disk can only be resized while it is stopped", vm.Name, vm.State),
				"banger vm stop "+vm.Name)
		}
		if n < vm.DiskBytes {
			return api.VMSetResult{}, api.NewError(api.CodeInvalidArgument,
				fmt.Sprintf("disk %s is smaller than the current %s: work disks only grow (shrinking would lose data)",
					validate.FormatBytes(n), validate.FormatBytes(vm.DiskBytes)), "")
		}
		if err := validate.DiskBytes(n-vm.DiskBytes+validate.MinDiskBytes, lim); err != nil {
			return api.VMSetResult{}, invalid(fmt.Errorf("growing the disk by %s: %w", validate.FormatBytes(n-vm.DiskBytes), err))
		}
		if err := s.preflight(ctx, CheckDiskResize, vm); err != nil {
			return api.VMSetResult{}, err
		}
		if err := s.Runtime.ResizeDisk(ctx, vm, n); err != nil {
			return api.VMSetResult{}, fmt.Errorf("resize work disk of %s: %w", vm.Name, err)
		}
		u.DiskBytes = &n
	}
	if len(p.Publish) > 0 || len(p.Unpublish) > 0 {
		publish, err := removeForwards(vm.Publish, p.Unpublish)
		if err != nil {
			return api.VMSetResult{}, err
		}
		if publish, err = addForwards(publish, p.Publish); err != nil {
			return api.VMSetResult{}, err
		}
		u.Publish = &publish
	}
	u.AutoForward = p.AutoForward
	updated, err := s.Store.UpdateVM(ctx, vm.ID, u)
	if err != nil {
		return api.VMSetResult{}, s.mapErr(err)
	}
	if u.Publish != nil || u.AutoForward != nil {
		s.changed(ctx) // the daemon serves the new forwards at once
	}
	updated.DiskAllocatedBytes = s.allocated(vm.ID)
	res := api.VMSetResult{VM: updated}
	if running && (u.VCPUs != nil || u.MemoryMiB != nil) {
		res.PendingRestart = true
		res.Note = "applies at next start: banger vm restart " + vm.Name
	}
	return res, nil
}

// Start boots a stopped VM.
func (s *Service) Start(ctx context.Context, name string, progress func(api.Progress)) (api.VM, error) {
	vm, unlock, err := s.getLocked(ctx, name)
	if err != nil {
		return api.VM{}, err
	}
	defer unlock()
	vm = s.settle(ctx, vm)
	if vm.State == api.VMRunning || vm.State == api.VMStarting {
		return api.VM{}, api.NewError(api.CodeConflict, "VM "+vm.Name+" is already "+string(vm.State), "banger vm restart "+vm.Name)
	}
	if vm.State == api.VMSuspended {
		return api.VM{}, api.NewError(api.CodeConflict, "VM "+vm.Name+" is suspended",
			"continue it with banger vm resume "+vm.Name+", or stop it to discard the saved state")
	}
	progress = orNop(progress)
	// A VM whose create was interrupted (daemon killed) before its work
	// disk was made has a record but no work disk: make its disks now.
	if _, err := os.Stat(s.Layout.VM(vm.ID).WorkDisk()); errors.Is(err, os.ErrNotExist) {
		progress(api.Progress{Step: "provision", Message: "creating disks for " + vm.Name})
		if err := s.Runtime.Provision(ctx, vm, progress); err != nil {
			s.removeFiles(vm)
			return api.VM{}, fmt.Errorf("provision VM %s: %w", vm.Name, err)
		}
	}
	return s.start(ctx, vm, progress, true)
}

// start runs with the VM's lock held. check is false when the caller ran
// the start checks already (vm create, before recording the VM).
func (s *Service) start(ctx context.Context, vm api.VM, progress func(api.Progress), check bool) (api.VM, error) {
	if check {
		if err := s.preflight(ctx, CheckStart, vm); err != nil {
			return api.VM{}, err
		}
	}
	if _, err := s.Store.SetVMState(ctx, vm.ID, api.VMStarting, ""); err != nil {
		return api.VM{}, s.mapErr(err)
	}
	started, err := s.Runtime.Start(ctx, vm, progress)
	// The VM's address is in use (or free again), its forwards are to be
	// served (or not): tell whoever follows VMs once the record says so.
	defer s.changed(ctx)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code == api.CodeFailedPrecondition {
			// Refused before anything was touched (a preflight check, no
			// driver): the VM stays as it was, as the message promises.
			_, _ = s.Store.SetVMState(context.Background(), vm.ID, vm.State, vm.LastError)
			return api.VM{}, err
		}
		// The request context may be cancelled; record the failure anyway.
		_, _ = s.Store.SetVMState(context.Background(), vm.ID, api.VMError, err.Error())
		if ae != nil {
			return api.VM{}, err
		}
		code := api.CodeInternal
		if errors.Is(err, context.DeadlineExceeded) {
			code = api.CodeTimeout
		}
		return api.VM{}, api.NewError(code, fmt.Sprintf("start VM %s: %v", vm.Name, err),
			"banger vm logs "+vm.Name+" shows the console; retry with banger vm start "+vm.Name)
	}
	st := api.VMRunning
	startedAt := time.Now()
	if started.StartedAt != nil {
		startedAt = *started.StartedAt
	}
	if started.State != "" {
		st = started.State
	}
	if err := s.afterBoot(ctx, vm, started, startedAt, progress); err != nil {
		return api.VM{}, err
	}
	empty := ""
	out, err := s.Store.UpdateVM(context.Background(), vm.ID, store.VMUpdate{
		State: &st, VMM: &started.VMM, PID: &started.PID, StartedAt: &startedAt, LastError: &empty,
	})
	if err != nil {
		return api.VM{}, s.mapErr(err)
	}
	out.DiskAllocatedBytes = s.allocated(out.ID)
	return out, nil
}

// Stop shuts a VM down; stopping a stopped VM is not an error.
func (s *Service) Stop(ctx context.Context, name string, force bool) (api.VM, error) {
	vm, err := s.Get(ctx, name)
	if err != nil {
		return api.VM{}, err
	}
	unlock := s.lock(vm.ID)
	defer unlock()
	return s.stopLocked(ctx, vm.ID, force)
}

func (s *Service) stopLocked(ctx context.Context, id string, force bool) (api.VM, error) {
	vm, err := s.Get(ctx, id)
	if err != nil {
		return api.VM{}, err
	}
	if vm.State == api.VMStopped {
		return vm, nil
	}
	// "stopping" tells a restarted daemon that a stop was under way when it
	// died: a VMM still alive is re-adopted, a gone one is simply stopped.
	if _, err := s.Store.SetVMState(ctx, vm.ID, api.VMStopping, vm.LastError); err != nil {
		return api.VM{}, s.mapErr(err)
	}
	crashPoint("stop", "stop-vmm")
	if _, err := s.Runtime.Stop(ctx, vm, force); err != nil {
		_, _ = s.Store.SetVMState(context.Background(), vm.ID, api.VMError, err.Error())
		return api.VM{}, fmt.Errorf("stop VM %s: %w", vm.Name, err)
	}
	if vm.State == api.VMSuspended && s.Snapshots != nil {
		// Stopping a suspended VM discards its saved state.
		_ = os.RemoveAll(s.Snapshots.SuspendDir(vm))
	}
	crashPoint("stop", "record")
	st, zero, empty := api.VMStopped, 0, ""
	out, err := s.Store.UpdateVM(context.Background(), vm.ID, store.VMUpdate{
		State: &st, PID: &zero, LastError: &empty, ClearStartedAt: true,
	})
	if err != nil {
		return api.VM{}, s.mapErr(err)
	}
	s.changed(ctx) // e.g. its port forwards stop
	return out, nil
}

// Restart stops (gracefully) and starts a VM.
func (s *Service) Restart(ctx context.Context, name string, progress func(api.Progress)) (api.VM, error) {
	vm, err := s.Get(ctx, name)
	if err != nil {
		return api.VM{}, err
	}
	unlock := s.lock(vm.ID)
	defer unlock()
	vm, err = s.stopLocked(ctx, vm.ID, false)
	if err != nil {
		return api.VM{}, err
	}
	return s.start(ctx, vm, orNop(progress), true)
}

// Health asks the guest agent; a stopped VM is reported unhealthy without
// asking.
func (s *Service) Health(ctx context.Context, name string) (api.VMHealthResult, error) {
	vm, err := s.Get(ctx, name)
	if err != nil {
		return api.VMHealthResult{}, err
	}
	if vm.State != api.VMRunning && vm.State != api.VMStarting {
		res := api.VMHealthResult{Name: vm.Name, State: vm.State, Error: "VM is " + string(vm.State)}
		if vm.LastError != "" {
			res.Error += ": " + vm.LastError
		}
		return res, nil
	}
	return s.Runtime.Health(ctx, vm)
}

// Delete removes a VM, its files and its addresses. A running VM is refused
// unless force, which stops it first.
func (s *Service) Delete(ctx context.Context, name string, force bool) error {
	vm, err := s.Get(ctx, name)
	if err != nil {
		return err
	}
	unlock := s.lock(vm.ID)
	defer unlock()
	if vm, err = s.Get(ctx, vm.ID); err != nil {
		return err
	}
	vm = s.settle(ctx, vm)
	if vm.State != api.VMStopped && vm.State != api.VMError {
		if !force {
			return api.NewError(api.CodeConflict, "VM "+vm.Name+" is "+string(vm.State),
				"stop it first (banger vm stop "+vm.Name+") or delete with --force")
		}
		if _, err := s.stopLocked(ctx, vm.ID, true); err != nil {
			return err
		}
	} else if vm.State == api.VMError {
		// A failed start may have left a VMM behind; make sure it is gone.
		_, _ = s.Runtime.Stop(ctx, vm, true)
	}
	// The row goes first: a crash after it leaves only files with no VM,
	// which the next daemon start sweeps away (vmruntime Reconcile). The
	// other order would leave a VM whose disks are gone.
	crashPoint("delete", "delete-row")
	if err := s.Store.DeleteVM(ctx, vm.ID); err != nil {
		return s.mapErr(err)
	}
	s.locks.Delete(vm.ID)
	s.changed(ctx)
	crashPoint("delete", "destroy")
	if err := s.Runtime.Destroy(ctx, vm); err != nil {
		s.removeFiles(vm)
		return fmt.Errorf("VM %s is deleted but some of its host resources remain (bangerd retries at its next start): %w", vm.Name, err)
	}
	s.removeFiles(vm)
	return nil
}

// Logs returns the VM's console log, optionally its tail or from an offset.
func (s *Service) Logs(ctx context.Context, p api.VMLogsParams) (api.VMLogsResult, error) {
	vm, err := s.Get(ctx, p.Name)
	if err != nil {
		return api.VMLogsResult{}, err
	}
	if p.TailBytes < 0 || p.Offset < 0 {
		return api.VMLogsResult{}, api.NewError(api.CodeInvalidArgument, "tail and offset must not be negative", "")
	}
	path := s.Layout.VM(vm.ID).ConsoleLog()
	if p.Provision {
		path = ProvisionLogPath(s.Layout.VM(vm.ID))
	}
	res := api.VMLogsResult{Path: path}
	if err := consolelog.Trim(path, consolelog.MaxBytes); err != nil {
		return res, err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return res, nil // never started: no console output yet
	}
	if err != nil {
		return res, fmt.Errorf("read console log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return res, err
	}
	size := st.Size()
	from := p.Offset
	if p.TailBytes > 0 && size-p.TailBytes > from {
		from = size - p.TailBytes
	}
	// Older output was trimmed away (consolelog): start at what is kept.
	if start, err := consolelog.DataStart(f); err != nil {
		return res, err
	} else if from < start {
		from = start
	}
	if from > size {
		from = size // log was truncated (VM restarted): nothing new past the end
	}
	const maxChunk = 4 << 20 // keep a frame small; -f fetches the rest
	n := size - from
	if n > maxChunk {
		n = maxChunk
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, from); err != nil && n > 0 {
		return res, fmt.Errorf("read console log: %w", err)
	}
	res.Data = string(buf)
	res.Offset = from + n
	return res, nil
}

// TrimConsoles keeps every VM's console log within consolelog.MaxBytes, every
// interval until ctx ends: a guest printing without pause cannot fill the
// host's disk while the daemon runs.
func (s *Service) TrimConsoles(ctx context.Context, interval time.Duration, logf func(string, ...any)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		vms, err := s.Store.ListVMs(ctx)
		if err != nil {
			continue
		}
		for _, vm := range vms {
			if vm.State == api.VMStopped {
				continue
			}
			if err := consolelog.Trim(s.Layout.VM(vm.ID).ConsoleLog(), consolelog.MaxBytes); err != nil {
				logf("console log of %s: %v", vm.Name, err)
			}
		}
	}
}

// AgentConnect opens a byte stream to a running VM's guest agent, on which
// the caller speaks the agent protocol (exec, files, port connections).
func (s *Service) AgentConnect(ctx context.Context, name string) (net.Conn, error) {
	vm, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if vm.State != api.VMRunning {
		return nil, api.NewError(api.CodeConflict, "VM "+vm.Name+" is "+string(vm.State)+", not running",
			"banger vm start "+vm.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := s.Runtime.DialAgent(ctx, vm)
	if err != nil {
		return nil, api.NewError(api.CodeFailedPrecondition, "cannot reach the guest agent of "+vm.Name+": "+err.Error(),
			"banger vm health "+vm.Name+" says whether the agent answers; banger vm logs "+vm.Name+" shows the console")
	}
	return conn, nil
}

// SSHInfo tells the CLI how to reach the VM with the system ssh.
func (s *Service) SSHInfo(ctx context.Context, name string) (api.VMSSHInfo, error) {
	vm, err := s.Get(ctx, name)
	if err != nil {
		return api.VMSSHInfo{}, err
	}
	if vm.State != api.VMRunning {
		return api.VMSSHInfo{}, api.NewError(api.CodeConflict, "VM "+vm.Name+" is "+string(vm.State)+", not running",
			"banger vm start "+vm.Name)
	}
	return s.sshInfo(vm), nil
}

// SSHHosts is what `banger ssh-config` writes: every VM with an address
// (the named one when name is set), running or not.
func (s *Service) SSHHosts(ctx context.Context, name string) ([]api.VMSSHInfo, error) {
	var vms []api.VM
	if name != "" {
		vm, err := s.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		vms = []api.VM{vm}
	} else {
		var err error
		if vms, err = s.Store.ListVMs(ctx); err != nil {
			return nil, err
		}
	}
	var out []api.VMSSHInfo
	for _, vm := range vms {
		if vm.IP != "" {
			out = append(out, s.sshInfo(vm))
		}
	}
	return out, nil
}

func (s *Service) sshInfo(vm api.VM) api.VMSSHInfo {
	key := filepath.Join(s.bundleDir(), "id_ed25519")
	if s.SSHKeyPath != nil {
		key = s.SSHKeyPath()
	}
	return api.VMSSHInfo{
		Name: vm.Name, User: s.Config.SSHUser, Host: vm.IP, Port: 22, KeyPath: key,
		KnownHostsPath: s.Layout.KnownHosts(),
		// By id, not name or IP: a VM deleted and re-created under the same
		// name gets a new alias, and addresses are reused.
		HostKeyAlias: paths.HostKeyAlias(vm.ID),
	}
}

func (s *Service) bundleDir() string {
	if s.Config.BundleDir != "" {
		return s.Config.BundleDir
	}
	return s.Layout.BundleDir()
}

// HostResources reports host capacity and what VMs hold of it.
func (s *Service) HostResources(ctx context.Context) (api.HostResources, error) {
	res := api.HostResources{CPUs: hostinfo.CPUs()}
	m, err := hostinfo.ReadMemory()
	if err != nil {
		return res, err
	}
	res.MemoryBytes, res.MemoryAvailBytes = m.TotalBytes, m.AvailableBytes
	fs, err := hostinfo.StatFS(s.Layout.StateDir)
	if err != nil {
		return res, err
	}
	res.FSBytes, res.FSFreeBytes = fs.TotalBytes, fs.FreeBytes
	vms, err := s.List(ctx)
	if err != nil {
		return res, err
	}
	for _, vm := range vms {
		if vm.State == api.VMRunning || vm.State == api.VMStarting {
			res.VCPUsReserved += vm.VCPUs
			res.MemoryReservedBytes += int64(vm.MemoryMiB) << 20
		}
		res.DiskAllocatedBytes += vm.DiskAllocatedBytes
	}
	return res, nil
}

// Reconcile runs the Runtime's start-up reconciliation and stores what
// changed.
func (s *Service) Reconcile(ctx context.Context) ([]string, error) {
	vms, err := s.Store.ListVMs(ctx)
	if err != nil {
		return nil, err
	}
	changed, notes, err := s.Runtime.Reconcile(ctx, vms)
	if err != nil {
		return notes, err
	}
	for _, vm := range changed {
		u := store.VMUpdate{State: &vm.State, VMM: &vm.VMM, PID: &vm.PID, LastError: &vm.LastError}
		if vm.StartedAt != nil {
			u.StartedAt = vm.StartedAt
		} else {
			u.ClearStartedAt = true
		}
		if _, err := s.Store.UpdateVM(ctx, vm.ID, u); err != nil {
			return notes, err
		}
	}
	more, err := s.reconcileSnapshots(ctx)
	return append(notes, more...), err
}

// StopAll stops every running VM (daemon.stop with stop_vms).
func (s *Service) StopAll(ctx context.Context) error {
	vms, err := s.Store.ListVMs(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, vm := range vms {
		// A suspended VM runs no process; stopping it would discard its
		// saved state.
		if vm.State == api.VMStopped || vm.State == api.VMSuspended {
			continue
		}
		if _, err := s.Stop(ctx, vm.ID, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mapErr turns store errors into API errors with a hint.
func (s *Service) mapErr(err error) error {
	var ae *api.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		return err
	case errors.Is(err, store.ErrImageNotFound):
		return api.NewError(api.CodeNotFound, err.Error(), "list images with `banger image list`; build one with `banger image build --name debian`")
	case errors.Is(err, store.ErrNotFound):
		return api.NewError(api.CodeNotFound, err.Error(), "list VMs with `banger vm list`")
	case errors.Is(err, store.ErrNameTaken):
		return api.NewError(api.CodeAlreadyExists, err.Error(), "pick another name, or delete the existing one")
	case errors.Is(err, store.ErrSubnetFull):
		return api.NewError(api.CodeResourceExhausted, err.Error(),
			"delete unused VMs, or set a larger `subnet` (e.g. subnet = \"172.30.0.0/20\") in "+s.Layout.ConfigFile())
	case errors.Is(err, store.ErrCIDsExhausted):
		return api.NewError(api.CodeResourceExhausted, err.Error(), "delete unused VMs")
	}
	return err
}

func orNop(f func(api.Progress)) func(api.Progress) {
	if f == nil {
		return func(api.Progress) {}
	}
	return f
}

// addForwards parses specs and adds them to list; a host port used twice
// is refused.
func addForwards(list []api.PortForward, specs []string) ([]api.PortForward, error) {
	for _, spec := range specs {
		f, err := portfwd.Parse(spec)
		if err != nil {
			return nil, err
		}
		for _, have := range list {
			if have.HostPort == f.HostPort {
				return nil, api.NewError(api.CodeInvalidArgument,
					fmt.Sprintf("host port %d is already published (%s)", f.HostPort, portfwd.String(have)),
					fmt.Sprintf("remove it first with --unpublish %d", f.HostPort))
			}
		}
		list = append(list, f)
	}
	return list, nil
}

// removeForwards drops the forwards on the given host ports; a port that
// is not published is an error.
func removeForwards(list []api.PortForward, ports []int) ([]api.PortForward, error) {
	for _, port := range ports {
		i := slices.IndexFunc(list, func(f api.PortForward) bool { return f.HostPort == port })
		if i < 0 {
			return nil, api.NewError(api.CodeInvalidArgument, fmt.Sprintf("host port %d is not published", port),
				"banger vm show lists the VM's published ports")
		}
		list = slices.Delete(slices.Clone(list), i, i+1)
	}
	if list == nil {
		list = []api.PortForward{}
	}
	return list, nil
}
