// Package firecracker drives Firecracker microVMs: a small client for the
// v1.16.1 API over its Unix socket and a vmm.Driver that launches one
// firecracker process per VM, configures it call by call and boots it.
package firecracker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/banger-dev/banger/internal/logtail"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/vmm"
)

// Name is the driver name stored in vmm.Handle.Driver.
const Name = "firecracker"

// BaseBootArgs come before the VM's own boot args: the serial console, and
// a guest reboot ends the Firecracker process (reboot=k), which is how
// SendCtrlAltDel stops a VM. Firecracker appends root=/dev/vda itself.
const BaseBootArgs = "console=ttyS0 reboot=k panic=1"

// Drive ids: the root disk (/dev/vda) and the work disk (/dev/vdb, /root).
// Both use the Writeback cache so the guest's flushes reach the host disk
// (Firecracker's default, Unsafe, drops them).
const (
	DriveRoot = "rootfs"
	DriveWork = "work"
)

// Options configure the driver.
type Options struct {
	// Binary is the firecracker executable (config key firecracker_bin);
	// empty looks "firecracker" up in PATH at each Start.
	Binary string
	// Reclaim, when set, is called for each socket Firecracker creates
	// (API socket, vsock uds_path), so that sockets made by a root-run
	// Firecracker are handed back to the daemon's user.
	Reclaim func(ctx context.Context, path string) error
	// SocketTimeout bounds the wait for the API socket (default 5 s).
	SocketTimeout time.Duration
	// KillGrace is how long each of SIGTERM and SIGKILL is given after the
	// graceful stop timed out, or on a failed start (default 3 s).
	KillGrace time.Duration
}

// Driver implements vmm.Driver for Firecracker.
type Driver struct {
	opts Options
}

var _ vmm.Driver = (*Driver)(nil)

// New returns a Firecracker driver.
func New(opts Options) *Driver {
	if opts.SocketTimeout <= 0 {
		opts.SocketTimeout = 5 * time.Second
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = 3 * time.Second
	}
	return &Driver{opts: opts}
}

// Name is "firecracker".
func (d *Driver) Name() string { return Name }

// Binary resolves the firecracker executable.
func (d *Driver) Binary() (string, error) {
	if d.opts.Binary != "" {
		if _, err := os.Stat(d.opts.Binary); err != nil {
			return "", fmt.Errorf("firecracker_bin %s: %w (fix firecracker_bin in config.toml)", d.opts.Binary, err)
		}
		return d.opts.Binary, nil
	}
	p, err := sysexec.LookPath("firecracker")
	if err != nil {
		return "", fmt.Errorf("%w: install Firecracker v1.16 (github.com/firecracker-microvm/firecracker/releases) "+
			"or set firecracker_bin in config.toml", err)
	}
	return p, nil
}

// Version runs `firecracker --version` and returns the version it reports
// (e.g. "v1.16.1"), for `banger doctor`.
func (d *Driver) Version(ctx context.Context) (string, error) {
	bin, err := d.Binary()
	if err != nil {
		return "", err
	}
	out, err := sysexec.Output(ctx, bin, "--version")
	if err != nil {
		return "", err
	}
	first, _, _ := strings.Cut(out, "\n")
	for _, f := range strings.Fields(first) {
		if strings.HasPrefix(f, "v") && strings.Count(f, ".") >= 1 {
			return f, nil
		}
	}
	return "", fmt.Errorf("%s --version printed %q: no version found", bin, first)
}

// Start launches firecracker in its own session, configures the VM and
// boots it. On any failure it kills the process and removes its sockets.
func (d *Driver) Start(ctx context.Context, spec vmm.Spec) (vmm.Handle, error) {
	p, err := d.launch(ctx, spec)
	if err != nil {
		return vmm.Handle{}, err
	}
	c := NewClient(spec.APISocket)
	for _, call := range d.bootCalls(spec) {
		if err := call.do(ctx, c); err != nil {
			return p.undo(call.name, err)
		}
		if call.name == "PUT /vsock" && d.opts.Reclaim != nil {
			if err := d.opts.Reclaim(ctx, spec.AgentSocket); err != nil {
				return p.undo("reclaim vsock socket", err)
			}
		}
	}
	return p.handle, nil
}

// launched is a firecracker process that Start or Restore has not handed
// over yet: undo kills it and removes what it made.
type launched struct {
	d        *Driver
	spec     vmm.Spec
	handle   vmm.Handle
	exited   chan struct{}
	logStart int64
}

// vmName names the VM in errors.
func vmName(spec vmm.Spec) string {
	if spec.Name != "" {
		return spec.Name
	}
	return spec.VMID
}

// launch checks spec, clears stale sockets, starts firecracker in its own
// session and waits for its API socket. On failure nothing is left.
func (d *Driver) launch(ctx context.Context, spec vmm.Spec) (*launched, error) {
	fail := func(step string, err error) (*launched, error) {
		return nil, &vmm.Error{VM: vmName(spec), Step: step, Err: err}
	}
	if err := checkSpec(spec); err != nil {
		return fail("check spec", err)
	}
	bin, err := d.Binary()
	if err != nil {
		return fail("find firecracker", err)
	}
	for _, s := range []string{spec.APISocket, spec.AgentSocket} {
		if err := os.MkdirAll(filepath.Dir(s), 0o700); err != nil {
			return fail("prepare sockets", err)
		}
		// Firecracker refuses to start (or to bind the vsock) when the path
		// exists, and never deletes its sockets: clear stale ones first.
		if err := removeSocket(s); err != nil {
			return fail("prepare sockets", err)
		}
	}
	vmmLog, err := os.OpenFile(spec.VMMLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fail("open VMM log", err)
	}
	logStart, _ := vmmLog.Seek(0, io.SeekEnd)
	// The console log holds this boot's serial output; Firecracker opens
	// serial_out_path at InstanceStart and does not create directories.
	if err := os.WriteFile(spec.ConsoleLog, nil, 0o600); err != nil {
		vmmLog.Close()
		return fail("create console log", err)
	}

	argv := []string{bin, "--api-sock", spec.APISocket, "--id", spec.VMID}
	cmd, err := sysexec.Start(sysexec.Cmd{Argv: argv, Stdout: vmmLog, Stderr: vmmLog}, true)
	vmmLog.Close() // the child has its own descriptor
	if err != nil {
		return fail("launch", err)
	}
	// Reap the child when it exits, for as long as this daemon is its
	// parent; exited reports an early death while booting.
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p := &launched{
		d:        d,
		spec:     spec,
		handle:   vmm.Handle{Driver: Name, PID: cmd.Process.Pid, APISocket: spec.APISocket, AgentSocket: spec.AgentSocket},
		exited:   exited,
		logStart: logStart,
	}
	if err := waitSocket(ctx, spec.APISocket, d.opts.SocketTimeout, exited); err != nil {
		_, err := p.undo("wait for API socket", err)
		return nil, err
	}
	if d.opts.Reclaim != nil {
		if err := d.opts.Reclaim(ctx, spec.APISocket); err != nil {
			_, err := p.undo("reclaim API socket", err)
			return nil, err
		}
	}
	return p, nil
}

// undo kills the process, removes its sockets and returns the failure of
// step with the tail of the process's log.
func (p *launched) undo(step string, err error) (vmm.Handle, error) {
	select {
	case <-p.exited:
		// Already gone and reaped (Firecracker exits by itself after a
		// failed snapshot load): its pid may no longer be ours to signal.
	default:
		// The pid is our unreaped child, so it cannot belong to anyone
		// else: match no command line (a child killed before its exec
		// finished does not show firecracker's yet, and must die all the
		// same).
		vmm.Terminate(p.handle.PID, "", p.d.opts.KillGrace)
		select {
		case <-p.exited:
		case <-time.After(p.d.opts.KillGrace):
		}
	}
	removeSocket(p.spec.APISocket)
	removeSocket(p.spec.AgentSocket)
	if tail := logTail(p.spec.VMMLog, p.logStart); tail != "" {
		err = fmt.Errorf("%w; firecracker log (%s): %s", err, p.spec.VMMLog, tail)
	}
	return vmm.Handle{}, &vmm.Error{VM: vmName(p.spec), Step: step, Err: err}
}

type bootCall struct {
	name string
	do   func(context.Context, *Client) error
}

// bootCalls is the configuration sequence, ending with InstanceStart.
func (d *Driver) bootCalls(spec vmm.Spec) []bootCall {
	no := false
	calls := []bootCall{
		{"PUT /machine-config", func(ctx context.Context, c *Client) error {
			return c.PutMachineConfig(ctx, MachineConfig{VCPUCount: spec.VCPUs, MemSizeMib: spec.MemoryMiB})
		}},
		{"PUT /serial", func(ctx context.Context, c *Client) error {
			return c.PutSerial(ctx, Serial{SerialOutPath: spec.ConsoleLog})
		}},
		{"PUT /boot-source", func(ctx context.Context, c *Client) error {
			return c.PutBootSource(ctx, BootSource{
				KernelImagePath: spec.KernelPath,
				InitrdPath:      spec.InitrdPath,
				BootArgs:        strings.TrimSpace(BaseBootArgs + " " + spec.BootArgs),
			})
		}},
		{"PUT /drives/rootfs", func(ctx context.Context, c *Client) error {
			return c.PutDrive(ctx, Drive{DriveID: DriveRoot, IsRootDevice: true, IsReadOnly: &no, CacheType: "Writeback", PathOnHost: spec.RootfsPath})
		}},
	}
	if spec.WorkDiskPath != "" {
		calls = append(calls, bootCall{"PUT /drives/work", func(ctx context.Context, c *Client) error {
			return c.PutDrive(ctx, Drive{DriveID: DriveWork, IsRootDevice: false, IsReadOnly: &no, CacheType: "Writeback", PathOnHost: spec.WorkDiskPath})
		}})
	}
	if spec.TapName != "" {
		calls = append(calls, bootCall{"PUT /network-interfaces/eth0", func(ctx context.Context, c *Client) error {
			return c.PutNetworkInterface(ctx, NetworkInterface{IfaceID: "eth0", HostDevName: spec.TapName, GuestMAC: spec.MAC})
		}})
	}
	calls = append(calls,
		bootCall{"PUT /vsock", func(ctx context.Context, c *Client) error {
			return c.PutVsock(ctx, Vsock{GuestCID: spec.VsockCID, UDSPath: spec.AgentSocket})
		}},
		bootCall{"PUT /actions InstanceStart", func(ctx context.Context, c *Client) error {
			return c.PutAction(ctx, ActionInstanceStart)
		}},
	)
	return calls
}

// Stop sends Ctrl+Alt+Del (the guest reboots and, with reboot=k,
// Firecracker exits), waits up to grace, then escalates to SIGTERM and
// SIGKILL. It removes the sockets once the process is gone.
func (d *Driver) Stop(ctx context.Context, h vmm.Handle, grace time.Duration) error {
	if d.Alive(h) {
		err := NewClient(h.APISocket).PutAction(ctx, ActionSendCtrlAltDel)
		if err == nil && grace > 0 {
			wctx, cancel := context.WithTimeout(ctx, grace)
			vmm.WaitGone(wctx, h.PID, h.APISocket)
			cancel()
		}
		// A refused or failed Ctrl+Alt+Del (guest not up, API wedged) goes
		// straight to the signals.
		if err := vmm.Terminate(h.PID, h.APISocket, d.opts.KillGrace); err != nil {
			return &vmm.Error{VM: handleVM(h), Step: "stop", Err: err}
		}
	}
	for _, s := range []string{h.APISocket, h.AgentSocket} {
		if err := removeSocket(s); err != nil {
			return &vmm.Error{VM: handleVM(h), Step: "remove sockets", Err: err}
		}
	}
	return nil
}

// Alive reports whether h names a live firecracker process serving
// h.APISocket (a recycled pid has another command line).
func (d *Driver) Alive(h vmm.Handle) bool {
	if h.Driver != "" && h.Driver != Name {
		return false
	}
	return h.APISocket != "" && vmm.ProcessAlive(h.PID, h.APISocket)
}

// handleVM names the VM of a handle in errors: its sockets live in the
// per-VM runtime directory named after the VM id.
func handleVM(h vmm.Handle) string {
	return filepath.Base(filepath.Dir(h.APISocket))
}

func checkSpec(s vmm.Spec) error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"VMID", s.VMID}, {"KernelPath", s.KernelPath}, {"RootfsPath", s.RootfsPath},
		{"APISocket", s.APISocket}, {"AgentSocket", s.AgentSocket},
		{"ConsoleLog", s.ConsoleLog}, {"VMMLog", s.VMMLog},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("spec is missing %s", strings.Join(missing, ", "))
	}
	if s.RootfsFormat != "" && s.RootfsFormat != "raw" {
		return fmt.Errorf("firecracker boots raw disk images only, not %s", s.RootfsFormat)
	}
	if s.VCPUs < 1 || s.VCPUs > 32 {
		return fmt.Errorf("%d vCPUs: firecracker supports 1 to 32", s.VCPUs)
	}
	if s.MemoryMiB < 1 {
		return fmt.Errorf("memory %d MiB: must be positive", s.MemoryMiB)
	}
	if s.VsockCID < 3 {
		return fmt.Errorf("vsock CID %d: must be 3 or more (0-2 are reserved)", s.VsockCID)
	}
	for _, p := range []string{s.APISocket, s.AgentSocket} {
		if err := paths.CheckSocketPath(p); err != nil {
			return err
		}
	}
	return nil
}

// removeSocket removes a socket file left behind. It refuses to remove
// anything that is not a socket, so a wrong path never deletes user data.
func removeSocket(path string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket: move it away (banger only removes its own stale sockets)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// waitSocket waits until the API socket accepts connections, the process
// exits, ctx ends or timeout passes.
func waitSocket(ctx context.Context, path string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		// A cancelled start stops here even when the socket is already up.
		if err := ctx.Err(); err != nil {
			return err
		}
		if conn, err := net.DialTimeout("unix", path, 100*time.Millisecond); err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("firecracker exited before opening its API socket")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("API socket %s did not appear within %s", path, timeout)
		}
	}
}

// logTail returns the last lines the process wrote to its log since
// offset, flattened to one line for an error message.
func logTail(path string, offset int64) string {
	s, _ := logtail.Lines(path, offset, 20)
	return strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(s), "\n", " | ")), " ")
}
