package firecracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/banger-dev/banger/internal/vmm"
)

// Files SaveState writes into the snapshot directory: Firecracker's
// microVM state (devices, vCPUs), the guest memory (mem_size_mib long), and
// the driver's own record of the source (SourceFile).
const (
	StateFile  = "vmstate"
	MemoryFile = "memory"
	SourceFile = "firecracker.json"
)

// Source is SourceFile: the Firecracker release that took the snapshot (a
// memory snapshot loads only in that release), the host CPU model it ran on
// (and must be restored on), and the source VM's configuration as GET
// /vm/config reported it. Restore reads it to check the release, the CPU
// and the devices and to find the drives a clone must switch, before it
// launches anything and without relying on what a restored Firecracker
// reports.
type Source struct {
	VMMVersion string       `json:"vmm_version"`
	HostCPU    HostCPU      `json:"host_cpu"`
	Config     FullVMConfig `json:"config"`
}

// cpuinfoPath is where the host's CPU model is read.
const cpuinfoPath = "/proc/cpuinfo"

var _ vmm.Snapshotter = (*Driver)(nil)

// Pause stops the guest's vCPUs (PATCH /vm Paused).
func (d *Driver) Pause(ctx context.Context, h vmm.Handle) error {
	if err := NewClient(h.APISocket).PatchVM(ctx, VMPaused); err != nil {
		return &vmm.Error{VM: handleVM(h), Step: "PATCH /vm Paused", Err: err}
	}
	return nil
}

// Resume continues a paused guest (PATCH /vm Resumed).
func (d *Driver) Resume(ctx context.Context, h vmm.Handle) error {
	if err := NewClient(h.APISocket).PatchVM(ctx, VMResumed); err != nil {
		return &vmm.Error{VM: handleVM(h), Step: "PATCH /vm Resumed", Err: err}
	}
	return nil
}

// SaveState writes a Full snapshot of the paused VM into dir: StateFile and
// MemoryFile. Firecracker refuses a running VM; the VM stays paused.
func (d *Driver) SaveState(ctx context.Context, h vmm.Handle, dir string) error {
	fail := func(err error) error {
		return &vmm.Error{VM: handleVM(h), Step: "PUT /snapshot/create", Err: err}
	}
	if !filepath.IsAbs(dir) {
		// Firecracker resolves relative paths against its own working
		// directory, not the caller's.
		return fail(fmt.Errorf("snapshot directory %q is not an absolute path", dir))
	}
	c := NewClient(h.APISocket)
	info, err := c.GetInstanceInfo(ctx)
	if err != nil {
		return &vmm.Error{VM: handleVM(h), Step: "GET /", Err: err}
	}
	cfg, err := c.GetVMConfig(ctx)
	if err != nil {
		return &vmm.Error{VM: handleVM(h), Step: "GET /vm/config", Err: err}
	}
	cpu, err := readHostCPU(cpuinfoPath)
	if err != nil {
		return &vmm.Error{VM: handleVM(h), Step: "read host CPU model", Err: err}
	}
	err = c.PutSnapshotCreate(ctx, SnapshotCreateParams{
		SnapshotType: SnapshotFull,
		SnapshotPath: filepath.Join(dir, StateFile),
		MemFilePath:  filepath.Join(dir, MemoryFile),
	})
	if err != nil {
		return fail(err)
	}
	data, err := json.MarshalIndent(Source{VMMVersion: info.VMMVersion, HostCPU: cpu, Config: cfg}, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, SourceFile), append(data, '\n'), 0o600)
	}
	if err != nil {
		return &vmm.Error{VM: handleVM(h), Step: "write " + SourceFile, Err: err}
	}
	return nil
}

// Restore launches a new firecracker for spec, as Start does, and loads the
// snapshot in dir into it instead of booting: the tap and the vsock socket
// are spec's (network and vsock overrides), and drives whose paths differ
// from the source VM's (a clone; SourceFile records them) are switched to
// spec's disks before the guest runs again. A snapshot whose devices do not
// match spec's is refused before anything is launched. On any failure the
// process and its sockets are gone.
//
// Firecracker reopens the drives at the paths recorded in the snapshot
// during the load, so those files must still exist then, even for a clone
// whose own disks are elsewhere; the guest never runs on them.
func (d *Driver) Restore(ctx context.Context, spec vmm.Spec, dir string) (vmm.Handle, error) {
	fail := func(err error) (vmm.Handle, error) {
		return vmm.Handle{}, &vmm.Error{VM: vmName(spec), Step: "check snapshot", Err: err}
	}
	if !filepath.IsAbs(dir) {
		return fail(fmt.Errorf("snapshot directory %q is not an absolute path", dir))
	}
	state, mem := filepath.Join(dir, StateFile), filepath.Join(dir, MemoryFile)
	for _, f := range []string{state, mem} {
		if _, err := os.Stat(f); err != nil {
			return fail(fmt.Errorf("%w: the snapshot is incomplete (take it again or delete it)", err))
		}
	}
	source, err := readSource(filepath.Join(dir, SourceFile))
	if err != nil {
		return fail(err)
	}
	cpu, err := readHostCPU(cpuinfoPath)
	if err != nil {
		return fail(fmt.Errorf("read host CPU model: %w", err))
	}
	if source.HostCPU.ID != cpu.ID {
		return fail(fmt.Errorf("the snapshot was taken on a %s CPU and this host has a %s: a Firecracker memory snapshot "+
			"restores only on the same CPU model (restore it on that host, or use a disk-only snapshot)", source.HostCPU, cpu))
	}
	src := source.Config
	if err := checkNetwork(spec, src); err != nil {
		return fail(err)
	}
	if src.Vsock == nil {
		return fail(errors.New("the snapshot's guest has no vsock device, so no agent channel: it was not taken by banger"))
	}
	patches, err := drivePatches(spec, src)
	if err != nil {
		return fail(err)
	}
	p, err := d.launch(ctx, spec)
	if err != nil {
		return vmm.Handle{}, err
	}
	c := NewClient(spec.APISocket)
	info, err := c.GetInstanceInfo(ctx)
	if err != nil {
		return p.undo("GET /", err)
	}
	if trimV(info.VMMVersion) != trimV(source.VMMVersion) {
		return p.undo("check Firecracker version", fmt.Errorf(
			"the snapshot was taken by Firecracker %s and this is %s: a memory snapshot loads only in the release that made it "+
				"(restore it with that release, or use a disk-only snapshot)", source.VMMVersion, info.VMMVersion))
	}
	// The serial console is not a boot resource: it may precede the load.
	if err := c.PutSerial(ctx, Serial{SerialOutPath: spec.ConsoleLog}); err != nil {
		return p.undo("PUT /serial", err)
	}
	load := SnapshotLoadParams{
		SnapshotPath: state,
		MemBackend:   &MemoryBackend{BackendType: MemBackendFile, BackendPath: mem},
		// Paused, so that a clone's drives are switched before it runs.
		ResumeVM:      false,
		VsockOverride: &VsockOverride{UDSPath: spec.AgentSocket},
	}
	if spec.TapName != "" {
		load.NetworkOverrides = []NetworkOverride{{IfaceID: "eth0", HostDevName: spec.TapName}}
	}
	if err := c.PutSnapshotLoad(ctx, load); err != nil {
		return p.undo("PUT /snapshot/load", err)
	}
	if d.opts.Reclaim != nil {
		if err := d.opts.Reclaim(ctx, spec.AgentSocket); err != nil {
			return p.undo("reclaim vsock socket", err)
		}
	}
	for _, pd := range patches {
		if err := c.PatchDrive(ctx, pd); err != nil {
			return p.undo("PATCH /drives/"+pd.DriveID, err)
		}
	}
	if err := c.PatchVM(ctx, VMResumed); err != nil {
		return p.undo("PATCH /vm Resumed", err)
	}
	return p.handle, nil
}

// readSource reads what SaveState recorded about the source VM.
func readSource(path string) (Source, error) {
	var src Source
	data, err := os.ReadFile(path)
	if err != nil {
		return src, fmt.Errorf("%w: the snapshot is incomplete (take it again or delete it)", err)
	}
	if err := json.Unmarshal(data, &src); err != nil {
		return src, fmt.Errorf("%s: %w (the snapshot is damaged: take it again or delete it)", path, err)
	}
	if src.VMMVersion == "" {
		return src, fmt.Errorf("%s records no Firecracker version (the snapshot is damaged: take it again or delete it)", path)
	}
	return src, nil
}

// trimV drops the "v" some places put before a version number.
func trimV(v string) string { return strings.TrimPrefix(v, "v") }

// checkNetwork matches the source's network interfaces with spec's tap:
// the load reopens a tap for each interface, and only eth0 is overridden.
func checkNetwork(spec vmm.Spec, src FullVMConfig) error {
	for _, n := range src.NetworkInterfaces {
		if n.IfaceID != "eth0" {
			return fmt.Errorf("the snapshot's guest has network interface %s, which banger does not create", n.IfaceID)
		}
		if spec.TapName == "" {
			return fmt.Errorf("the snapshot's guest has network interface eth0 (tap %s) but this VM has no tap", n.HostDevName)
		}
	}
	if spec.TapName != "" && len(src.NetworkInterfaces) == 0 {
		return fmt.Errorf("this VM has tap %s but the snapshot's guest has no network interface", spec.TapName)
	}
	return nil
}

// drivePatches lists the PATCH /drives calls that point the restored
// drives at spec's disks, and refuses a snapshot whose drives do not match
// spec's.
func drivePatches(spec vmm.Spec, src FullVMConfig) ([]PartialDrive, error) {
	want := map[string]string{DriveRoot: spec.RootfsPath}
	if spec.WorkDiskPath != "" {
		want[DriveWork] = spec.WorkDiskPath
	}
	var patches []PartialDrive
	for _, dr := range src.Drives {
		path, ok := want[dr.DriveID]
		if !ok {
			return nil, fmt.Errorf("the snapshot's guest has drive %s (%s), which this VM does not have", dr.DriveID, dr.PathOnHost)
		}
		delete(want, dr.DriveID)
		if dr.PathOnHost != path {
			patches = append(patches, PartialDrive{DriveID: dr.DriveID, PathOnHost: path})
		}
	}
	if _, ok := want[DriveWork]; ok {
		return nil, fmt.Errorf("the snapshot's guest has no drive %s: it was not taken from a VM with this disk layout", DriveWork)
	}
	if _, ok := want[DriveRoot]; ok {
		return nil, fmt.Errorf("the snapshot's guest has no drive %s: it was not taken from a VM with this disk layout", DriveRoot)
	}
	return patches, nil
}
