// Package qemu is the QEMU (-M microvm) hypervisor driver: it boots a VM
// with KVM when /dev/kvm is usable and under software emulation (TCG)
// otherwise, and controls it over QMP.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/banger-dev/banger/internal/logtail"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/vmm"
)

// AccelEnv forces the accelerator ("tcg" or "kvm"), overriding Options.Accel;
// tests use it to exercise TCG on a KVM host.
const AccelEnv = "BANGER_QEMU_ACCEL"

// Options configure the driver. Zero values pick the defaults.
type Options struct {
	Binary string // qemu_bin; default qemu-system-x86_64
	Accel  string // "auto" (default), "kvm" or "tcg"
	// StartTimeout bounds Start when ctx has no deadline (default 30s): QEMU
	// opens its QMP socket well within a second, so this only matters when
	// something is badly wrong.
	StartTimeout time.Duration
	// KVM probes KVM for Accel "auto" (default vmm.KVMUsable).
	KVM func() (bool, string)
}

// Driver implements vmm.Driver with QEMU.
type Driver struct {
	opts Options

	mu sync.Mutex
	// exited holds, for processes this Driver started, a channel closed once
	// the child has been reaped.
	exited map[int]chan struct{}
}

var _ vmm.Driver = (*Driver)(nil)

// New returns a QEMU driver.
func New(opts Options) *Driver {
	if opts.Binary == "" {
		opts.Binary = "qemu-system-x86_64"
	}
	if opts.Accel == "" {
		opts.Accel = "auto"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.KVM == nil {
		opts.KVM = vmm.KVMUsable
	}
	return &Driver{opts: opts, exited: map[int]chan struct{}{}}
}

// Name implements vmm.Driver.
func (d *Driver) Name() string { return vmm.DriverQEMU }

// Accel resolves the accelerator Start will use and why.
func (d *Driver) Accel() (accel, reason string, err error) {
	want := d.opts.Accel
	if env := os.Getenv(AccelEnv); env != "" {
		want = env
	}
	switch want {
	case AccelTCG:
		return AccelTCG, "tcg requested: software emulation, slow", nil
	case AccelKVM:
		if ok, why := d.opts.KVM(); !ok {
			return "", "", fmt.Errorf("qemu accel = kvm but %s: fix KVM access (sudo usermod -aG kvm $USER) or use accel \"auto\"/\"tcg\"", why)
		}
		return AccelKVM, "kvm requested", nil
	case "auto":
		if ok, why := d.opts.KVM(); !ok {
			return AccelTCG, why + ": software emulation (TCG), slow", nil
		}
		return AccelKVM, "KVM usable", nil
	default:
		return "", "", fmt.Errorf("unknown qemu accelerator %q: use \"auto\", \"kvm\" or \"tcg\"", want)
	}
}

// Start implements vmm.Driver.
func (d *Driver) Start(ctx context.Context, spec vmm.Spec) (vmm.Handle, error) {
	return d.launch(ctx, spec, "", nil)
}

// launch starts QEMU for spec and waits until the guest runs. accel "" picks
// the configured accelerator. With incoming set, QEMU waits for a migration
// stream (-incoming defer) and incoming feeds it once QMP answers; the guest
// then runs from the received state instead of booting.
func (d *Driver) launch(ctx context.Context, spec vmm.Spec, accel string, incoming func(ctx context.Context, c *QMPClient) error) (vmm.Handle, error) {
	fail := func(step string, err error) (vmm.Handle, error) {
		return vmm.Handle{}, &vmm.Error{VM: vmLabel(spec), Step: step, Err: err}
	}
	if err := validate(spec); err != nil {
		return fail("check spec", err)
	}
	bin, err := sysexec.LookPath(d.opts.Binary)
	if err != nil {
		return fail("find qemu", fmt.Errorf("%v: install qemu-system-x86 (apt-get install qemu-system-x86) or set qemu_bin", err))
	}
	if accel == "" {
		accel, _, err = d.Accel()
		if err != nil {
			return fail("choose accelerator", err)
		}
	}
	tsc := 0
	if accel == AccelTCG {
		tsc = HostTSCKHz()
	}
	argv := append([]string{bin}, BuildArgv(spec, accel, tsc)...)
	if incoming != nil {
		argv = append(argv, "-incoming", "defer")
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.opts.StartTimeout)
		defer cancel()
	}

	sockets := []string{spec.APISocket, spec.AgentSocket}
	madeDirs, err := prepareSockets(sockets)
	if err != nil {
		return fail("prepare sockets", err)
	}
	cleanup := func() {
		removeSockets(sockets)
		for _, dir := range madeDirs {
			os.Remove(dir) // only if empty: never another VM's files
		}
	}

	logFile, logStart, err := openLog(spec.VMMLog, argv)
	if err != nil {
		cleanup()
		return fail("open VMM log", err)
	}
	cmd, err := sysexec.Start(sysexec.Cmd{Argv: argv, Stdout: logFile, Stderr: logFile}, true)
	logFile.Close() // the child holds its own descriptor
	if err != nil {
		cleanup()
		return fail("launch", err)
	}
	exited := d.reap(cmd)
	h := vmm.Handle{Driver: vmm.DriverQEMU, PID: cmd.Process.Pid, APISocket: spec.APISocket, AgentSocket: spec.AgentSocket}

	step := "boot"
	err = waitQMP(ctx, spec.APISocket, exited, func(c *QMPClient) error {
		if incoming == nil {
			return checkRunning(ctx, c)
		}
		return nil
	})
	if err == nil && incoming != nil {
		step = "restore"
		err = d.qmp(ctx, spec.APISocket, func(c *QMPClient) error { return incoming(ctx, c) })
		if err == nil {
			// The stream carries the source's run state: a state saved from
			// a paused VM (as SaveState requires) arrives paused, and once
			// it is fully loaded ("paused", no longer "inmigrate") cont
			// starts the vCPUs.
			err = waitQMP(ctx, spec.APISocket, exited, func(c *QMPClient) error {
				st, err := c.Status(ctx)
				if err != nil || st.Running {
					return err
				}
				if st.Status == "paused" {
					if err := c.Execute(ctx, "cont", nil, nil); err != nil {
						return err
					}
					return checkRunning(ctx, c)
				}
				return fmt.Errorf("guest status %q, want running", st.Status)
			})
		}
	}
	if err != nil {
		d.kill(h, exited)
		cleanup()
		if tail, _ := logtail.Lines(spec.VMMLog, logStart, 40); tail != "" {
			err = fmt.Errorf("%w\nQEMU log (%s):\n%s", err, spec.VMMLog, tail)
		}
		return fail(step, err)
	}
	return h, nil
}

// Stop implements vmm.Driver: ACPI power button, then QMP quit, then signals.
func (d *Driver) Stop(ctx context.Context, h vmm.Handle, grace time.Duration) error {
	defer removeSockets([]string{h.APISocket, h.AgentSocket})
	if !d.Alive(h) {
		return nil
	}
	label := fmt.Sprintf("qemu pid %d", h.PID)
	// The guest runs systemd, which powers off on the ACPI power button;
	// with -no-reboot QEMU then exits.
	if err := d.qmp(ctx, h.APISocket, func(c *QMPClient) error {
		return c.Execute(ctx, "system_powerdown", nil, nil)
	}); err == nil {
		if d.waitGone(ctx, h, grace) {
			return nil
		}
	}
	if ctx.Err() == nil {
		// The guest ignored the power button (or QMP is unreachable): stop
		// QEMU itself; the guest's unsynced writes are lost, as on power loss.
		if err := d.qmp(ctx, h.APISocket, func(c *QMPClient) error { return c.Quit(ctx) }); err == nil {
			if d.waitGone(ctx, h, 5*time.Second) {
				return nil
			}
		}
	}
	if err := vmm.Terminate(h.PID, needle(h), 5*time.Second); err != nil {
		return &vmm.Error{VM: label, Step: "terminate", Err: err}
	}
	d.waitReaped(h.PID, time.Second)
	return nil
}

// Alive implements vmm.Driver.
func (d *Driver) Alive(h vmm.Handle) bool {
	return h.APISocket != "" && vmm.ProcessAlive(h.PID, needle(h))
}

// Status asks a running QEMU for its run state over QMP.
func (d *Driver) Status(ctx context.Context, h vmm.Handle) (QMPStatus, error) {
	var st QMPStatus
	err := d.qmp(ctx, h.APISocket, func(c *QMPClient) (err error) {
		st, err = c.Status(ctx)
		return err
	})
	return st, err
}

// needle is how the QMP socket path appears in QEMU's command line.
func needle(h vmm.Handle) string { return "path=" + opt(h.APISocket) + "," }

func (d *Driver) qmp(ctx context.Context, socket string, f func(*QMPClient) error) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := DialQMP(ctx, socket)
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c)
}

// waitGone waits up to limit for the process to end (and, if we started it,
// to be reaped).
func (d *Driver) waitGone(ctx context.Context, h vmm.Handle, limit time.Duration) bool {
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if vmm.WaitGone(wctx, h.PID, needle(h)) != nil {
		return false
	}
	d.waitReaped(h.PID, time.Second)
	return true
}

func (d *Driver) reap(cmd *exec.Cmd) chan struct{} {
	done := make(chan struct{})
	pid := cmd.Process.Pid
	d.mu.Lock()
	d.exited[pid] = done
	d.mu.Unlock()
	go func() {
		cmd.Wait()
		d.mu.Lock()
		delete(d.exited, pid)
		d.mu.Unlock()
		close(done)
	}()
	return done
}

func (d *Driver) waitReaped(pid int, limit time.Duration) {
	d.mu.Lock()
	done := d.exited[pid]
	d.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(limit):
	}
}

// kill ends a process Start launched but could not bring up.
func (d *Driver) kill(h vmm.Handle, exited chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	vmm.Terminate(h.PID, "", 2*time.Second)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
	}
}

// waitQMP waits for QEMU's QMP socket, negotiates and runs check on the
// connection, retrying until check succeeds, QEMU exits or ctx ends.
func waitQMP(ctx context.Context, socket string, exited <-chan struct{}, check func(*QMPClient) error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		select {
		case <-exited:
			return errors.New("qemu exited during startup")
		default:
		}
		if _, err := os.Stat(socket); err == nil {
			err := func() error {
				c, err := DialQMP(ctx, socket)
				if err != nil {
					return err
				}
				defer c.Close()
				return check(c)
			}()
			if err == nil {
				return nil
			}
			lastErr = err
		}
		select {
		case <-exited:
			return errors.New("qemu exited during startup")
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("QMP not ready at %s before the deadline: %v", socket, lastErr)
			}
			return fmt.Errorf("QMP socket %s did not appear before the deadline (%v)", socket, ctx.Err())
		case <-tick.C:
		}
	}
}

func checkRunning(ctx context.Context, c *QMPClient) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if !st.Running {
		return fmt.Errorf("guest status %q, want running", st.Status)
	}
	return nil
}

func validate(spec vmm.Spec) error {
	var missing []string
	for _, f := range []struct{ name, val string }{
		{"VMID", spec.VMID}, {"KernelPath", spec.KernelPath}, {"APISocket", spec.APISocket},
		{"AgentSocket", spec.AgentSocket}, {"ConsoleLog", spec.ConsoleLog}, {"VMMLog", spec.VMMLog},
	} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("spec lacks %s", strings.Join(missing, ", "))
	}
	if spec.VCPUs < 1 || spec.MemoryMiB < 64 {
		return fmt.Errorf("spec asks for %d vCPUs and %d MiB: need at least 1 vCPU and 64 MiB", spec.VCPUs, spec.MemoryMiB)
	}
	if spec.RootfsFormat != "" && spec.RootfsFormat != "raw" && spec.RootfsFormat != "qcow2" {
		return fmt.Errorf("rootfs format %q: want raw or qcow2", spec.RootfsFormat)
	}
	if spec.TapName != "" && spec.MAC == "" {
		return errors.New("spec has a tap but no MAC")
	}
	files := []string{spec.KernelPath, spec.InitrdPath, spec.RootfsPath, spec.WorkDiskPath}
	for _, f := range files {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return err
		}
	}
	return nil
}

// prepareSockets checks socket path lengths, creates missing parent
// directories (returned so a failed start can remove them) and removes stale
// sockets, refusing when a live process still answers on one.
func prepareSockets(sockets []string) (madeDirs []string, err error) {
	for _, s := range sockets {
		if err := paths.CheckSocketPath(s); err != nil {
			return nil, err
		}
	}
	for _, s := range sockets {
		dir := filepath.Dir(s)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return madeDirs, err
			}
			madeDirs = append(madeDirs, dir)
		}
		fi, err := os.Lstat(s)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return madeDirs, err
		}
		if fi.Mode().Type() != fs.ModeSocket {
			return madeDirs, fmt.Errorf("%s exists and is not a socket: remove it if it is not needed", s)
		}
		if c, err := net.DialTimeout("unix", s, 200*time.Millisecond); err == nil {
			c.Close()
			return madeDirs, fmt.Errorf("%s is in use by a running process: stop that VM first", s)
		}
		if err := os.Remove(s); err != nil {
			return madeDirs, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	return madeDirs, nil
}

func removeSockets(sockets []string) {
	for _, s := range sockets {
		if s != "" {
			os.Remove(s)
		}
	}
}

// openLog opens the VMM log for appending, writes a header naming the
// command, and returns the offset where this run's output starts.
func openLog(path string, argv []string) (*os.File, int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, 0, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	fmt.Fprintf(f, "--- %s %s\n", time.Now().UTC().Format(time.RFC3339), sysexec.Quote(argv))
	return f, fi.Size(), nil
}

func vmLabel(spec vmm.Spec) string {
	if spec.Name != "" {
		return spec.Name
	}
	return spec.VMID
}
