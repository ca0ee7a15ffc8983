package vm

import (
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

// max_vms and max_vm_memory_mib are the daemon's: whatever client asks
// (the CLI, banger mcp), a VM past the limits is refused with the key to
// change, and nothing is stored.
func TestLimitsFromConfig(t *testing.T) {
	s := newService(t, nil)
	s.Config.MaxVMs = 2
	s.Config.MaxVMMemoryMiB = 1024

	if _, err := s.Create(ctx, api.VMCreateParams{Name: "big", MemoryMiB: ptr(2048), NoStart: true}, nil); code(err) != api.CodeResourceExhausted ||
		!strings.Contains(err.Error(), "max_vm_memory_mib") {
		t.Fatalf("2048 MiB over a 1024 MiB limit: %v", err)
	}
	for _, n := range []string{"a", "b"} {
		if _, err := s.Create(ctx, api.VMCreateParams{Name: n, NoStart: true}, nil); err != nil {
			t.Fatalf("create %s within the limits: %v", n, err)
		}
	}
	_, err := s.Create(ctx, api.VMCreateParams{Name: "c", NoStart: true}, nil)
	if code(err) != api.CodeResourceExhausted || !strings.Contains(err.Error(), "max_vms") {
		t.Fatalf("third VM past max_vms = 2: %v", err)
	}
	if _, err := s.Set(ctx, api.VMSetParams{Name: "a", MemoryMiB: ptr(1536)}); code(err) != api.CodeResourceExhausted {
		t.Fatalf("vm set over max_vm_memory_mib: %v", err)
	}
	vms, _ := s.List(ctx)
	if len(vms) != 2 || vms[0].MemoryMiB != 1024 || vms[1].MemoryMiB != 1024 {
		t.Fatalf("refusals changed the VMs: %+v", vms)
	}
	// A deleted VM frees its place.
	if err := s.Delete(ctx, "a", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, api.VMCreateParams{Name: "c", NoStart: true}, nil); err != nil {
		t.Fatalf("create after a delete: %v", err)
	}
}
