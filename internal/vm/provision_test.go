package vm

import (
	"context"
	"io"
	"log"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/agent"
	"github.com/banger-dev/banger/internal/api"
)

// agentRuntime is the recording runtime with a real guest agent: the
// agent's handler serves on a Unix socket in this process, so scripts,
// copies and ready checks really run (on this host, as this user, in a
// temporary directory standing in for the guest's).
type agentRuntime struct {
	*recordingRuntime
	sock string
}

func (r *agentRuntime) DialAgent(ctx context.Context, _ api.VM) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", r.sock)
}

// newProvisionService returns a service whose VMs' agent is real, and the
// directory standing in for the guest.
func newProvisionService(t *testing.T) (*Service, *recordingRuntime, string) {
	t.Helper()
	guest := t.TempDir()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := agent.NewServer(agent.NewHandler(agent.Options{WorkDir: guest}), log.New(io.Discard, "", 0))
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	rec := &recordingRuntime{}
	s := newService(t, rec)
	s.Runtime = &agentRuntime{recordingRuntime: rec, sock: sock}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	s.provisionGuestDir, s.provisionUser = guest, u.Username
	return s, rec, guest
}

func writeFile(t *testing.T, p, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type progressLog struct {
	mu    sync.Mutex
	lines []string
}

func (p *progressLog) add(pr api.Progress) {
	p.mu.Lock()
	p.lines = append(p.lines, pr.Step+": "+pr.Message)
	p.mu.Unlock()
}

func (p *progressLog) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// A create copies, runs the scripts in order, stops at a failing one with
// its status and last lines (the VM kept, stopped, the error recorded); the
// next start resumes at that script, and no script that succeeded ever
// runs again.
func TestProvisionRunsOnceResumesAfterFailure(t *testing.T) {
	s, rt, guest := newProvisionService(t)
	host := t.TempDir()
	count := filepath.Join(guest, "count")
	first := writeFile(t, filepath.Join(host, "first.sh"),
		"echo first >> "+count+"\necho hello from first\npwd > "+filepath.Join(guest, "pwd")+"\n")
	flag := filepath.Join(guest, "failed-once")
	second := writeFile(t, filepath.Join(host, "second.sh"), "#!/bin/sh\necho second >> "+count+"\n"+
		"if [ ! -e "+flag+" ]; then touch "+flag+"; for i in $(seq 1 30); do echo line $i; done; echo oops >&2; exit 3; fi\n"+
		"echo second done\n")
	conf := writeFile(t, filepath.Join(host, "app.conf"), "key = value\n")
	writeFile(t, filepath.Join(host, "tree", "sub", "f.txt"), "in the tree\n")

	// The ready port listens already: this test is about the scripts.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	var progress progressLog
	_, err = s.Create(ctx, api.VMCreateParams{
		Name: "dev", Provision: []string{first, second},
		Copy: []api.ProvisionCopy{
			{Src: conf, Dst: filepath.Join(guest, "etc", "app", "app.conf")},
			{Src: filepath.Join(host, "tree"), Dst: filepath.Join(guest, "opt") + "/"},
		},
		Ready: "tcp:" + strconv.Itoa(port),
	}, progress.add)
	if code(err) != api.CodeProvisionFailed {
		t.Fatalf("create: %v (code %q); want provision_failed", err, code(err))
	}
	for _, want := range []string{"second.sh failed: exit status 3", "line 30", "oops"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "line 5\n") {
		t.Errorf("error holds more than the last lines: %q", err)
	}
	vm, err := s.Get(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if vm.State != api.VMStopped || !strings.Contains(vm.LastError, "exit status 3") {
		t.Errorf("after the failure: state %s, last error %q; want stopped with the script's status", vm.State, vm.LastError)
	}
	if p := vm.Provision; p == nil || p.State != "failed" || p.ScriptsDone != 1 || !p.CopiesDone || len(p.Scripts) != 2 {
		t.Errorf("provision record %+v; want failed after 1 of 2 scripts, copies done", p)
	}
	if !strings.Contains(strings.Join(rt.calls, ","), "stop dev") {
		t.Errorf("runtime calls %v: the VM was not stopped", rt.calls)
	}
	if got := readFile(t, filepath.Join(guest, "etc", "app", "app.conf")); got != "key = value\n" {
		t.Errorf("copied file: %q", got)
	}
	if got := readFile(t, filepath.Join(guest, "opt", "tree", "sub", "f.txt")); got != "in the tree\n" {
		t.Errorf("copied tree: %q", got)
	}
	if got := readFile(t, filepath.Join(guest, "pwd")); strings.TrimSpace(got) != guest {
		t.Errorf("scripts run in %q, want the work directory %s", got, guest)
	}
	if !strings.Contains(progress.String(), "provision: first.sh: hello from first") {
		t.Errorf("script output not streamed as progress:\n%s", progress.String())
	}
	logText, err := s.Logs(ctx, api.VMLogsParams{Name: "dev", Provision: true})
	if err != nil || !strings.Contains(logText.Data, "hello from first") || !strings.Contains(logText.Data, "oops") {
		t.Errorf("vm logs --provision: %q, %v", logText.Data, err)
	}

	// The next start resumes at the failed script; the first is not run again.
	if vm, err = s.Start(ctx, "dev", nil); err != nil || vm.State != api.VMRunning {
		t.Fatalf("start after the fix: %+v, %v", vm, err)
	}
	if got := readFile(t, count); got != "first\nsecond\nsecond\n" {
		t.Errorf("runs recorded %q; want first once, second twice", got)
	}
	vm, _ = s.Get(ctx, "dev")
	if p := vm.Provision; p == nil || p.State != "done" || p.ScriptsDone != 2 || p.Error != "" {
		t.Errorf("provision record after the resumed start: %+v", p)
	}
	// Later boots run nothing again.
	if _, err := s.Restart(ctx, "dev", nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, count); got != "first\nsecond\nsecond\n" {
		t.Errorf("after a restart the runs are %q: a script ran again", got)
	}
}

// The VM is running only once --ready holds: a command that succeeds only
// after a while is waited for; a port nobody opens fails the start within
// agent_timeout and leaves the VM stopped.
func TestProvisionReady(t *testing.T) {
	s, _, guest := newProvisionService(t)
	marker := filepath.Join(guest, "up")
	host := t.TempDir()
	// The script makes the marker appear a moment after it exits.
	script := writeFile(t, filepath.Join(host, "start.sh"), "(sleep 1; touch "+marker+") >/dev/null 2>&1 &\n")
	var progress progressLog
	vm, err := s.Create(ctx, api.VMCreateParams{Name: "web", Provision: []string{script}, Ready: "cmd:test -e " + marker}, progress.add)
	if err != nil || vm.State != api.VMRunning {
		t.Fatalf("create: %+v, %v", vm, err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("running before the ready command could succeed: %v", err)
	}
	if !strings.Contains(progress.String(), "ready: cmd:test -e "+marker+" holds") {
		t.Errorf("progress does not report the ready check:\n%s", progress.String())
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.Config.AgentTimeout = 1500 * time.Millisecond
	_, err = s.Create(ctx, api.VMCreateParams{Name: "never", Ready: "tcp:" + strconv.Itoa(port)}, nil)
	if code(err) != api.CodeProvisionFailed || !strings.Contains(err.Error(), "did not hold within 1.5s") ||
		!strings.Contains(err.Error(), "nothing listens on TCP port "+strconv.Itoa(port)) {
		t.Fatalf("create with a port nobody opens: %v", err)
	}
	vm, _ = s.Get(ctx, "never")
	if vm.State != api.VMStopped || !strings.Contains(vm.LastError, "did not hold") {
		t.Errorf("state %s, last error %q; want stopped with the ready error", vm.State, vm.LastError)
	}
}

// Bad provisioning input is refused before anything is created.
func TestProvisionInputCheckedFirst(t *testing.T) {
	s, rt, _ := newProvisionService(t)
	dir := t.TempDir()
	script := writeFile(t, filepath.Join(dir, "ok.sh"), "true\n")
	for _, tc := range []struct {
		p    api.VMCreateParams
		want string
	}{
		{api.VMCreateParams{Provision: []string{filepath.Join(dir, "missing.sh")}}, "missing.sh: no such file"},
		{api.VMCreateParams{Provision: []string{"relative.sh"}}, "absolute path"},
		{api.VMCreateParams{Provision: []string{dir}}, "not a regular file"},
		{api.VMCreateParams{Provision: []string{script}, Copy: []api.ProvisionCopy{{Src: filepath.Join(dir, "nope"), Dst: "/x"}}}, "nope: no such file"},
		{api.VMCreateParams{Copy: []api.ProvisionCopy{{Src: script, Dst: ""}}}, "destination"},
		{api.VMCreateParams{Ready: "http:80"}, "want tcp:PORT"},
		{api.VMCreateParams{Ready: "tcp:99999"}, "1-65535"},
	} {
		tc.p.Name = "bad"
		_, err := s.Create(ctx, tc.p, nil)
		if code(err) != api.CodeInvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %+v: %v; want invalid_argument saying %q", tc.p, err, tc.want)
		}
	}
	if vms, _ := s.List(ctx); len(vms) != 0 || len(rt.calls) != 0 {
		t.Errorf("refused creates left VMs %v, runtime calls %v", vms, rt.calls)
	}
}
