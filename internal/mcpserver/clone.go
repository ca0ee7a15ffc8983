package mcpserver

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/banger-dev/banger/internal/api"
)

type CloneInput struct {
	Source   string `json:"source" jsonschema:"the VM to copy"`
	Name     string `json:"name" jsonschema:"the new VM's name: a DNS label (lower-case letters, digits, '-')"`
	Snapshot string `json:"snapshot,omitempty" jsonschema:"clone one of the source's snapshots instead of its current state"`
}

// clone forks a VM (vm.clone): the new one has its own name, address and
// identity, and copies of the source's disks (and memory when it runs).
func (s *Server) clone(ctx context.Context, req *mcp.CallToolRequest, in CloneInput) (VMInfo, error) {
	if err := s.allowed(in.Source); err != nil {
		return VMInfo{}, err
	}
	if err := s.allowed(in.Name); err != nil {
		return VMInfo{}, err
	}
	var vm api.VM
	p := api.VMCloneParams{Source: in.Source, Name: in.Name, Snapshot: in.Snapshot}
	if err := s.call(ctx, api.MethodVMClone, p, &vm, progress(ctx, req)); err != nil {
		return VMInfo{}, err
	}
	return vmInfo(vm), nil
}
