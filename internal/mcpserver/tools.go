package mcpserver

import (
	"context"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/validate"
)

// The tools' inputs and outputs: the SDK derives each tool's JSON schemas
// from these (a field without omitempty is required; the jsonschema tag
// is its description).

// VMInfo is a VM as the tools report it.
type VMInfo struct {
	Name      string `json:"name"`
	State     string `json:"state" jsonschema:"stopped, starting, running, stopping, suspended or error"`
	Address   string `json:"address,omitempty" jsonschema:"the guest's IPv4 address on the host's VM bridge"`
	Image     string `json:"image"`
	VCPUs     int    `json:"vcpus"`
	MemoryMiB int    `json:"memory_mib"`
	DiskBytes int64  `json:"disk_bytes" jsonschema:"size of the VM's work disk"`
	LastError string `json:"last_error,omitempty" jsonschema:"why the last start or stop failed (state error)"`
}

func vmInfo(v api.VM) VMInfo {
	return VMInfo{Name: v.Name, State: string(v.State), Address: v.IP, Image: v.Image, VCPUs: v.VCPUs,
		MemoryMiB: v.MemoryMiB, DiskBytes: v.DiskBytes, LastError: bound(v.LastError, 2048)}
}

type ListInput struct{}

type ListOutput struct {
	VMs []VMInfo `json:"vms"`
}

type CreateInput struct {
	Name      string `json:"name" jsonschema:"the new VM's name: a DNS label (lower-case letters, digits, '-')"`
	Image     string `json:"image,omitempty" jsonschema:"image to boot (default: banger's default_image)"`
	VCPUs     int    `json:"vcpus,omitempty" jsonschema:"virtual CPUs (default from banger's config)"`
	MemoryMiB int    `json:"memory_mib,omitempty" jsonschema:"memory in MiB (default from banger's config)"`
	Disk      string `json:"disk,omitempty" jsonschema:"work disk size, e.g. 8G (default from banger's config)"`
}

type NameInput struct {
	Name string `json:"name" jsonschema:"the VM's name"`
}

type StopInput struct {
	Name  string `json:"name" jsonschema:"the VM's name"`
	Force bool   `json:"force,omitempty" jsonschema:"kill the VM at once instead of shutting it down cleanly"`
}

type DeleteInput struct {
	Name    string `json:"name" jsonschema:"the VM's name"`
	Confirm string `json:"confirm" jsonschema:"the VM's name again: deleting destroys its disks and cannot be undone"`
	Force   bool   `json:"force,omitempty" jsonschema:"stop a running VM first (without it a running VM is refused)"`
}

type DeleteOutput struct {
	Deleted string `json:"deleted"`
}

type PortsOutput struct {
	Forwards  []Forward  `json:"forwards" jsonschema:"host ports banger forwards to the guest"`
	Listeners []Listener `json:"listeners" jsonschema:"TCP ports listening in the guest (a running VM)"`
	// ListenersError says why listeners could not be read (e.g. the VM is
	// stopped).
	ListenersError string `json:"listeners_error,omitempty"`
}

type Forward struct {
	HostAddr  string `json:"host_addr"`
	HostPort  int    `json:"host_port"`
	GuestPort int    `json:"guest_port"`
	Auto      bool   `json:"auto" jsonschema:"followed from the guest's listening ports"`
	Error     string `json:"error,omitempty" jsonschema:"why banger could not serve it (e.g. the host port is taken)"`
}

type Listener struct {
	Addr string `json:"addr"`
	Port int    `json:"port"`
}

type SnapshotInput struct {
	Name     string `json:"name" jsonschema:"the VM's name"`
	Snapshot string `json:"snapshot,omitempty" jsonschema:"the snapshot's name (default: a time stamp)"`
	NoMemory bool   `json:"no_memory,omitempty" jsonschema:"save the disks only: a restore then boots from them"`
}

type SnapshotOutput struct {
	VM        string `json:"vm"`
	Snapshot  string `json:"snapshot"`
	HasMemory bool   `json:"has_memory"`
	SizeBytes int64  `json:"size_bytes"`
	CreatedAt string `json:"created_at" jsonschema:"RFC 3339 time"`
}

type RestoreInput struct {
	Name     string `json:"name" jsonschema:"the VM's name"`
	Snapshot string `json:"snapshot" jsonschema:"the snapshot to go back to"`
}

type RestoreOutput struct {
	VM             VMInfo `json:"vm"`
	SafetySnapshot string `json:"safety_snapshot,omitempty" jsonschema:"the snapshot of the discarded state, taken first"`
}

func (s *Server) tools() []tool {
	return []tool{
		newTool("vm_list", "List the VMs this server may touch, with their state and address.", true, false, s.list),
		newTool("vm_create", "Create a VM and boot it: returns once it runs, with its address.", false, false, s.create),
		newTool("vm_exec", execDescription, true, false, s.exec),
		newTool("vm_read_file", "Read a file in a running VM (through the guest agent). Text comes back as UTF-8, other content as base64; "+
			"at most max_bytes are returned.", true, false, s.readFile),
		newTool("vm_write_file", "Write a file in a running VM (through the guest agent): the file is written under a temporary name "+
			"and renamed, so it is whole or absent. Its directory must exist.", false, false, s.writeFile),
		newTool("vm_list_dir", "List a directory in a running VM: name, type, size and mode of each entry.", true, false, s.listDir),
		newTool("vm_stop", "Stop a VM (its disks are kept; vm_create's VMs can be started again with the banger CLI).", false, false, s.stop),
		newTool("vm_delete", "Delete a VM and its disks. Irreversible: confirm must repeat the VM's name.", false, true, s.delete),
		newTool("vm_ports", "The VM's forwarded ports and the TCP ports listening in the guest.", true, false, s.ports),
		newTool("vm_snapshot", "Save a VM's disks and (running VM) memory as a named snapshot, e.g. before a risky step.", false, false, s.snapshot),
		newTool("vm_clone", "Fork a VM (e.g. before a risky step): a new VM with its own name, address and identity, and copies of "+
			"the source's disks, and its memory when it runs (its processes continue in the clone). Returns once the clone runs.", false, false, s.clone),
		newTool("vm_restore", "Put a VM back to a snapshot. Its current state is saved first as a safety snapshot.", false, true, s.restore),
	}
}

func (s *Server) list(ctx context.Context, _ *mcp.CallToolRequest, _ ListInput) (ListOutput, error) {
	var res api.VMListResult
	if err := s.call(ctx, api.MethodVMList, struct{}{}, &res, nil); err != nil {
		return ListOutput{}, err
	}
	out := ListOutput{VMs: []VMInfo{}}
	for _, v := range res.VMs {
		if s.allowed(v.Name) == nil {
			out.VMs = append(out.VMs, vmInfo(v))
		}
	}
	return out, nil
}

func (s *Server) create(ctx context.Context, req *mcp.CallToolRequest, in CreateInput) (VMInfo, error) {
	if err := s.allowed(in.Name); err != nil {
		return VMInfo{}, err
	}
	if err := validate.VMName(in.Name); err != nil {
		return VMInfo{}, api.NewError(api.CodeInvalidArgument, err.Error(), "use lower-case letters, digits and '-', e.g. agent-dev")
	}
	p := api.VMCreateParams{Name: in.Name}
	if in.Image != "" {
		p.Image = &in.Image
	}
	if in.VCPUs != 0 {
		p.VCPUs = &in.VCPUs
	}
	if in.MemoryMiB != 0 {
		p.MemoryMiB = &in.MemoryMiB
	}
	if in.Disk != "" {
		n, err := validate.ParseSize(in.Disk)
		if err != nil {
			return VMInfo{}, api.NewError(api.CodeInvalidArgument, "disk: "+err.Error(), "e.g. \"8G\"")
		}
		p.DiskBytes = &n
	}
	var vm api.VM
	if err := s.call(ctx, api.MethodVMCreate, p, &vm, progress(ctx, req)); err != nil {
		return VMInfo{}, err
	}
	return vmInfo(vm), nil
}

func (s *Server) stop(ctx context.Context, _ *mcp.CallToolRequest, in StopInput) (VMInfo, error) {
	if err := s.allowed(in.Name); err != nil {
		return VMInfo{}, err
	}
	var vm api.VM
	if err := s.call(ctx, api.MethodVMStop, api.VMStopParams{Name: in.Name, Force: in.Force}, &vm, nil); err != nil {
		return VMInfo{}, err
	}
	return vmInfo(vm), nil
}

func (s *Server) delete(ctx context.Context, _ *mcp.CallToolRequest, in DeleteInput) (DeleteOutput, error) {
	if err := s.allowed(in.Name); err != nil {
		return DeleteOutput{}, err
	}
	if in.Confirm != in.Name {
		return DeleteOutput{}, api.NewError(api.CodeInvalidArgument,
			fmt.Sprintf("confirm %q does not repeat the VM's name %q: nothing was deleted", in.Confirm, in.Name),
			fmt.Sprintf("pass confirm: %q to delete %s and its disks", in.Name, in.Name))
	}
	if err := s.call(ctx, api.MethodVMDelete, api.VMDeleteParams{Name: in.Name, Force: in.Force}, nil, nil); err != nil {
		return DeleteOutput{}, err
	}
	return DeleteOutput{Deleted: in.Name}, nil
}

func (s *Server) ports(ctx context.Context, _ *mcp.CallToolRequest, in NameInput) (PortsOutput, error) {
	if err := s.allowed(in.Name); err != nil {
		return PortsOutput{}, err
	}
	var vm api.VM
	if err := s.call(ctx, api.MethodVMGet, api.VMRef{Name: in.Name}, &vm, nil); err != nil {
		return PortsOutput{}, err
	}
	out := PortsOutput{Forwards: []Forward{}, Listeners: []Listener{}}
	for _, f := range vm.Forwards {
		out.Forwards = append(out.Forwards, Forward{HostAddr: f.HostAddr, HostPort: f.HostPort, GuestPort: f.GuestPort,
			Auto: f.Auto, Error: bound(f.Error, 512)})
	}
	if vm.State != api.VMRunning {
		out.ListenersError = fmt.Sprintf("VM %s is %s: only a running guest has listeners", vm.Name, vm.State)
		return out, nil
	}
	ls, err := s.agent(in.Name).Listeners(ctx)
	if err != nil {
		out.ListenersError = bound(err.Error(), 1024)
		return out, nil
	}
	for _, l := range ls {
		out.Listeners = append(out.Listeners, Listener{Addr: bound(l.Addr, 64), Port: l.Port})
	}
	return out, nil
}

func (s *Server) snapshot(ctx context.Context, req *mcp.CallToolRequest, in SnapshotInput) (SnapshotOutput, error) {
	if err := s.allowed(in.Name); err != nil {
		return SnapshotOutput{}, err
	}
	var snap api.Snapshot
	p := api.SnapshotCreateParams{VM: in.Name, Name: in.Snapshot, NoMemory: in.NoMemory}
	if err := s.call(ctx, api.MethodSnapshotCreate, p, &snap, progress(ctx, req)); err != nil {
		return SnapshotOutput{}, err
	}
	return SnapshotOutput{VM: snap.VM, Snapshot: snap.Name, HasMemory: snap.HasMemory, SizeBytes: snap.SizeBytes,
		CreatedAt: snap.CreatedAt.UTC().Format(time.RFC3339)}, nil
}

func (s *Server) restore(ctx context.Context, req *mcp.CallToolRequest, in RestoreInput) (RestoreOutput, error) {
	if err := s.allowed(in.Name); err != nil {
		return RestoreOutput{}, err
	}
	var res api.VMRestoreResult
	if err := s.call(ctx, api.MethodVMRestore, api.VMRestoreParams{VM: in.Name, Snapshot: in.Snapshot}, &res, progress(ctx, req)); err != nil {
		return RestoreOutput{}, err
	}
	return RestoreOutput{VM: vmInfo(res.VM), SafetySnapshot: res.Safety}, nil
}
