package cli

import (
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

// A VM-name argument completes from the daemon's VM list (filtered by the
// typed prefix), on every vm verb taking NAME first; a second argument and
// the flag-only verbs complete nothing.
func TestCompletesVMNames(t *testing.T) {
	rec := &recorder{reply: api.VMListResult{VMs: []api.VM{{Name: "dev"}, {Name: "web"}, {Name: "devbox"}}}}
	for _, verb := range []string{"show", "ssh", "start", "stop", "delete", "logs", "health", "set", "exec", "restart"} {
		out, errOut, code := run(t, rec, "__complete", "vm", verb, "de")
		if code != 0 {
			t.Fatalf("__complete vm %s: exit %d: %s", verb, code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if got := strings.Join(lines[:len(lines)-1], ","); got != "dev,devbox" {
			t.Errorf("__complete vm %s de: candidates %q, want dev,devbox\n%s", verb, got, out)
		}
		if rec.method != api.MethodVMList {
			t.Errorf("vm %s completion asked %s", verb, rec.method)
		}
	}
	rec.method = ""
	out, _, _ := run(t, rec, "__complete", "vm", "show", "dev", "")
	if strings.Contains(out, "web") || rec.method != "" {
		t.Errorf("a second argument completed VM names:\n%s", out)
	}
	rec = &recorder{reply: api.ImageListResult{Images: []api.Image{{Name: "debian"}, {Name: "void"}}}}
	out, _, _ = run(t, rec, "__complete", "image", "show", "")
	if !strings.Contains(out, "debian\nvoid\n") || rec.method != api.MethodImageList {
		t.Errorf("__complete image show: %q (asked %s)", out, rec.method)
	}
}

// vm health exits 1 for an unhealthy VM whatever the output format: a
// script reading the JSON tests the status too.
func TestHealthExitStatusInBothFormats(t *testing.T) {
	for _, healthy := range []bool{true, false} {
		rec := &recorder{reply: api.VMHealthResult{Name: "dev", State: api.VMStopped, Healthy: healthy}}
		want := 0
		if !healthy {
			want = 1
		}
		for _, args := range [][]string{{"vm", "health", "dev"}, {"vm", "health", "dev", "--output", "json"}} {
			out, errOut, code := run(t, rec, args...)
			if code != want || !strings.Contains(out, "dev") {
				t.Errorf("%v (healthy %v): exit %d, want %d\n%s%s", args, healthy, code, want, out, errOut)
			}
		}
	}
}
