package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/e2etest"
)

// TestAgentWorkInGuest is issue 16's proof with a real guest (QEMU, TCG
// here; the agent over virtio-serial + yamux): vm exec, a tty through
// tmux, vm cp both ways up to 256 MiB, port forwarding to a guest-only
// listener (explicit, published across vm restart, automatic), and ssh
// through the installed ssh-config Include. One boot serves every step
// but the restart the published forward must survive.
func TestAgentWorkInGuest(t *testing.T) {
	// No NAT: this namespace has no uplink, and nothing here needs one.
	env := e2etest.New(t, e2etest.Options{Subnet: "172.30.92.0/24", Bridge: "bangerwork", Config: "nat = false\n"})
	env.MustBanger("vm", "create", "--name", "dev")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	execIn := func(stdin io.Reader, stdout io.Writer, args ...string) (string, int) {
		return env.BangerIO(ctx, stdin, stdout, append([]string{"vm", "exec", "dev"}, args...)...)
	}

	t.Run("exec", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want int
		}{
			{[]string{"--", "true"}, 0},
			{[]string{"--", "false"}, 1},
			{[]string{"--", "sh", "-c", "exit 7"}, 7},
			{[]string{"--", "sh", "-c", "kill -TERM $$"}, 143},
			{[]string{"--", "no-such-command"}, 127},
			{[]string{"--timeout", "2s", "--", "sleep", "600"}, 124},
		} {
			if errOut, code := execIn(nil, io.Discard, tc.args...); code != tc.want {
				t.Errorf("vm exec dev %s: exit %d, want %d; stderr %q", strings.Join(tc.args, " "), code, tc.want, errOut)
			}
		}
		var out bytes.Buffer
		if errOut, code := execIn(strings.NewReader("line1\nline2\n"), &out, "--", "wc", "-l"); code != 0 || strings.TrimSpace(out.String()) != "2" {
			t.Errorf("stdin then EOF: exit %d, stdout %q, stderr %q; want 2 lines counted", code, out.String(), errOut)
		}
		out.Reset()
		if _, code := execIn(nil, &out, "--user", "nobody", "--", "id", "-un"); code != 0 || out.String() != "nobody\n" {
			t.Errorf("--user nobody: exit %d, %q", code, out.String())
		}
		// Byte-exact output: the host's hash of what came through equals
		// the guest's own.
		h := sha256.New()
		if errOut, code := execIn(nil, h, "--", "cat", "/bin/ls"); code != 0 {
			t.Fatalf("cat /bin/ls: exit %d: %s", code, errOut)
		}
		out.Reset()
		execIn(nil, &out, "--", "sha256sum", "/bin/ls")
		if got := fmt.Sprintf("%x", h.Sum(nil)); !strings.HasPrefix(out.String(), got) {
			t.Errorf("sha256 of vm exec cat /bin/ls = %s; the guest says %s", got, out.String())
		}
	})

	t.Run("tty", func(t *testing.T) {
		if _, err := exec.LookPath("tmux"); err != nil {
			t.Skip("tmux is not installed")
		}
		x := tmux{t: t, sock: filepath.Join(env.Root, "tmux-exec.sock")}
		t.Cleanup(func() { _, _ = x.run("kill-server") })
		argv := env.Argv(filepath.Join(env.Bin, "banger"), "vm", "exec", "dev", "-t", "--", "bash", "--norc")
		if out, err := x.run(append([]string{"new-session", "-d", "-x", "100", "-y", "30", "-s", "tui"}, argv...)...); err != nil {
			t.Fatalf("tmux new-session: %v\n%s", err, out)
		}
		waitScreen(t, x, "stty size", "30 100")
		if _, err := x.run("resize-window", "-t", "tui", "-x", "120", "-y", "40"); err != nil {
			t.Fatal(err)
		}
		waitScreen(t, x, "stty size", "40 120")
		x.run("send-keys", "-t", "tui", "exit 5", "Enter")
	})

	t.Run("cp", func(t *testing.T) {
		host := t.TempDir()
		tree := filepath.Join(host, "tree")
		os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
		os.WriteFile(filepath.Join(tree, "sub", "f.txt"), []byte("in the tree\n"), 0o600)
		os.Symlink("sub/f.txt", filepath.Join(tree, "link"))
		env.MustBanger("vm", "cp", "-r", tree, "dev:/root/tree")
		var out bytes.Buffer
		execIn(nil, &out, "--", "sh", "-c", "cat /root/tree/link; stat -c %a /root/tree/sub/f.txt; readlink /root/tree/link")
		if out.String() != "in the tree\n600\nsub/f.txt\n" {
			t.Errorf("tree in the guest: %q", out.String())
		}
		env.MustBanger("vm", "cp", "-r", "dev:/root/tree", filepath.Join(host, "back"))
		if l, err := os.Readlink(filepath.Join(host, "back", "link")); err != nil || l != "sub/f.txt" {
			t.Errorf("symlink back on the host: %q, %v", l, err)
		}

		// 256 MiB, both ways, hashes compared.
		big := filepath.Join(host, "big")
		sum := writeRandom(t, big, 256<<20)
		tm := e2etest.StartTimer(t)
		env.MustBanger("vm", "cp", big, "dev:/root/big")
		tm.Mark("vm cp 256 MiB into the guest")
		out.Reset()
		execIn(nil, &out, "--", "sha256sum", "/root/big")
		if !strings.HasPrefix(out.String(), sum) {
			t.Errorf("guest sha256 of the copied file %q, want %s", out.String(), sum)
		}
		tm = e2etest.StartTimer(t)
		env.MustBanger("vm", "cp", "dev:/root/big", filepath.Join(host, "big.back"))
		tm.Mark("vm cp 256 MiB out of the guest")
		if got := fileSHA(t, filepath.Join(host, "big.back")); got != sum {
			t.Errorf("sha256 after the round trip %s, want %s", got, sum)
		}
		execIn(nil, io.Discard, "--", "rm", "-f", "/root/big")

		// A failed copy leaves nothing: into a missing guest directory,
		// and from a missing guest file.
		if _, errOut, code := env.Banger("vm", "cp", filepath.Join(tree, "sub", "f.txt"), "dev:/no/such/dir/f.txt"); code == 0 || !strings.Contains(errOut, "does not exist") {
			t.Errorf("cp into a missing directory: exit %d, %q", code, errOut)
		}
		if _, _, code := env.Banger("vm", "cp", "dev:/root/nothing", filepath.Join(host, "nothing")); code == 0 {
			t.Error("cp of a missing guest file succeeded")
		}
		if _, err := os.Lstat(filepath.Join(host, "nothing")); err == nil {
			t.Error("a failed copy left a file on the host")
		}
	})

	t.Run("port-forward", func(t *testing.T) {
		// The image has no web server: the host's static busybox, copied
		// in, serves a page and a CGI script that says who connected.
		bb, err := exec.LookPath("busybox")
		if err != nil {
			t.Skip("no busybox on the host to copy into the guest")
		}
		env.MustBanger("vm", "cp", bb, "dev:/usr/local/bin/busybox")
		execIn(nil, io.Discard, "--", "sh", "-c", "mkdir -p /root/site/cgi-bin && echo served-by-the-guest > /root/site/index.html && "+
			"printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /root/site/cgi-bin/peer && chmod 755 /root/site/cgi-bin/peer")
		srvCtx, stopSrv := context.WithCancel(ctx)
		defer stopSrv()
		// On the guest's loopback only: the forward must go through the agent.
		go env.BangerCtx(srvCtx, "vm", "exec", "dev", "--", "busybox", "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/root/site")
		// On every address: the forward takes the direct path over the VM network.
		go env.BangerCtx(srvCtx, "vm", "exec", "dev", "--", "busybox", "httpd", "-f", "-p", "8081", "-h", "/root/site")
		fwdCtx, stopFwd := context.WithCancel(ctx)
		defer stopFwd()
		go env.BangerCtx(fwdCtx, "vm", "port-forward", "dev", "18080:8080", "18081:8081")
		if got := fetchInNS(t, env, ctx, "http://127.0.0.1:18080/index.html"); got != "served-by-the-guest\n" {
			t.Errorf("through the forward: %q", got)
		}
		if got := fetchInNS(t, env, ctx, "http://127.0.0.1:18080/cgi-bin/peer"); got != "127.0.0.1\n" {
			t.Errorf("a loopback-only guest port was reached from %q, want 127.0.0.1 (through the agent)", got)
		}
		if got := strings.TrimSpace(fetchInNS(t, env, ctx, "http://127.0.0.1:18081/cgi-bin/peer")); got == "127.0.0.1" || got == "" {
			t.Errorf("a guest port open on every address was reached from %q, want the host's bridge address (direct path)", got)
		}
	})

	t.Run("publish and auto-forward", func(t *testing.T) { publishAndAutoForward(t, env, ctx) })

	t.Run("ssh-config", func(t *testing.T) {
		home := t.TempDir()
		cfg := filepath.Join(home, ".ssh", "config")
		if _, errOut, code := env.BangerWithEnv([]string{"HOME=" + home}, "ssh-config", "--install"); code != 0 {
			t.Fatalf("ssh-config --install: exit %d: %s", code, errOut)
		}
		out, err := env.InNS("ssh", "-F", cfg, "-o", "BatchMode=yes", "dev", "hostname")
		if err != nil || strings.TrimSpace(out) != "dev" {
			t.Errorf("ssh dev via the installed Include: %q, %v", out, err)
		}
		env.BangerWithEnv([]string{"HOME=" + home}, "ssh-config", "--uninstall")
		if data, _ := os.ReadFile(cfg); strings.Contains(string(data), "Include") {
			t.Errorf("after --uninstall the config still includes:\n%s", data)
		}
	})
}

// publishAndAutoForward: a persistent --publish survives vm restart, and
// with auto-forward a new guest listener is forwarded by itself. It needs
// the busybox the port-forward step copied in.
func publishAndAutoForward(t *testing.T, env *e2etest.Env, ctx context.Context) {
	env.MustBanger("vm", "set", "dev", "--publish", "18090:8090")
	env.MustBanger("vm", "restart", "dev")
	srvCtx, stopSrv := context.WithCancel(ctx)
	defer stopSrv()
	go env.BangerCtx(srvCtx, "vm", "exec", "dev", "--", "busybox", "httpd", "-f", "-p", "127.0.0.1:8090", "-h", "/root/site")
	if got := fetchInNS(t, env, ctx, "http://127.0.0.1:18090/index.html"); got != "served-by-the-guest\n" {
		t.Errorf("published port after vm restart: %q", got)
	}
	env.MustBanger("vm", "set", "dev", "--auto-forward")
	go env.BangerCtx(srvCtx, "vm", "exec", "dev", "--", "busybox", "httpd", "-f", "-p", "8095", "-h", "/root/site")
	if got := fetchInNS(t, env, ctx, "http://127.0.0.1:8095/index.html"); got != "served-by-the-guest\n" {
		t.Errorf("automatically forwarded port: %q", got)
	}
	if show := env.MustBanger("vm", "show", "dev"); !strings.Contains(show, "127.0.0.1:8095->8095 (auto)") {
		t.Errorf("vm show does not list the automatic forward:\n%s", show)
	}
}

// waitScreen types command into the tmux pane until want shows.
func waitScreen(t *testing.T, x tmux, command, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		x.run("send-keys", "-t", "tui", command, "Enter")
		for range 20 {
			if strings.Contains(x.capture(), want) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Fatalf("%q never showed %q; screen:\n%s", command, want, x.capture())
}

func writeRandom(t *testing.T, path string, size int64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return fmt.Sprintf("%x", h.Sum(nil))
}
