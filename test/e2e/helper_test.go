package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/e2etest"
)

// The tests re-execute their own binary inside the namespaces they make (an
// HTTP listener on the "internet" side, DNS queries from the host side).
func init() { e2etest.RunHelper() }

// assertGone checks that nothing of a deleted VM is left: no process, no
// tap, no file or socket named after its id, no record.
func assertGone(t *testing.T, env *e2etest.Env, vm api.VM) {
	t.Helper()
	if pids := e2etest.PIDsMentioning(env.Layout().VM(vm.ID).Dir); len(pids) > 0 {
		t.Errorf("VM %s deleted but processes still use its files: %v", vm.Name, pids)
	}
	if env.HasLink("bg-" + vm.ID) {
		t.Errorf("VM %s deleted but tap bg-%s still exists: %v", vm.Name, vm.ID, env.Links())
	}
	if files := env.FilesMentioning(vm.ID); len(files) > 0 {
		t.Errorf("VM %s deleted but files remain: %v", vm.Name, files)
	}
	for _, v := range env.VMs() {
		if v.ID == vm.ID || v.Name == vm.Name {
			t.Errorf("VM %s deleted but still listed: %+v", vm.Name, v)
		}
	}
}

// meminfoKiB reads one /proc/meminfo field in the guest.
func meminfoKiB(t *testing.T, env *e2etest.Env, name, field string) int64 {
	t.Helper()
	out := env.MustSSH(name, "cat /proc/meminfo")
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return n
				}
			}
		}
	}
	t.Fatalf("no %s in the guest's /proc/meminfo:\n%s", field, out)
	return 0
}

// rootFSBytes is the size of the filesystem mounted at /root in the guest.
func rootFSBytes(t *testing.T, env *e2etest.Env, name string) int64 {
	t.Helper()
	out := env.MustSSH(name, "df", "-B1", "--output=size,target", "/root")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == "/root" {
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("df /root in %s: /root is not a mount point of its own (work disk not mounted?):\n%s", name, out)
	return 0
}

func gib(n int64) string { return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30)) }
