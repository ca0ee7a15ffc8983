package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

func TestParseCpPath(t *testing.T) {
	for in, want := range map[string]cpPath{
		"dev:/etc/hosts": {vm: "dev", path: "/etc/hosts"},
		"dev:":           {vm: "dev", path: "."},
		"./a:b":          {path: "./a:b"},
		"/tmp/x":         {path: "/tmp/x"},
		"-":              {path: "-"},
		"Not_A_VM:x":     {path: "Not_A_VM:x"},
	} {
		if got := parseCpPath(in); got != want {
			t.Errorf("parseCpPath(%q) = %+v, want %+v", in, got, want)
		}
	}
}

// vm cp refuses what cannot work before contacting anything.
func TestCpArgumentErrors(t *testing.T) {
	for _, args := range [][]string{
		{"vm", "cp", "a", "b"},                 // no VM side
		{"vm", "cp", "dev:a", "other:b"},       // two VM sides
		{"vm", "cp", "dev:a", "web:b", "/tmp"}, // two VMs
		{"vm", "cp", "-", "x", "dev:/tmp"},     // - with another source
	} {
		rec := &recorder{}
		_, stderr, code := run(t, rec, args...)
		if code == 0 || rec.method != "" || !strings.Contains(stderr, "banger: ") {
			t.Errorf("%v: exit %d, called %q, stderr %q; want a usage error and no call", args, code, rec.method, stderr)
		}
	}
}

func TestExecNeedsDashDash(t *testing.T) {
	rec := &recorder{}
	_, stderr, code := run(t, rec, "vm", "exec", "dev", "true")
	if code == 0 || !strings.Contains(stderr, "-- COMMAND") || rec.method != "" {
		t.Errorf("vm exec without --: exit %d, stderr %q, called %q", code, stderr, rec.method)
	}
	_, stderr, code = run(t, rec, "vm", "exec", "dev", "--env", "NOEQUALS", "--", "true")
	if code == 0 || !strings.Contains(stderr, "KEY=VALUE") {
		t.Errorf("--env without =: exit %d, %q", code, stderr)
	}
}

func TestPortForwardSpecErrors(t *testing.T) {
	rec := &recorder{}
	_, stderr, code := run(t, rec, "vm", "port-forward", "dev", "notaport")
	if code == 0 || !strings.Contains(stderr, "HOST_PORT") || rec.method != "" {
		t.Errorf("bad spec: exit %d, stderr %q, called %q", code, stderr, rec.method)
	}
}

func TestSetPublishParams(t *testing.T) {
	rec := &recorder{reply: api.VMSetResult{VM: api.VM{Name: "dev"}}}
	if _, stderr, code := run(t, rec, "vm", "set", "dev", "--publish", "8080:80", "--unpublish", "3000", "--auto-forward=false"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var p api.VMSetParams
	json.Unmarshal(rec.params, &p)
	if len(p.Publish) != 1 || p.Publish[0] != "8080:80" || len(p.Unpublish) != 1 || p.Unpublish[0] != 3000 || p.AutoForward == nil || *p.AutoForward {
		t.Errorf("params %s", rec.params)
	}
}
