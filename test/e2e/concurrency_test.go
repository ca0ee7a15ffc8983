package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

// cliResult is one CLI call of the concurrency test.
type cliResult struct {
	client int
	args   []string
	stdout string
	stderr string
	code   int
}

// validationError reports whether a failed call failed for a reason the
// request itself caused (a name taken by another client, a VM another
// client deleted), not because of banger.
func validationError(stderr string) bool {
	return strings.Contains(stderr, "already exists") || strings.Contains(stderr, "does not exist")
}

// 50 real banger processes at once, starting from no daemon (so they also
// race to start it), mixing create --no-start, set, list and delete on a
// small pool of shared names plus one name of their own each.
func TestConcurrentClients(t *testing.T) {
	env := newFakeFCEnv(t, "172.30.81.0/24", "bangerc2")
	must(t, env, "daemon", "stop")

	const clients = 50
	pool := func(r *rand.Rand) string { return fmt.Sprintf("p%02d", r.Intn(12)) }
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	var mu sync.Mutex
	var results []cliResult
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(i)))
			own := fmt.Sprintf("own%02d", i)
			ops := [][]string{
				{"vm", "create", "--no-start", "--name", own},
				{"vm", "create", "--no-start", "--name", pool(r)},
				{"vm", "set", own, "--vcpus", "2", "--memory", fmt.Sprintf("%dM", 256+i)},
				{"vm", "list", "--output", "json"},
				{"vm", "set", pool(r), "--memory", "512M"},
				{"vm", "delete", "--yes", pool(r)},
				{"vm", "list"},
			}
			// Shuffle everything after the client's own create so the mix
			// differs per client.
			r.Shuffle(len(ops)-1, func(a, b int) { ops[a+1], ops[b+1] = ops[b+1], ops[a+1] })
			for _, args := range ops {
				out, errOut, code := env.BangerCtx(ctx, args...)
				mu.Lock()
				results = append(results, cliResult{client: i, args: args, stdout: out, stderr: errOut, code: code})
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the clients did not finish within the deadline (deadlock or starvation): %v", ctx.Err())
	}

	// Expected outcome, from what succeeded: a pool name exists at the end
	// iff it was created once more than it was deleted (a create succeeds
	// only when the name is free, a delete only when it is taken).
	net := map[string]int{}
	for _, r := range results {
		if r.code != 0 {
			if !validationError(r.stderr) {
				t.Errorf("client %d: banger %s: exit %d, not a validation error:\n%s%s",
					r.client, strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
			}
			continue
		}
		switch {
		case r.args[1] == "create":
			net[r.args[4]]++
		case r.args[1] == "delete":
			net[r.args[3]]--
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	vms := listVMs(t, env)
	byName := map[string]api.VM{}
	ips, macs, cids, ids := map[string]string{}, map[string]string{}, map[uint32]string{}, map[string]string{}
	for _, v := range vms {
		if _, dup := byName[v.Name]; dup {
			t.Errorf("two VMs named %s", v.Name)
		}
		byName[v.Name] = v
		for _, u := range []struct {
			m   map[string]string
			key string
			of  string
		}{{ips, v.IP, "address"}, {macs, v.MAC, "MAC"}, {ids, v.ID, "id"}} {
			if other, dup := u.m[u.key]; dup {
				t.Errorf("VMs %s and %s share the %s %s", other, v.Name, u.of, u.key)
			}
			u.m[u.key] = v.Name
		}
		if other, dup := cids[v.VsockCID]; dup {
			t.Errorf("VMs %s and %s share the vsock CID %d", other, v.Name, v.VsockCID)
		}
		cids[v.VsockCID] = v.Name
		if v.State != api.VMStopped {
			t.Errorf("VM %s is %s: --no-start VMs must stay stopped", v.Name, v.State)
		}
		// Every record has its disks: no create left half-made.
		if _, err := os.Stat(filepath.Join(env.Root, "state", "vms", v.ID, "work.ext4")); err != nil {
			t.Errorf("VM %s has no work disk: %v", v.Name, err)
		}
	}
	for i := 0; i < clients; i++ {
		v, ok := byName[fmt.Sprintf("own%02d", i)]
		if !ok {
			t.Errorf("VM own%02d was created and never deleted, but is gone (lost row)", i)
			continue
		}
		if v.VCPUs != 2 || v.MemoryMiB != 256+i {
			t.Errorf("VM %s: vcpus %d, memory %d MiB; want the values set: 2, %d", v.Name, v.VCPUs, v.MemoryMiB, 256+i)
		}
	}
	for name, n := range net {
		_, exists := byName[name]
		if n < 0 || n > 1 || exists != (n == 1) {
			t.Errorf("pool VM %s: %d more successful creates than deletes, but exists=%v", name, n, exists)
		}
	}
	for name := range byName {
		if strings.HasPrefix(name, "p") {
			if _, ok := net[name]; !ok {
				t.Errorf("VM %s exists but no create of it succeeded", name)
			}
		}
	}
	if len(bangerdPIDs(env)) != 1 {
		t.Errorf("bangerd processes %v after 50 clients raced to start it: want exactly one", bangerdPIDs(env))
	}
	checkNoLeaks(t, env, vms)
	t.Logf("%d calls by %d clients; %d VMs at the end", len(results), clients, len(vms))
}
