package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/e2etest"
)

// TestProvisionInGuest is issue 19's provisioning proof with a real guest
// (one VM, two boots): --config and flags together, copies in place before
// the scripts, a failing script stopping the create with its status and last
// lines (the VM kept, stopped, the error recorded), the next start resuming
// at that script without running the one before again, and the VM reported
// running only once the listener a script starts (seconds after it exits)
// accepts on the --ready port.
func TestProvisionInGuest(t *testing.T) {
	env := e2etest.New(t, e2etest.Options{Subnet: "172.30.93.0/24", Bridge: "bangerprov", Config: "nat = false\n"})
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("app.conf", "greeting = provisioned\n")
	write("tree/sub/f.txt", "in the tree\n")
	write("first.sh", "echo first >> /root/runs\ncp /etc/app.conf /root/seen-conf\necho provisioned-ok\n")
	write("fail-once.sh", "#!/bin/sh\necho fail-once >> /root/runs\n"+
		"if [ ! -e /root/failed-once ]; then touch /root/failed-once; echo about to fail; echo boom >&2; exit 7; fi\n")
	// The listener starts 8 s after the script returns: only the ready
	// check can make the start wait for it.
	write("listen.sh", "echo listen >> /root/runs\n"+
		"setsid sh -c 'sleep 8; exec perl -MIO::Socket::INET -e \""+
		"my \\$s = IO::Socket::INET->new(LocalAddr => q(0.0.0.0), LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die; "+
		"while (my \\$c = \\$s->accept) { print \\$c qq(hello from the listener\\n); close \\$c }\"' "+
		"</dev/null >/dev/null 2>&1 &\n")
	cfg := write("vm.toml", "provision = [\"first.sh\", \"fail-once.sh\"]\n"+
		"copy = [\"app.conf:/etc/app.conf\", \"tree:/opt/\"]\nready = \"tcp:8080\"\n")

	_, errOut, code := env.Banger("vm", "create", "--name", "dev", "--config", cfg, "--provision", filepath.Join(dir, "listen.sh"))
	if code == 0 {
		t.Fatalf("create with a failing script succeeded:\n%s", errOut)
	}
	for _, want := range []string{"first.sh: provisioned-ok", "fail-once.sh failed: exit status 7", "about to fail", "boom"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("create's output lacks %q:\n%s", want, errOut)
		}
	}
	var vm api.VM
	env.JSON(&vm, "vm", "show", "dev")
	if vm.State != api.VMStopped || !strings.Contains(vm.LastError, "exit status 7") || !strings.Contains(vm.LastError, "boom") {
		t.Errorf("after the failed create: state %s, last error %q; want stopped with the status and last lines", vm.State, vm.LastError)
	}
	if p := vm.Provision; p == nil || p.State != "failed" || p.ScriptsDone != 1 || len(p.Scripts) != 3 {
		t.Errorf("provision record %+v; want failed after 1 of 3 scripts", p)
	}
	if logs := env.MustBanger("vm", "logs", "--provision", "dev"); !strings.Contains(logs, "provisioned-ok") || !strings.Contains(logs, "boom") {
		t.Errorf("vm logs --provision:\n%s", logs)
	}

	_, errOut, code = env.Banger("vm", "start", "dev")
	if code != 0 {
		t.Fatalf("vm start after the failure: exit %d\n%s", code, errOut)
	}
	if i, j := strings.Index(errOut, "ready: waiting for tcp:8080"), strings.Index(errOut, "ready: tcp:8080 holds"); i < 0 || j < i {
		t.Errorf("start did not wait for the ready port:\n%s", errOut)
	}
	// Running means the port answers now, although the listener started
	// seconds after the last script.
	out := env.MustBanger("vm", "exec", "dev", "--timeout", "30s", "--", "perl", "-MIO::Socket::INET", "-e",
		`my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:8080") or die "nothing on 8080: $!\n"; print <$c>`)
	if out != "hello from the listener\n" {
		t.Errorf("the ready port answered %q", out)
	}
	for cmd, want := range map[string]string{
		"cat /root/runs":           "first\nfail-once\nfail-once\nlisten\n",
		"cat /root/seen-conf":      "greeting = provisioned\n",
		"cat /opt/tree/sub/f.txt":  "in the tree\n",
		"stat -c %U /etc/app.conf": "root\n",
	} {
		if got := env.MustBanger("vm", "exec", "dev", "--", "sh", "-c", cmd); got != want {
			t.Errorf("%s in the guest: %q, want %q", cmd, got, want)
		}
	}
	env.JSON(&vm, "vm", "show", "dev")
	if p := vm.Provision; vm.State != api.VMRunning || p == nil || p.State != "done" || p.ScriptsDone != 3 || !p.CopiesDone {
		t.Errorf("after the resumed start: state %s, provision %+v", vm.State, p)
	}
}
