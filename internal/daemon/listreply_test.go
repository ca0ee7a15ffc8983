package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/client"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/store"
)

// bangerd answers vm.list and vm.summaries from the last encoded reply
// while the list is unchanged: every change must still be in the very
// next reply, whether a commit by another process, a write through the
// API, or a live field no commit records (the allocated disk).
func TestListRepliesFollowEveryChange(t *testing.T) {
	l := testLayout(t)
	if err := os.WriteFile(l.ConfigFile(), []byte("subnet = \"10.200.0.0/16\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addVMs(t, l, 0, 3)
	c, _ := startDaemon(t, l, bins.daemonA, buildA)

	check := func(step string, want func(name string, vcpus int, allocated int64) bool, n int) {
		t.Helper()
		// Twice: the second reply is the cached one when nothing changed.
		for range 2 {
			list, sums := lists(t, c)
			if len(list.VMs) != n || len(sums.VMs) != n {
				t.Fatalf("%s: vm.list %d VMs, vm.summaries %d; want %d", step, len(list.VMs), len(sums.VMs), n)
			}
			for i, v := range list.VMs {
				s := sums.VMs[i]
				if !want(v.Name, v.VCPUs, v.DiskAllocatedBytes) || !want(s.Name, s.VCPUs, s.DiskAllocatedBytes) {
					t.Fatalf("%s: vm.list has %s vcpus %d allocated %d, vm.summaries %s vcpus %d allocated %d",
						step, v.Name, v.VCPUs, v.DiskAllocatedBytes, s.Name, s.VCPUs, s.DiskAllocatedBytes)
				}
			}
		}
	}
	check("seeded", func(string, int, int64) bool { return true }, 3)

	// A commit by another process.
	addVMs(t, l, 3, 1)
	check("after another process added vm-0003", func(string, int, int64) bool { return true }, 4)

	// A write through bangerd's own API.
	one := 1
	if err := c.Call(context.Background(), api.MethodVMSet, api.VMSetParams{Name: "vm-0001", VCPUs: &one}, nil, nil); err != nil {
		t.Fatal(err)
	}
	check("after vm set vm-0001 --vcpus 1", func(name string, vcpus int, _ int64) bool {
		return (name == "vm-0001") == (vcpus == 1)
	}, 4)

	// A live field: disk blocks allocated under the VM's directory change
	// the reply with no commit at all.
	var id string
	list, _ := lists(t, c)
	for _, v := range list.VMs {
		if v.Name == "vm-0002" {
			id = v.ID
		}
	}
	f := l.VM(id)
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.WorkDisk(), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	check("after vm-0002's work disk got 1 MiB", func(name string, _ int, allocated int64) bool {
		return (name == "vm-0002") == (allocated >= 1<<20)
	}, 4)
}

func lists(t *testing.T, c *client.Client) (api.VMListResult, api.VMSummariesResult) {
	t.Helper()
	var list api.VMListResult
	var sums api.VMSummariesResult
	if err := c.Call(context.Background(), api.MethodVMList, nil, &list, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(context.Background(), api.MethodVMSummaries, nil, &sums, nil); err != nil {
		t.Fatal(err)
	}
	return list, sums
}

// addVMs writes VM records vm-FROM.. straight into the database, as
// another process would.
func addVMs(t *testing.T, l paths.Layout, from, n int) {
	t.Helper()
	st, err := store.Open(l.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if from == 0 {
		if _, err := st.PutImage(ctx, api.Image{Name: "debian", Distro: "debian", RootfsPath: "/nonexistent"}, false); err != nil {
			t.Fatal(err)
		}
	}
	for i := from; i < from+n; i++ {
		nv := store.NewVM{Name: fmt.Sprintf("vm-%04d", i), Image: "debian", VCPUs: 2, MemoryMiB: 1024, DiskBytes: 8 << 30,
			Subnet: netip.MustParsePrefix("10.200.0.0/16")}
		if _, err := st.CreateVM(ctx, nv); err != nil {
			t.Fatal(err)
		}
	}
}
