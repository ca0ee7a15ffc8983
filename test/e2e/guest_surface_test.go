package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/e2etest"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/termsafe"
)

// The verbs whose real part is a guest, on ONE real guest (QEMU; one boot):
// vm logs --tail and -f on its serial console, the "still running"
// reminder after vm ssh, real ssh refusing a changed host key, the TUI's
// x suspending itself for an interactive ssh and coming back, vm stop
// --force, and vm health's exit status either side of it.
func TestGuestSurface(t *testing.T) {
	if _, err := sysexec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (apt-get install tmux): the terminal checks need it")
	}
	env := e2etest.New(t, e2etest.Options{Subnet: "172.30.96.0/24", Bridge: "bangerg7"})
	bin := filepath.Join(env.Bin, "banger")
	env.MustBanger("vm", "create", "--name", "g1")
	x := tmux{t: t, sock: filepath.Join(env.Root, "tmux.sock")}
	t.Cleanup(func() { _, _ = x.run("kill-server") })

	t.Run("health-healthy", func(t *testing.T) {
		if out, errOut, code := env.Banger("vm", "health", "g1"); code != 0 {
			t.Fatalf("vm health of a running guest: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("ssh-reminder", func(t *testing.T) {
		_, errOut, code := env.SSH("g1", "true")
		if code != 0 || !strings.Contains(errOut, "g1 is still running (healthy") || !strings.Contains(errOut, "banger vm stop g1") {
			t.Errorf("vm ssh g1 -- true: exit %d; want the still-running reminder on stderr:\n%s", code, errOut)
		}
	})

	t.Run("logs-tail-follow", func(t *testing.T) {
		all := env.MustBanger("vm", "logs", "g1")
		lines := strings.Split(strings.TrimSuffix(all, "\n"), "\n")
		if len(lines) < 10 {
			t.Fatalf("vm logs g1: only %d lines:\n%s", len(lines), all)
		}
		tail := env.MustBanger("vm", "logs", "--tail", "3", "g1")
		got := strings.Split(strings.TrimSuffix(tail, "\n"), "\n")
		// The console may have grown between the two calls: the tail is 3
		// whole lines, and they are consecutive lines of the log.
		if len(got) != 3 || !strings.Contains(env.MustBanger("vm", "logs", "g1"), strings.Join(got, "\n")) {
			t.Errorf("vm logs --tail 3: %q; want the log's last 3 lines", got)
		}
		// -f in a terminal: a line the guest writes to its console after
		// follow started shows up; Ctrl-C ends it.
		x.start(t, "follow", env.Argv(bin, "vm", "logs", "-f", "g1"))
		// What the terminal shows of the last line: `vm logs` on a terminal
		// drops the guest's escape sequences (termsafe), and the terminal
		// drops trailing spaces.
		last := ""
		for _, l := range lines {
			if shown := strings.TrimSpace(termsafe.String(l)); shown != "" {
				last = shown
			}
		}
		if r := []rune(last); len(r) > 60 { // a longer line may wrap on the screen
			last = string(r[:60])
		}
		x.waitScreen(t, "follow", false, last)
		env.MustSSH("g1", "sh", "-c", "echo banger-follow-$((6*7)) > /dev/console")
		x.waitScreen(t, "follow", false, "banger-follow-42")
		if _, err := x.run("send-keys", "-t", "follow", "C-c"); err != nil {
			t.Fatal(err)
		}
		x.waitDead(t, "follow")
	})

	t.Run("changed-host-key", func(t *testing.T) {
		kh := env.Layout().KnownHosts()
		orig, err := os.ReadFile(kh)
		if err != nil {
			t.Fatal(err)
		}
		keyFile := filepath.Join(env.Root, "other_key")
		if out, err := sysexec.Run(t.Context(), "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keyFile); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		pub, err := os.ReadFile(keyFile + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		other := strings.Fields(string(pub)) // type, key, comment
		var tampered []string
		n := 0
		for _, line := range strings.Split(strings.TrimSuffix(string(orig), "\n"), "\n") {
			f := strings.Fields(line)
			// This environment's only VM is g1, so every entry is its
			// (hashed host names: the entry cannot be told by its name).
			if len(f) >= 3 && !strings.HasPrefix(line, "#") {
				line = f[0] + " " + other[0] + " " + other[1]
				n++
			}
			tampered = append(tampered, line)
		}
		if n == 0 {
			t.Fatalf("no known_hosts entry in %s:\n%s", kh, orig)
		}
		if err := os.WriteFile(kh, []byte(strings.Join(tampered, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := env.SSH("g1", "echo", "reached")
		if code == 0 || strings.Contains(out, "reached") ||
			!(strings.Contains(errOut, "REMOTE HOST IDENTIFICATION HAS CHANGED") || strings.Contains(errOut, "Host key verification failed")) {
			t.Errorf("ssh with a changed host key: exit %d; want real ssh's refusal\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		if err := os.WriteFile(kh, orig, 0o600); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(env.MustSSH("g1", "echo", "reached")); got != "reached" {
			t.Errorf("ssh after restoring known_hosts: %q", got)
		}
	})

	t.Run("tui-ssh-suspend", func(t *testing.T) {
		x.start(t, "tui", env.Argv(bin, "tui", "--poll", "1s"))
		x.waitScreen(t, "tui", false, "g1", "connected")
		// Select g1 (the only VM), then x: the TUI gives the terminal to an
		// interactive ssh.
		if _, err := x.run("send-keys", "-t", "tui", "x"); err != nil {
			t.Fatal(err)
		}
		x.waitScreen(t, "tui", false, "root@g1")
		if _, err := x.run("send-keys", "-t", "tui", "-l", "echo tui-ssh-$((6*7))"); err != nil {
			t.Fatal(err)
		}
		if _, err := x.run("send-keys", "-t", "tui", "Enter"); err != nil {
			t.Fatal(err)
		}
		x.waitScreen(t, "tui", false, "tui-ssh-42")
		if _, err := x.run("send-keys", "-t", "tui", "-l", "exit"); err != nil {
			t.Fatal(err)
		}
		if _, err := x.run("send-keys", "-t", "tui", "Enter"); err != nil {
			t.Fatal(err)
		}
		// The TUI is back on a redrawn screen: its header, the VM, and
		// nothing of the ssh session.
		deadline := time.Now().Add(30 * time.Second)
		for {
			screen := x.capture2("tui")
			if strings.Contains(screen, "q quit") && strings.Contains(screen, "g1") && !strings.Contains(screen, "tui-ssh-42") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the TUI did not come back after ssh exited; screen:\n%s", screen)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Still live: it answers keys (help, then quit).
		if _, err := x.run("send-keys", "-t", "tui", "q"); err != nil {
			t.Fatal(err)
		}
		x.waitDead(t, "tui")
	})

	t.Run("stop-force", func(t *testing.T) {
		v := env.VM("g1")
		env.MustBanger("vm", "stop", "--force", "g1")
		after := env.VM("g1")
		if after.State != api.VMStopped || after.PID != 0 {
			t.Fatalf("after vm stop --force: %+v", after)
		}
		waitGone(t, v.PID, 10*time.Second)
		out, errOut, code := env.Banger("vm", "health", "g1")
		if code != 1 || !strings.Contains(out, "false") {
			t.Errorf("vm health of the stopped guest: exit %d, want 1\n%s%s", code, out, errOut)
		}
		env.MustBanger("vm", "delete", "--yes", "g1")
	})
}

// capture2 is the pane of session as text.
func (x tmux) capture2(session string) string {
	out, _ := x.run("capture-pane", "-p", "-t", session)
	return out
}
