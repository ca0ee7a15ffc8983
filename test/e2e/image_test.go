package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/e2etest"
)

// TestImageVerify proves the shared Debian image with `banger image verify`:
// offline checks, then a throwaway VM booted from it (agent healthy, SSH
// login, baseline commands). It must pass and leave no VM, process, tap or
// file behind.
func TestImageVerify(t *testing.T) {
	env := e2etest.New(t, e2etest.Options{Subnet: "172.30.83.0/24", Bridge: "bangerver"})

	tm := e2etest.StartTimer(t)
	out, errOut, code := env.Banger("image", "verify", "debian")
	tm.Mark("image verify")
	t.Logf("image verify debian:\n%s", out)
	if code != 0 {
		t.Fatalf("image verify debian: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, check := range []string{"agent-health", "ssh", "baseline-commands"} {
		if !rowSays(out, check, "ok") {
			t.Errorf("image verify table has no passing %q row:\n%s", check, out)
		}
	}
	if strings.Contains(out, " fail ") {
		t.Errorf("image verify exited 0 but the table shows a failure:\n%s", out)
	}

	// The throwaway VM is gone, with everything it had.
	if vms := env.VMs(); len(vms) != 0 {
		t.Errorf("image verify left VMs behind: %+v", vms)
	}
	if pids := e2etest.PIDsMentioning(env.Layout().VMsDir()); len(pids) > 0 {
		t.Errorf("image verify left processes behind: %v", pids)
	}
	for _, l := range env.Links() {
		if strings.HasPrefix(l, "bg-") {
			t.Errorf("image verify left tap %s behind", l)
		}
	}
	if entries, err := os.ReadDir(env.Layout().VMsDir()); err == nil && len(entries) > 0 {
		t.Errorf("image verify left VM directories in %s: %v", env.Layout().VMsDir(), entries)
	}

}

// rowSays reports whether a table has a row whose first column is name and
// second is status.
func rowSays(table, name, status string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == name && f[1] == status {
			return true
		}
	}
	return false
}
