// Package vmm defines the hypervisor driver interface that the VM lifecycle
// service uses. The firecracker/ and qemu/ subpackages implement it.
package vmm

import (
	"context"
	"time"
)

// Spec is everything a driver needs to boot one VM. All paths are absolute.
type Spec struct {
	VMID      string // short id (used in messages and process matching)
	Name      string // VM name (hostname)
	VCPUs     int
	MemoryMiB int

	KernelPath string // uncompressed ELF vmlinux
	InitrdPath string // may be empty
	// BootArgs are the guest-specific kernel arguments (ip=..., hostname,
	// banger.* keys). Drivers add their own required arguments
	// (console=ttyS0, reboot=k, panic=..., tsc_early_khz=... under TCG).
	BootArgs string

	// RootfsPath is the per-VM root disk the driver attaches as /dev/vda
	// (Firecracker: a reflink/sparse clone; QEMU: a qcow2 overlay).
	RootfsPath string
	// RootfsFormat is "raw" or "qcow2".
	RootfsFormat string
	// WorkDiskPath is the per-VM ext4 work disk attached as /dev/vdb (/root).
	WorkDiskPath string

	TapName string // host tap device; empty = no network device
	MAC     string // guest MAC, 06:00:a.b.c.d

	// Per-VM runtime files.
	APISocket   string // Firecracker API socket / QEMU QMP socket
	AgentSocket string // Firecracker vsock uds_path / QEMU virtio-serial chardev socket
	VsockCID    uint32 // Firecracker guest CID (>= 3)
	ConsoleLog  string // guest serial console output
	VMMLog      string // the VMM process's own stdout/stderr / log
}

// Handle identifies a running VMM process. It is not stored: the runtime
// rebuilds it from the VM record (driver, pid) and the VM's socket paths, so
// a restarted daemon can re-adopt the process.
type Handle struct {
	Driver      string `json:"driver"`
	PID         int    `json:"pid"`
	APISocket   string `json:"api_socket"`
	AgentSocket string `json:"agent_socket"`
}

// Driver boots and stops VMs with one hypervisor.
type Driver interface {
	// Name is "firecracker" or "qemu".
	Name() string
	// Start launches the VMM in its own session (so it survives daemon
	// restarts), configures it and boots the guest. It returns once the VMM
	// reports the guest started, not when the guest is healthy. On error it
	// leaves no process and no socket behind.
	Start(ctx context.Context, spec Spec) (Handle, error)
	// Stop asks the guest to shut down, waits up to grace, then escalates
	// (SIGTERM, then SIGKILL). It returns once the process is gone and its
	// sockets are removed. Stopping a process that is already gone is not an
	// error.
	Stop(ctx context.Context, h Handle, grace time.Duration) error
	// Alive reports whether h still names this driver's live VMM process
	// (pid exists and its command line refers to h's socket), so a recycled
	// pid is never mistaken for the VM.
	Alive(h Handle) bool
}

// Snapshotter is a Driver that can freeze a running VM and bring one back
// from saved memory and device state.
type Snapshotter interface {
	// Pause stops the guest's vCPUs; the VMM process stays.
	Pause(ctx context.Context, h Handle) error
	// Resume continues a paused guest.
	Resume(ctx context.Context, h Handle) error
	// SaveState writes the paused VM's memory and device state into dir
	// (which exists and is empty; the driver names its files). The VM stays
	// paused. On error dir may hold partial files: the caller removes dir.
	SaveState(ctx context.Context, h Handle, dir string) error
	// Restore starts a new VMM for spec that resumes from the state SaveState
	// wrote in dir. spec's disks already hold the snapshot's disk contents;
	// its tap, vsock/agent socket paths and API socket may differ from the
	// source VM's (a clone). The guest is running when Restore returns. On
	// error it leaves no process and no socket behind.
	Restore(ctx context.Context, spec Spec, dir string) (Handle, error)
}

// The agent channel is not the driver's business: the VM service dials
// Handle.AgentSocket with agentclient (hybrid vsock for Firecracker, the
// multiplexed virtio-serial port for QEMU) according to Handle.Driver.

// Error wraps a driver failure with the VM and the step or call that failed.
type Error struct {
	VM   string // VM name or id
	Step string // e.g. "PUT /boot-source", "launch", "qmp system_powerdown"
	Err  error
}

func (e *Error) Error() string { return e.VM + ": " + e.Step + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }
