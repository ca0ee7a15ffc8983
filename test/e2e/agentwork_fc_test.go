package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/e2etest"
	"github.com/banger-dev/banger/internal/sysexec"
)

// TestAgentWorkOverFakeFirecracker drives vm exec (and cp) through the
// whole Firecracker path: banger -> bangerd's vm.agent_connect stream ->
// the hybrid vsock socket of fake-firecracker -> a real banger-agent process
// the fake runs as its guest's agent. The "guest" is this host (inside the
// test's network namespace), so the commands run here.
func TestAgentWorkOverFakeFirecracker(t *testing.T) {
	env := newAgentFCEnv(t, "172.30.87.0/24", "bangerc9")
	must(t, env, "vm", "create", "--name", "fc")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	run := func(stdin string, args ...string) (string, string, int) {
		var out bytes.Buffer
		errOut, code := env.BangerIO(ctx, strings.NewReader(stdin), &out, append([]string{"vm", "exec", "fc"}, args...)...)
		return out.String(), errOut, code
	}

	t.Run("exit status", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want int
		}{
			{[]string{"--", "true"}, 0},
			{[]string{"--", "false"}, 1},
			{[]string{"--", "sh", "-c", "exit 7"}, 7},
			{[]string{"--", "sh", "-c", "kill -TERM $$"}, 128 + 15},
			{[]string{"--", "no-such-command-here"}, 127},
			{[]string{"--timeout", "1s", "--", "sleep", "600"}, 124},
		} {
			_, errOut, code := run("", tc.args...)
			if code != tc.want {
				t.Errorf("vm exec fc %s: exit %d, want %d\nstderr: %s", strings.Join(tc.args, " "), code, tc.want, errOut)
			}
		}
	})

	t.Run("streams, stdin and environment", func(t *testing.T) {
		out, errOut, code := run("to stdin\n", "--env", "GREETING=hi", "--workdir", "/tmp", "--",
			"sh", "-c", `cat; echo "$GREETING from $(pwd)"; echo oops >&2`)
		if code != 0 || out != "to stdin\nhi from /tmp\n" || errOut != "oops\n" {
			t.Errorf("exec: exit %d, stdout %q, stderr %q; want 0, %q, %q", code, out, errOut, "to stdin\nhi from /tmp\n", "oops\n")
		}
	})

	t.Run("binary exact", func(t *testing.T) {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		errOut, code := env.BangerIO(ctx, nil, h, "vm", "exec", "fc", "--", "cat", self)
		if code != 0 {
			t.Fatalf("exec cat: exit %d: %s", code, errOut)
		}
		if got, want := fmt.Sprintf("%x", h.Sum(nil)), fmt.Sprintf("%x", sha256.Sum256(data)); got != want {
			t.Errorf("sha256 of vm exec cat %s = %s, want %s", self, got, want)
		}
	})

	t.Run("json frames", func(t *testing.T) {
		out, _, code := run("", "--output", "json", "--", "sh", "-c", "printf out; printf err >&2; exit 3")
		if code != 3 {
			t.Errorf("exit %d, want 3", code)
		}
		var types []string
		var stdout, stderr []byte
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev struct {
				Type string `json:"type"`
				PID  int    `json:"pid"`
				Data string `json:"data"`
				Code *int   `json:"code"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			types = append(types, ev.Type)
			data, _ := base64.StdEncoding.DecodeString(ev.Data)
			switch ev.Type {
			case "stdout":
				stdout = append(stdout, data...)
			case "stderr":
				stderr = append(stderr, data...)
			case "exit":
				if ev.Code == nil || *ev.Code != 3 {
					t.Errorf("exit frame %s, want code 3", line)
				}
			case "started":
				if ev.PID <= 0 {
					t.Errorf("started frame %s without a pid", line)
				}
			}
		}
		if len(types) < 3 || types[0] != "started" || types[len(types)-1] != "exit" || string(stdout) != "out" || string(stderr) != "err" {
			t.Errorf("frames %v, stdout %q, stderr %q; want started first, exit last, out and err\n%s", types, stdout, stderr, out)
		}
	})

	// Ctrl-C on the host is SIGINT for the guest process, and banger exits
	// with what the process made of it.
	t.Run("ctrl-c", func(t *testing.T) {
		pr, pw := io.Pipe()
		argv := env.Argv(filepath.Join(env.Bin, "banger"), "vm", "exec", "fc", "--",
			"sh", "-c", `trap 'echo interrupted; exit 42' INT; echo ready; sleep 30 & wait`)
		cmd, err := sysexec.Start(sysexec.Cmd{Argv: argv, Stdout: pw, Stderr: os.Stderr}, false)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(pr)
		if !sc.Scan() || sc.Text() != "ready" {
			t.Fatalf("first line %q, want ready", sc.Text())
		}
		// ip netns exec and env exec in place: the pid is banger's.
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if !sc.Scan() || sc.Text() != "interrupted" {
			t.Errorf("after SIGINT: %q, want interrupted", sc.Text())
		}
		go io.Copy(io.Discard, pr)
		err = cmd.Wait()
		pw.Close()
		if code := cmd.ProcessState.ExitCode(); code != 42 {
			t.Errorf("banger exited %d (%v), want 42 from the guest's trap", code, err)
		}
	})

	t.Run("stopped VM", func(t *testing.T) {
		must(t, env, "vm", "create", "--name", "idle", "--no-start")
		errOut, code := env.BangerIO(ctx, nil, io.Discard, "vm", "exec", "idle", "--", "true")
		if code != 1 || !strings.Contains(errOut, "not running") || !strings.Contains(errOut, "banger vm start idle") {
			t.Errorf("exec in a stopped VM: exit %d, stderr %q; want 1 and a hint to start it", code, errOut)
		}
	})
}

// TestCpOverFakeFirecracker copies both ways through the Firecracker path;
// the "guest" is this host, so guest paths are host paths under a
// temporary directory.
func TestCpOverFakeFirecracker(t *testing.T) {
	env := newAgentFCEnv(t, "172.30.88.0/24", "bangerca")
	must(t, env, "vm", "create", "--name", "fc")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	guest, host := t.TempDir(), t.TempDir()

	src := filepath.Join(host, "tree")
	for p, content := range map[string]string{"a.txt": "alpha", "sub/b.txt": "beta"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "a.txt"), mt, mt); err != nil {
		t.Fatal(err)
	}

	// Without -r a directory is refused, naming the fix.
	if _, errOut, code := env.Banger("vm", "cp", src, "fc:"+guest); code == 0 || !strings.Contains(errOut, "-r") {
		t.Errorf("vm cp of a directory without -r: exit %d, stderr %q", code, errOut)
	}
	must(t, env, "vm", "cp", "-r", src, "fc:"+guest+"/copy")
	must(t, env, "vm", "cp", "-r", "fc:"+guest+"/copy", filepath.Join(host, "back"))
	must(t, env, "vm", "cp", "fc:"+guest+"/copy/sub/b.txt", host)
	for p, want := range map[string]string{"back/a.txt": "alpha", "back/sub/b.txt": "beta", "b.txt": "beta"} {
		if got, err := os.ReadFile(filepath.Join(host, p)); err != nil || string(got) != want {
			t.Errorf("%s after the round trip: %q, %v; want %q", p, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(host, "back", "a.txt")); err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mt) {
		t.Errorf("a.txt: %v, %v; want mode 0640 and mtime %v", fi, err, mt)
	}
	if l, err := os.Readlink(filepath.Join(host, "back", "link")); err != nil || l != "a.txt" {
		t.Errorf("link: %q, %v; want a symlink to a.txt", l, err)
	}

	// - streams a tar, both ways.
	var tarOut bytes.Buffer
	if errOut, code := env.BangerIO(ctx, nil, &tarOut, "vm", "cp", "-r", "fc:"+guest+"/copy", "-"); code != 0 {
		t.Fatalf("vm cp to -: exit %d: %s", code, errOut)
	}
	if err := os.MkdirAll(filepath.Join(guest, "fromtar"), 0o755); err != nil {
		t.Fatal(err)
	}
	if errOut, code := env.BangerIO(ctx, &tarOut, io.Discard, "vm", "cp", "-", "fc:"+guest+"/fromtar"); code != 0 {
		t.Fatalf("vm cp from -: exit %d: %s", code, errOut)
	}
	if got, err := os.ReadFile(filepath.Join(guest, "fromtar", "copy", "sub", "b.txt")); err != nil || string(got) != "beta" {
		t.Errorf("file through two tar streams: %q, %v", got, err)
	}

	// A missing source is an error that leaves nothing behind.
	if _, errOut, code := env.Banger("vm", "cp", "fc:"+guest+"/nothing-here", filepath.Join(host, "nothing")); code == 0 || !strings.Contains(errOut, "does not exist") {
		t.Errorf("vm cp of a missing guest file: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Lstat(filepath.Join(host, "nothing")); err == nil {
		t.Error("a failed copy left a file behind")
	}
}

// newAgentFCEnv is an environment whose VMs run on fake-firecracker with a
// real banger-agent as the guest's, without NAT (the namespace has no
// uplink, and the agent channel needs none).
func newAgentFCEnv(t *testing.T, subnet, bridge string) *e2etest.Env {
	t.Helper()
	e2etest.Require(t)
	bin := e2etest.Binaries(t)
	env := e2etest.New(t, e2etest.Options{
		Subnet: subnet, Bridge: bridge,
		Config: fmt.Sprintf("vmm = \"firecracker\"\nfirecracker_bin = %q\ndefault_image = \"tiny\"\ndisk_size = \"1G\"\nnat = false\n",
			filepath.Join(bin, "fake-firecracker")),
		Env: []string{"BANGER_TEST_ASSUME_KVM=1", "BANGER_TEST_SKIP_SSH_WAIT=1", "FAKE_FC_AGENT=" + filepath.Join(bin, "banger-agent")},
	})
	registerTinyImage(t, env)
	return env
}

// TestPortForwardOverFakeFirecracker reaches a "guest" web server that
// listens on the guest's loopback only, through vm port-forward.
func TestPortForwardOverFakeFirecracker(t *testing.T) {
	env := newAgentFCEnv(t, "172.30.89.0/24", "bangercb")
	must(t, env, "vm", "create", "--name", "fc")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	site := t.TempDir()
	if err := os.WriteFile(filepath.Join(site, "hello.txt"), []byte("hello through the agent\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The server runs in the "guest" through vm exec, on its loopback.
	srvCtx, stopSrv := context.WithCancel(ctx)
	defer stopSrv()
	go env.BangerCtx(srvCtx, "vm", "exec", "fc", "--", "busybox", "httpd", "-f", "-p", "127.0.0.1:18080", "-h", site)
	fwdCtx, stopFwd := context.WithCancel(ctx)
	defer stopFwd()
	go env.BangerCtx(fwdCtx, "vm", "port-forward", "fc", "18081:18080")

	got := fetchInNS(t, env, ctx, "http://127.0.0.1:18081/hello.txt")
	if got != "hello through the agent\n" {
		t.Errorf("through the forward: %q", got)
	}
	// A host port in use is a clear error naming it.
	_, errOut, code := env.Banger("vm", "port-forward", "fc", "18081:18080")
	if code == 0 || !strings.Contains(errOut, "127.0.0.1:18081 is in use") {
		t.Errorf("second forward on the same port: exit %d, stderr %q; want a refusal naming the port", code, errOut)
	}
}

// fetchInNS GETs url from inside the test's namespace, retrying until the
// forward and the server are up (or ctx ends).
func fetchInNS(t *testing.T, env *e2etest.Env, ctx context.Context, url string) string {
	t.Helper()
	var last error
	for ctx.Err() == nil {
		out, err := env.InNS("curl", "-fsS", "--max-time", "10", url)
		if err == nil {
			return out
		}
		last = err
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("GET %s never answered: %v", url, last)
	return ""
}

// TestPublishOverFakeFirecracker: a persistent forward on the VM record is
// served by bangerd while the VM runs, after vm restart, and after a
// daemon restart; vm show lists it; unpublishing ends it.
func TestPublishOverFakeFirecracker(t *testing.T) {
	env := newAgentFCEnv(t, "172.30.91.0/24", "bangercc")
	must(t, env, "vm", "create", "--name", "fc", "--publish", "18091:18090")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	site := t.TempDir()
	if err := os.WriteFile(filepath.Join(site, "index.html"), []byte("published\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The fake's guest is this namespace: the server outlives VM restarts.
	srvCtx, stopSrv := context.WithCancel(ctx)
	defer stopSrv()
	go env.InNSCtx(srvCtx, "busybox", "httpd", "-f", "-p", "127.0.0.1:18090", "-h", site)

	if got := fetchInNS(t, env, ctx, "http://127.0.0.1:18091/index.html"); got != "published\n" {
		t.Errorf("through the published port: %q", got)
	}
	if show := must(t, env, "vm", "show", "fc"); !strings.Contains(show, "127.0.0.1:18091->18090") {
		t.Errorf("vm show does not list the forward:\n%s", show)
	}
	must(t, env, "vm", "restart", "fc")
	if got := fetchInNS(t, env, ctx, "http://127.0.0.1:18091/index.html"); got != "published\n" {
		t.Errorf("after vm restart: %q", got)
	}
	must(t, env, "daemon", "stop")
	must(t, env, "vm", "list") // starts the daemon, which restores the forward
	if got := fetchInNS(t, env, ctx, "http://127.0.0.1:18091/index.html"); got != "published\n" {
		t.Errorf("after a daemon restart: %q", got)
	}
	must(t, env, "vm", "set", "fc", "--unpublish", "18091")
	if out, err := env.InNS("curl", "-fsS", "--max-time", "5", "http://127.0.0.1:18091/index.html"); err == nil {
		t.Errorf("the forward still answers after --unpublish: %q", out)
	}
}
