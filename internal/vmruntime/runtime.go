// Package vmruntime is the real vm.Runtime: it turns a VM record into disks,
// a tap on the bridge, a hypervisor process and a healthy guest agent, and
// back. Every operation is a list of named steps with undo, so a failure
// leaves nothing behind and says which step failed.
package vmruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/bundle"
	"github.com/banger-dev/banger/internal/disk"
	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/logtail"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/privhelper"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/validate"
	"github.com/banger-dev/banger/internal/vmm"
)

// Config is what the runtime needs from config.toml.
type Config struct {
	Bridge      string
	Subnet      netip.Prefix
	NAT         bool
	AgentPort   uint32
	BootTimeout time.Duration // start until the agent answers
	StopGrace   time.Duration // graceful shutdown before signals
}

// Runtime implements vm.Runtime.
type Runtime struct {
	Config Config
	Layout paths.Layout
	// Bundle loads the runtime bundle (kernel, initrd) for each boot, so a
	// rebuilt bundle is picked up without restarting the daemon.
	Bundle func() (*bundle.Bundle, error)
	// Image looks up a registered image by name.
	Image func(ctx context.Context, name string) (api.Image, error)
	// Helper is the one door to privileged host work.
	Helper privhelper.Helper
	// Drivers by name ("firecracker", "qemu"); Choose picks one for new VMs.
	Drivers map[string]vmm.Driver
	Choose  func() (driver, reason string, err error)
	// NetworkReady is called once the bridge exists (the daemon starts its
	// DNS server on the bridge address then). It may be nil.
	NetworkReady func(ctx context.Context, gateway netip.Addr)
	// UID owns taps and sockets (the daemon's user).
	UID int
	// SkipSSHWait boots without waiting for sshd (the fake Firecracker has
	// no network and no sshd).
	SkipSSHWait bool

	netMu    sync.Mutex
	netReady bool

	serialMu sync.Mutex
	serial   map[string]*agentclient.SerialSession // VM id -> QEMU agent channel
}

func init() {
	// Test hook for the crash-safety suite: SIGKILL ourselves right before
	// the named step ("start:launch-vmm"), as a crash there would.
	if at := envknob.CrashAt.Value(); at != "" {
		stepHook = func(op, step string) {
			if op+":"+step == at {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Second)
			}
		}
	}
}

// driverFor returns the driver a VM uses: the one recorded for it, else the
// one chosen for new VMs.
func (r *Runtime) driverFor(vm api.VM) (vmm.Driver, error) {
	name := vm.VMM
	if name == "" {
		chosen, _, err := r.Choose()
		if err != nil {
			return nil, api.NewError(api.CodeFailedPrecondition, err.Error(), "run `banger doctor --scope vm-start`")
		}
		name = chosen
	}
	d, ok := r.Drivers[name]
	if !ok {
		return nil, api.NewError(api.CodeFailedPrecondition, "no "+name+" driver in this bangerd",
			"set vmm = \"auto\" in config.toml")
	}
	return d, nil
}

// handle rebuilds the VMM handle of a VM from its record and its paths.
func (r *Runtime) handle(vm api.VM) vmm.Handle {
	f := r.Layout.VM(vm.ID)
	h := vmm.Handle{Driver: vm.VMM, PID: vm.PID}
	switch vm.VMM {
	case vmm.DriverFirecracker:
		h.APISocket, h.AgentSocket = f.APISocket(), vm.VsockPath
		if h.AgentSocket == "" {
			h.AgentSocket = f.VsockSocket()
		}
	default:
		h.APISocket, h.AgentSocket = f.QMPSocket(), f.AgentSocket()
	}
	return h
}

// Provision creates the per-VM disks: the work disk now, the root disk too
// (so a create reports a broken image before boot).
func (r *Runtime) Provision(ctx context.Context, vm api.VM, progress func(api.Progress)) error {
	d, err := r.driverFor(vm)
	if err != nil {
		return err
	}
	f := r.Layout.VM(vm.ID)
	return runSteps(ctx, "provision", []step{
		{name: "vm-dir", msg: "creating " + f.Dir, do: func(context.Context) error { return os.MkdirAll(f.Dir, 0o700) },
			undo: func(context.Context) { _ = os.RemoveAll(f.Dir) }},
		{name: "work-disk", msg: fmt.Sprintf("making the %s work disk (/root)", validate.FormatBytes(vm.DiskBytes)), do: func(ctx context.Context) error {
			return disk.CreateWorkDisk(ctx, f.WorkDisk(), vm.DiskBytes)
		}},
		{name: "root-disk", msg: "cloning image " + vm.Image + " as the system disk", do: func(ctx context.Context) error {
			return r.ensureRootDisk(ctx, vm, d.Name())
		}},
	}, progress)
}

// rootDiskStamp records which image build a VM's root disk was cloned from.
func rootDiskStamp(f paths.VMFiles) string { return f.Dir + "/rootfs.source" }

// ensureRootDisk makes the VM's root disk when it is missing or was cloned
// from an older build of its image. The root disk is disposable: the user's
// work lives on the work disk (/root), which is never touched here.
func (r *Runtime) ensureRootDisk(ctx context.Context, vm api.VM, driver string) error {
	img, err := r.Image(ctx, vm.Image)
	if err != nil {
		return err
	}
	f := r.Layout.VM(vm.ID)
	want := img.SHA256 + " " + img.RootfsPath
	have, _ := os.ReadFile(rootDiskStamp(f))
	raw, qcow := exists(f.Rootfs()), exists(f.RootfsQcow())
	if strings.TrimSpace(string(have)) == want && ((driver == vmm.DriverQEMU && (raw || qcow)) || raw) {
		return nil
	}
	_ = os.Remove(f.Rootfs())
	_ = os.Remove(f.RootfsQcow())
	// The root disk carries the SSH host keys the guest makes at its first
	// boot: a new root disk means new keys, which ssh would otherwise refuse
	// as a man-in-the-middle on the next `banger vm ssh` after a rebuild.
	r.forgetHostKey(ctx, vm.ID)
	if driver == vmm.DriverQEMU {
		// A qcow2 overlay costs the same whatever the image size.
		if err := disk.CreateOverlay(ctx, img.RootfsPath, f.RootfsQcow()); err != nil {
			return err
		}
	} else if _, err := disk.CloneRootfs(ctx, img.RootfsPath, f.Rootfs()); err != nil {
		return err
	}
	return os.WriteFile(rootDiskStamp(f), []byte(want+"\n"), 0o600)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// forgetHostKey drops a VM's entry from banger's known_hosts (ssh-keygen -R
// also handles hashed entries). Best effort: without the entry the next ssh
// records the new key (accept-new), which is the point.
func (r *Runtime) forgetHostKey(ctx context.Context, id string) {
	kh := r.Layout.KnownHosts()
	if !exists(kh) {
		return
	}
	if _, err := sysexec.Run(ctx, "ssh-keygen", "-R", paths.HostKeyAlias(id), "-f", kh); err == nil {
		_ = os.Remove(kh + ".old") // ssh-keygen's backup
	}
}

// ensureNetwork makes the bridge (and NAT) once per daemon lifetime; a
// bridge deleted behind our back is recreated because EnsureBridge is
// idempotent and cheap.
func (r *Runtime) ensureNetwork(ctx context.Context) error {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if err := r.Helper.BridgeEnsure(ctx, r.Config.Bridge, r.Config.Subnet); err != nil {
		return err
	}
	if r.netReady {
		return nil
	}
	if r.Config.NAT {
		if err := r.Helper.NATEnsure(ctx, r.Config.Subnet, r.Config.Bridge); err != nil {
			return err
		}
	}
	if r.NetworkReady != nil {
		r.NetworkReady(ctx, hostnet.Gateway(r.Config.Subnet))
	}
	r.netReady = true
	return nil
}

// ResetNetwork forgets that the network was set up (after a host teardown),
// so the next start makes the bridge, NAT and DNS again.
func (r *Runtime) ResetNetwork() {
	r.netMu.Lock()
	r.netReady = false
	r.netMu.Unlock()
}

// bootArgs are the guest-specific kernel arguments: its address (the guest
// boot script applies ip=, the Debian kernel does not) and the agent port.
func (r *Runtime) bootArgs(vm api.VM) string {
	gw := hostnet.Gateway(r.Config.Subnet)
	return fmt.Sprintf("ip=%s::%s:%s:%s:eth0:off:%s banger.agent_port=%d",
		vm.IP, gw, hostnet.Netmask(r.Config.Subnet), vm.Name, gw, r.Config.AgentPort)
}

// Start boots a VM and waits until its agent answers.
func (r *Runtime) Start(ctx context.Context, vm api.VM, progress func(api.Progress)) (api.VM, error) {
	d, err := r.driverFor(vm)
	if err != nil {
		return vm, err
	}
	f := r.Layout.VM(vm.ID)
	var (
		b    *bundle.Bundle
		img  api.Image
		h    vmm.Handle
		spec vmm.Spec
	)
	tap := hostnet.TapName(vm.ID)
	steps := []step{
		{name: "load-bundle", msg: "kernel, initrd and image " + vm.Image, do: func(ctx context.Context) (err error) {
			if b, err = r.Bundle(); err != nil {
				return err
			}
			img, err = r.Image(ctx, vm.Image)
			return err
		}},
		{name: "root-disk", msg: "system disk from image " + vm.Image, do: func(ctx context.Context) error {
			if err := os.MkdirAll(f.Dir, 0o700); err != nil {
				return err
			}
			return r.ensureRootDisk(ctx, vm, d.Name())
		}},
		{name: "network", msg: "bridge " + r.Config.Bridge + ", NAT and DNS", do: r.ensureNetwork},
		{name: "tap", msg: "tap " + tap + " on " + r.Config.Bridge, do: func(ctx context.Context) error {
			_ = r.Helper.TapDel(ctx, tap) // a tap left by a crash
			return r.Helper.TapAdd(ctx, tap, r.Config.Bridge, r.UID)
		}, undo: func(ctx context.Context) { _ = r.Helper.TapDel(ctx, tap) }},
		{name: "launch-vmm", msg: "starting " + d.Name(), do: func(ctx context.Context) (err error) {
			if err := os.MkdirAll(f.SockDir, 0o700); err != nil {
				return err
			}
			spec = r.spec(vm, b, img, d.Name(), tap)
			h, err = d.Start(ctx, spec)
			return err
		}, undo: func(ctx context.Context) {
			_ = d.Stop(ctx, h, 0)
			r.closeSerial(vm.ID)
		}},
		{name: "wait-agent", msg: "booting; waiting for the guest agent", do: func(ctx context.Context) error {
			vm.VMM, vm.PID = h.Driver, h.PID
			return r.waitAgent(ctx, vm, f, progress)
		}},
		// sshd starts a moment after the agent (host keys on first boot):
		// "running" means `banger vm ssh` works at once.
		{name: "wait-ssh", msg: "waiting for sshd on " + vm.IP, do: func(ctx context.Context) error {
			if imageWithoutSSH(img) {
				return nil // an imported image booted by the agent, with no sshd
			}
			return r.waitSSH(ctx, vm, f)
		}},
	}
	if err := runSteps(ctx, "start", steps, progress); err != nil {
		return vm, err
	}
	now := time.Now().UTC()
	vm.State, vm.VMM, vm.PID, vm.StartedAt, vm.LastError = api.VMRunning, h.Driver, h.PID, &now, ""
	vm.Tap = tap
	if h.Driver == vmm.DriverFirecracker {
		vm.VsockPath = h.AgentSocket
	}
	return vm, nil
}

func (r *Runtime) spec(vm api.VM, b *bundle.Bundle, img api.Image, driver, tap string) vmm.Spec {
	f := r.Layout.VM(vm.ID)
	kernel, initrd := b.KernelPath, b.InitrdPath
	if img.KernelPath != "" {
		kernel, initrd = img.KernelPath, img.InitrdPath
	}
	s := vmm.Spec{
		VMID: vm.ID, Name: vm.Name, VCPUs: vm.VCPUs, MemoryMiB: vm.MemoryMiB,
		KernelPath: kernel, InitrdPath: initrd, BootArgs: r.bootArgs(vm),
		RootfsPath: f.Rootfs(), RootfsFormat: "raw", WorkDiskPath: f.WorkDisk(),
		TapName: tap, MAC: vm.MAC, VsockCID: vm.VsockCID,
		ConsoleLog: f.ConsoleLog(), VMMLog: f.VMMLog(),
	}
	if driver == vmm.DriverFirecracker {
		s.APISocket, s.AgentSocket = f.APISocket(), vm.VsockPath
		if s.AgentSocket == "" {
			s.AgentSocket = f.VsockSocket()
		}
	} else {
		s.APISocket, s.AgentSocket = f.QMPSocket(), f.AgentSocket()
		if !exists(f.Rootfs()) {
			s.RootfsPath, s.RootfsFormat = f.RootfsQcow(), "qcow2"
		}
	}
	return s
}

// waitAgent waits for the guest agent's first healthy answer. On timeout the
// error carries the tail of the console log: the first thing a user needs.
func (r *Runtime) waitAgent(ctx context.Context, vm api.VM, f paths.VMFiles, progress func(api.Progress)) error {
	ctx, cancel := context.WithTimeout(ctx, r.Config.BootTimeout)
	defer cancel()
	progress(api.Progress{Step: "wait-agent", Message: fmt.Sprintf("deadline %s (agent_timeout in config.toml)", r.Config.BootTimeout)})
	c := agentclient.Client{Dial: r.dialer(vm)}
	done := make(chan struct{})
	d, _ := r.driverFor(vm)
	go func() {
		// A VMM that dies during boot ends the wait at once.
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if d != nil && !d.Alive(r.handle(vm)) {
					cancel()
					return
				}
			}
		}
	}()
	_, err := agentclient.WaitHealthy(ctx, c, 250*time.Millisecond)
	close(done)
	if err == nil {
		return nil
	}
	reason := "agent did not answer within " + r.Config.BootTimeout.String()
	if d != nil && !d.Alive(r.handle(vm)) {
		reason = "the hypervisor process exited during boot"
	}
	return api.NewError(api.CodeTimeout, fmt.Sprintf("%s: %s: %v\n--- last lines of %s ---\n%s",
		vm.Name, reason, err, f.ConsoleLog(), tail(f.ConsoleLog(), 25)),
		"see the whole console with `banger vm logs "+vm.Name+"`; raise agent_timeout in config.toml on a slow host")
}

// imageWithoutSSH says whether img was imported without an init and without
// sshd (its <rootfs>.origin.json, written by image import, says no_ssh):
// such a VM is running once its agent answers.
func imageWithoutSSH(img api.Image) bool {
	data, err := os.ReadFile(img.RootfsPath + ".origin.json")
	if err != nil {
		return false
	}
	var o struct {
		NoSSH bool `json:"no_ssh"`
	}
	return json.Unmarshal(data, &o) == nil && o.NoSSH
}

// waitSSH waits until the guest's sshd accepts TCP connections on the
// bridge (a real tap: a connect means sshd listens).
func (r *Runtime) waitSSH(ctx context.Context, vm api.VM, f paths.VMFiles) error {
	if r.SkipSSHWait {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.Config.BootTimeout)
	defer cancel()
	addr := net.JoinHostPort(vm.IP, "22")
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return api.NewError(api.CodeTimeout, fmt.Sprintf("%s: the agent answered but sshd on %s did not: %v\n--- last lines of %s ---\n%s",
				vm.Name, addr, err, f.ConsoleLog(), tail(f.ConsoleLog(), 25)),
				"check the ssh service in the image (`banger image verify "+vm.Image+"`)")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// dialer returns how to reach a VM's agent: hybrid vsock for Firecracker,
// the multiplexed virtio-serial port for QEMU (one session per VM, since
// QEMU's chardev socket takes one client at a time).
func (r *Runtime) dialer(vm api.VM) func(ctx context.Context) (net.Conn, error) {
	h := r.handle(vm)
	if vm.VMM == vmm.DriverFirecracker {
		return func(ctx context.Context) (net.Conn, error) {
			return agentclient.DialHybridVsock(ctx, h.AgentSocket, r.Config.AgentPort)
		}
	}
	r.serialMu.Lock()
	defer r.serialMu.Unlock()
	if r.serial == nil {
		r.serial = map[string]*agentclient.SerialSession{}
	}
	s, ok := r.serial[vm.ID]
	if !ok {
		s = agentclient.NewSerialSession(h.AgentSocket)
		r.serial[vm.ID] = s
	}
	return s.Dial
}

// DialAgent opens a connection to a VM's guest agent.
func (r *Runtime) DialAgent(ctx context.Context, vm api.VM) (net.Conn, error) {
	return r.dialer(vm)(ctx)
}

func (r *Runtime) closeSerial(id string) {
	r.serialMu.Lock()
	defer r.serialMu.Unlock()
	if s, ok := r.serial[id]; ok {
		_ = s.Close()
		delete(r.serial, id)
	}
}

// Stop shuts a VM down (gracefully unless force) and removes its tap.
func (r *Runtime) Stop(ctx context.Context, vm api.VM, force bool) (api.VM, error) {
	grace := r.Config.StopGrace
	if force {
		grace = 0
	}
	if vm.VMM != "" && vm.PID > 0 {
		d, err := r.driverFor(vm)
		if err != nil {
			return vm, err
		}
		if err := d.Stop(ctx, r.handle(vm), grace); err != nil {
			return vm, &StepError{Op: "stop", Step: "stop-vmm", Err: err}
		}
	}
	r.closeSerial(vm.ID)
	if err := r.Helper.TapDel(ctx, hostnet.TapName(vm.ID)); err != nil {
		return vm, &StepError{Op: "stop", Step: "tap", Err: err}
	}
	_ = os.RemoveAll(r.Layout.VM(vm.ID).SockDir)
	vm.State, vm.PID, vm.StartedAt, vm.Tap = api.VMStopped, 0, nil, ""
	return vm, nil
}

// Health asks the guest agent for /healthz.
func (r *Runtime) Health(ctx context.Context, vm api.VM) (api.VMHealthResult, error) {
	res := api.VMHealthResult{Name: vm.Name, State: vm.State}
	if vm.State != api.VMRunning {
		res.Error = "VM is " + string(vm.State)
		return res, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h, rtt, err := agentclient.Client{Dial: r.dialer(vm)}.Health(ctx)
	if err != nil {
		res.Error = err.Error()
		return res, nil
	}
	res.Healthy, res.Agent, res.RTTMillis = true, &h, float64(rtt.Microseconds())/1000
	return res, nil
}

// Destroy removes everything a stopped VM has on the host.
func (r *Runtime) Destroy(ctx context.Context, vm api.VM) error {
	r.closeSerial(vm.ID)
	var errs []error
	if err := r.Helper.TapDel(ctx, hostnet.TapName(vm.ID)); err != nil {
		errs = append(errs, err)
	}
	r.forgetHostKey(ctx, vm.ID)
	f := r.Layout.VM(vm.ID)
	for _, d := range []string{f.Dir, f.SockDir} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ResizeDisk grows a stopped VM's work disk.
func (r *Runtime) ResizeDisk(ctx context.Context, vm api.VM, newBytes int64) error {
	return disk.GrowWorkDisk(ctx, r.Layout.VM(vm.ID).WorkDisk(), newBytes)
}

// Reconcile runs at daemon start: VMs whose VMM still runs are re-adopted,
// VMs whose VMM is gone are marked stopped with the reason, half-made
// operations are settled, and taps with no VM are removed.
func (r *Runtime) Reconcile(ctx context.Context, vms []api.VM) ([]api.VM, []string, error) {
	var changed []api.VM
	var notes []string
	known := map[string]bool{}
	ids := map[string]bool{}
	for _, vm := range vms {
		ids[vm.ID] = true
		alive := r.Alive(vm)
		if !alive && vm.State != api.VMStopped && vm.State != api.VMError {
			// A daemon killed while launching (before the VMM's pid was
			// recorded) leaves a VMM nobody knows: find it by its socket
			// path and end it, or it would hold the VM's disks and tap.
			for _, pid := range orphanVMMs(vm, r.Layout) {
				if err := vmm.Terminate(pid, r.Layout.VM(vm.ID).SockDir+"/", 5*time.Second); err == nil {
					notes = append(notes, fmt.Sprintf("%s: ended VMM pid %d left by an interrupted operation", vm.Name, pid))
				} else {
					notes = append(notes, fmt.Sprintf("%s: cannot end stray VMM pid %d: %v", vm.Name, pid, err))
				}
			}
		}
		if alive {
			known[hostnet.TapName(vm.ID)] = true
			// A daemon killed in the middle of a snapshot leaves the VM
			// paused; continuing a running VM is harmless.
			_ = r.resumePaused(ctx, vm)
			if vm.State != api.VMRunning {
				// A start interrupted after the VMM launched: the guest
				// boots on; health will tell.
				notes = append(notes, fmt.Sprintf("%s: VMM (pid %d) is running; marked running", vm.Name, vm.PID))
				vm.State = api.VMRunning
				changed = append(changed, vm)
			} else {
				notes = append(notes, fmt.Sprintf("%s: re-adopted running VMM (pid %d)", vm.Name, vm.PID))
			}
			continue
		}
		if vm.State == api.VMSuspended {
			// Its state is on disk and no VMM should run: end one a resume
			// interrupted before recording it (found above) and keep it
			// suspended.
			if vm.PID != 0 {
				vm.PID = 0
				changed = append(changed, vm)
			}
			continue
		}
		if (vm.State == api.VMStopped || vm.State == api.VMError) && vm.PID == 0 {
			continue // settled: nothing runs, and an error keeps its reason
		}
		reason := "VMM process exited while bangerd was not watching"
		switch vm.State {
		case api.VMStarting:
			reason = "start was interrupted (bangerd stopped) before the guest agent answered; start it again with `banger vm start " + vm.Name + "`"
		case api.VMStopping:
			reason = "" // the stop the user asked for finished without us
		}
		_ = os.RemoveAll(r.Layout.VM(vm.ID).SockDir)
		vm.State, vm.PID, vm.StartedAt, vm.Tap = api.VMStopped, 0, nil, ""
		vm.LastError = reason
		changed = append(changed, vm)
		if reason == "" {
			notes = append(notes, fmt.Sprintf("%s: stop was interrupted but the VMM is gone; marked stopped", vm.Name))
		} else {
			notes = append(notes, fmt.Sprintf("%s: %s; marked stopped", vm.Name, reason))
		}
	}
	notes = append(notes, r.sweepOrphanFiles(ids)...)
	stray, err := hostnet.StrayTaps(r.Config.Bridge, known)
	if err == nil {
		for _, t := range stray {
			if !r.ownsTap(t, ids) {
				continue // another banger installation's (another user's) VM
			}
			if err := r.Helper.TapDel(ctx, t); err == nil {
				notes = append(notes, "removed tap "+t+" with no running VM")
			}
		}
	}
	// A bridge left from the last run: bring banger's network back now (DNS
	// for re-adopted VMs, NAT re-applied for the configured subnet, which
	// replaces rules made for an older one).
	if _, err := os.Stat("/sys/class/net/" + r.Config.Bridge); err == nil {
		if err := r.ensureNetwork(ctx); err != nil {
			notes = append(notes, "network on "+r.Config.Bridge+" not restored: "+err.Error())
		} else {
			notes = append(notes, fmt.Sprintf("network on %s ready for %s (NAT %v)", r.Config.Bridge, r.Config.Subnet, r.Config.NAT))
		}
	}
	return changed, notes, nil
}

// ownsTap tells whether a tap with no running VM is this installation's to
// remove: it names one of our VMs, or our (non-root) user owns it. Two users
// share the default bridge name, so a tap we know nothing of may be a
// running VM of someone else's daemon.
func (r *Runtime) ownsTap(tap string, ids map[string]bool) bool {
	if ids[strings.TrimPrefix(tap, hostnet.TapPrefix)] {
		return true
	}
	owner, err := os.ReadFile("/sys/class/net/" + tap + "/owner")
	if err != nil || r.UID == 0 {
		return false
	}
	return strings.TrimSpace(string(owner)) == strconv.Itoa(r.UID)
}

// Alive reports whether the VMM recorded for vm still runs.
func (r *Runtime) Alive(vm api.VM) bool {
	if vm.VMM == "" || vm.PID <= 0 {
		return false
	}
	d, ok := r.Drivers[vm.VMM]
	return ok && d.Alive(r.handle(vm))
}

// orphanVMMs finds live processes whose command line names vm's socket
// directory: VMMs launched for it whose pid was never recorded.
func orphanVMMs(vm api.VM, l paths.Layout) []int {
	needle := []byte(l.VM(vm.ID).SockDir + "/")
	self := os.Getpid()
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, needle) && vmm.ProcessAlive(pid, string(needle)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// sweepOrphanFiles removes per-VM disk and socket directories whose VM has
// no record: what a delete interrupted after removing the row leaves.
func (r *Runtime) sweepOrphanFiles(ids map[string]bool) []string {
	var notes []string
	for _, parent := range []string{r.Layout.VMsDir(), r.Layout.RuntimeDir} {
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			if !e.IsDir() || !isVMID(e.Name()) || ids[e.Name()] {
				continue
			}
			p := filepath.Join(parent, e.Name())
			if err := os.RemoveAll(p); err != nil {
				notes = append(notes, fmt.Sprintf("cannot remove %s (no VM has id %s): %v", p, e.Name(), err))
				continue
			}
			notes = append(notes, fmt.Sprintf("removed %s: no VM has id %s", p, e.Name()))
		}
	}
	return notes
}

// isVMID reports whether s looks like a VM id (8 lower-case hex digits), so
// the sweep never touches anything banger did not name.
func isVMID(s string) bool {
	if len(s) != 8 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// tail returns the last n lines of a file (or a note that it is unreadable).
func tail(path string, n int) string {
	s, err := logtail.Lines(path, 0, n)
	if err != nil {
		return "(console log unreadable: " + err.Error() + ")"
	}
	return s
}
