package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/banger-dev/banger/internal/mapdns/mapdnstest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/client"
	"github.com/banger-dev/banger/internal/image/imagetest"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sysexec"
)

// Binaries built once for all tests: two bangerd builds with different
// BuildIDs (for the stale-daemon restart) and a banger CLI matching A.
var bins struct {
	dir              string
	daemonA, daemonB string
	cli              string
}

const buildA, buildB = "test-build-a", "test-build-b"

func TestMain(m *testing.M) {
	mapdnstest.Main() // the test binary plays mapdns when asked to
	dir, err := os.MkdirTemp("", "banger-bins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.dir = dir
	bins.daemonA = filepath.Join(dir, "a", "bangerd")
	bins.daemonB = filepath.Join(dir, "b", "bangerd")
	bins.cli = filepath.Join(dir, "a", "banger")
	ctx := context.Background()
	for _, b := range []struct{ out, pkg, id string }{
		{bins.daemonA, "github.com/banger-dev/banger/cmd/bangerd", buildA},
		{bins.cli, "github.com/banger-dev/banger/cmd/banger", buildA},
		{bins.daemonB, "github.com/banger-dev/banger/cmd/bangerd", buildB},
	} {
		// Built as the Makefile builds them (static, stripped): the CLI's
		// start-up, which BenchmarkCLIVMList measures, is ~4 ms slower
		// dynamically linked.
		ld := "-s -w -X github.com/banger-dev/banger/internal/version.BuildID=" + b.id
		if _, err := (sysexec.Exec{}).Run(ctx, sysexec.Cmd{Argv: []string{"go", "build", "-trimpath", "-ldflags", ld, "-o", b.out, b.pkg}, Env: []string{"CGO_ENABLED=0"}}); err != nil {
			fmt.Fprintln(os.Stderr, "build test binaries:", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testLayout points the whole process environment (and so any daemon it
// starts) at a fresh directory tree.
func testLayout(tb testing.TB) paths.Layout {
	tb.Helper()
	root, err := os.MkdirTemp("", "bg")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(root) })
	l := paths.UnderRoot(root)
	tb.Setenv("BANGER_CONFIG_DIR", l.ConfigDir)
	tb.Setenv("BANGER_STATE_DIR", l.StateDir)
	tb.Setenv("BANGER_DATA_DIR", l.DataDir)
	tb.Setenv("BANGER_CACHE_DIR", l.CacheDir)
	tb.Setenv("BANGER_RUNTIME_DIR", l.RuntimeDir)
	if err := l.Ensure(); err != nil {
		tb.Fatal(err)
	}
	return l
}

// startDaemon starts bangerd through EnsureDaemon and stops it at cleanup.
func startDaemon(tb testing.TB, l paths.Layout, bin, build string) (*client.Client, api.DaemonInfo) {
	tb.Helper()
	ctx := context.Background()
	c, err := client.EnsureDaemon(ctx, l, client.EnsureOptions{Bin: bin, BuildID: build})
	if err != nil {
		tb.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c := client.New(l.DaemonSocket())
		if info, err := c.Info(ctx); err == nil {
			client.StopDaemon(ctx, c, info.PID, false)
		}
	})
	return c, info
}

func registerImage(tb testing.TB, c *client.Client, l paths.Layout) {
	tb.Helper()
	rootfs := filepath.Join(l.DataDir, "rootfs.ext4")
	imagetest.MinimalRootfs(tb, rootfs)
	var img api.Image
	if err := c.Call(context.Background(), api.MethodImageRegister, api.ImageRegisterParams{Name: "debian", RootfsPath: rootfs}, &img, nil); err != nil {
		tb.Fatal(err)
	}
}

func apiCode(err error) api.ErrorCode {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return !(i >= 0 && i+2 < len(b) && b[i+2] == 'Z')
}

func TestEnsureDaemonStartsRealBangerd(t *testing.T) {
	l := testLayout(t)
	c, info := startDaemon(t, l, bins.daemonA, buildA)
	if info.BuildID != buildA || info.PID == os.Getpid() || !alive(info.PID) || info.APIVersion != api.Version {
		t.Fatalf("daemon info %+v", info)
	}
	st, err := os.Stat(l.DaemonSocket())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", st.Mode(), err)
	}
	if st, _ := os.Stat(filepath.Dir(l.DaemonSocket())); st.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir mode %v", st.Mode())
	}
	// A second EnsureDaemon reuses the running daemon.
	c2, err := client.EnsureDaemon(context.Background(), l, client.EnsureOptions{Bin: bins.daemonA, BuildID: buildA})
	if err != nil {
		t.Fatal(err)
	}
	info2, _ := c2.Info(context.Background())
	if info2.PID != info.PID {
		t.Fatalf("EnsureDaemon started a second daemon (%d, then %d)", info.PID, info2.PID)
	}
	// daemon.stop: the process exits and removes its socket.
	if err := client.StopDaemon(context.Background(), c, info.PID, false); err != nil {
		t.Fatal(err)
	}
	if alive(info.PID) {
		t.Fatal("daemon still alive after daemon.stop")
	}
	if _, err := os.Stat(l.DaemonSocket()); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	log, _ := os.ReadFile(l.DaemonLog())
	if !strings.Contains(string(log), "serving on") || !strings.Contains(string(log), "daemon.stop") {
		t.Fatalf("daemon log lacks start/stop lines:\n%s", log)
	}
}

func TestEnsureDaemonReportsStartFailure(t *testing.T) {
	l := testLayout(t)
	// An invalid config makes bangerd exit at start-up; the error must
	// carry the log path and the log's tail naming the problem.
	os.WriteFile(l.ConfigFile(), []byte("bogus_key = 1\n"), 0o600)
	_, err := client.EnsureDaemon(context.Background(), l, client.EnsureOptions{Bin: bins.daemonA, BuildID: buildA})
	if err == nil || !strings.Contains(err.Error(), l.DaemonLog()) || !strings.Contains(err.Error(), "bogus_key") {
		t.Fatalf("err = %v", err)
	}
}

func TestStaleDaemonRestart(t *testing.T) {
	l := testLayout(t)
	c, infoA := startDaemon(t, l, bins.daemonA, buildA)
	registerImage(t, c, l)
	if err := c.Call(context.Background(), api.MethodVMCreate, api.VMCreateParams{Name: "keep", NoStart: true}, nil, nil); err != nil {
		t.Fatal(err)
	}
	var notes []string
	c2, err := client.EnsureDaemon(context.Background(), l, client.EnsureOptions{Bin: bins.daemonB, BuildID: buildB,
		Status: func(s string) { notes = append(notes, s) }})
	if err != nil {
		t.Fatal(err)
	}
	infoB, err := c2.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if infoB.BuildID != buildB || infoB.PID == infoA.PID {
		t.Fatalf("not restarted: before %+v after %+v", infoA, infoB)
	}
	if alive(infoA.PID) {
		t.Fatal("stale daemon still running")
	}
	if len(notes) == 0 || !strings.Contains(notes[0], "another build") {
		t.Fatalf("status notes %q", notes)
	}
	var vm api.VM
	if err := c2.Call(context.Background(), api.MethodVMGet, api.VMRef{Name: "keep"}, &vm, nil); err != nil {
		t.Fatalf("VM record lost across daemon restart: %v", err)
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	l := testLayout(t)
	_, info := startDaemon(t, l, bins.daemonA, buildA)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: []string{bins.daemonA}})
	if err == nil || res.ExitCode != 1 {
		t.Fatalf("second daemon: exit %d err %v", res.ExitCode, err)
	}
	msg := string(res.Stderr)
	if !strings.Contains(msg, l.DaemonLock()) || !strings.Contains(msg, fmt.Sprintf("pid %d", info.PID)) {
		t.Fatalf("refusal does not name the lock and holder: %q", msg)
	}
	// The first daemon is unaffected and still owns its socket.
	if _, err := client.New(l.DaemonSocket()).Info(ctx); err != nil {
		t.Fatalf("first daemon broken by the second: %v", err)
	}
}

func TestTypedErrorsOverSocket(t *testing.T) {
	l := testLayout(t)
	c, _ := startDaemon(t, l, bins.daemonA, buildA)
	ctx := context.Background()
	err := c.Call(ctx, api.MethodVMGet, api.VMRef{Name: "nope"}, nil, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeNotFound || ae.Hint == "" || !strings.Contains(ae.Message, "nope") {
		t.Fatalf("err = %#v", err)
	}
	registerImage(t, c, l)
	zero := 0
	err = c.Call(ctx, api.MethodVMCreate, api.VMCreateParams{Name: "dev", VCPUs: &zero, NoStart: true}, nil, nil)
	if apiCode(err) != api.CodeInvalidArgument || !strings.Contains(err.Error(), "vcpus") {
		t.Fatalf("vcpus=0: %v", err)
	}
	var list api.VMListResult
	if err := c.Call(ctx, api.MethodVMList, nil, &list, nil); err != nil || len(list.VMs) != 0 {
		t.Fatalf("rejected create stored something: %+v %v", list, err)
	}
	// Booting without a wired hypervisor runtime: a precondition, not a crash.
	err = c.Call(ctx, api.MethodVMCreate, api.VMCreateParams{Name: "dev"}, nil, nil)
	if apiCode(err) != api.CodeFailedPrecondition {
		t.Fatalf("boot without runtime: %v", err)
	}
}

func TestProtocolErrorsKeepDaemonServing(t *testing.T) {
	l := testLayout(t)
	c, _ := startDaemon(t, l, bins.daemonA, buildA)
	ctx := context.Background()
	big := fmt.Sprintf(`{"version":1,"method":"vm.list","params":{"pad":%q}}`, strings.Repeat("x", api.MaxRequestBytes))
	cases := []struct {
		body string
		want api.ErrorCode
	}{
		{`{"version":1,"method":`, api.CodeBadRequest},
		{`not json at all`, api.CodeBadRequest},
		{`{"version":1,"method":"vm.explode"}`, api.CodeUnknownMethod},
		{big, api.CodeTooLarge},
		{`{"version":99,"method":"vm.list"}`, api.CodeVersionMismatch},
		{`{"version":1,"method":"vm.get","params":{"name":"x","bogus":1}}`, api.CodeBadRequest},
	}
	for _, tc := range cases {
		err := c.CallRaw(ctx, []byte(tc.body), nil, nil)
		if apiCode(err) != tc.want {
			t.Errorf("%.40s: err = %v, want %s", tc.body, err, tc.want)
		}
		if _, err := c.Info(ctx); err != nil {
			t.Fatalf("daemon stopped serving after %.40s: %v", tc.body, err)
		}
	}
}

func TestConcurrentClients(t *testing.T) {
	l := testLayout(t)
	c, _ := startDaemon(t, l, bins.daemonA, buildA)
	registerImage(t, c, l)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cl := client.New(l.DaemonSocket()) // a separate client (connection pool) each
			ctx := context.Background()
			keep, drop := fmt.Sprintf("keep-%d", i), fmt.Sprintf("drop-%d", i)
			for _, name := range []string{keep, drop} {
				if err := cl.Call(ctx, api.MethodVMCreate, api.VMCreateParams{Name: name, NoStart: true}, nil, nil); err != nil {
					errs <- fmt.Errorf("create %s: %w", name, err)
					return
				}
			}
			if err := cl.Call(ctx, api.MethodVMDelete, api.VMDeleteParams{Name: drop}, nil, nil); err != nil {
				errs <- fmt.Errorf("delete %s: %w", drop, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var list api.VMListResult
	if err := c.Call(context.Background(), api.MethodVMList, nil, &list, nil); err != nil {
		t.Fatal(err)
	}
	if len(list.VMs) != n {
		t.Fatalf("%d VMs after the storm, want %d", len(list.VMs), n)
	}
	ips := map[string]bool{}
	for _, vm := range list.VMs {
		if !strings.HasPrefix(vm.Name, "keep-") || ips[vm.IP] {
			t.Fatalf("unexpected or duplicate VM %+v", vm)
		}
		ips[vm.IP] = true
	}
}

func TestCLIEndToEnd(t *testing.T) {
	l := testLayout(t)
	t.Setenv("BANGER_DAEMON_BIN", bins.daemonA)
	t.Setenv("NO_COLOR", "1")
	ctx := context.Background()
	bangerCLI := func(args ...string) (string, string, int) {
		res, _ := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: append([]string{bins.cli}, args...)})
		return string(res.Stdout), string(res.Stderr), res.ExitCode
	}
	rootfs := filepath.Join(l.DataDir, "r.ext4")
	imagetest.MinimalRootfs(t, rootfs)
	if out, errOut, code := bangerCLI("image", "register", "--name", "debian", "--rootfs", rootfs); code != 0 {
		t.Fatalf("register: %s %s", out, errOut)
	}
	t.Cleanup(func() { bangerCLI("daemon", "stop") })
	if out, errOut, code := bangerCLI("vm", "create", "--name", "dev", "--no-start", "--memory", "512M"); code != 0 || !strings.Contains(out, "created VM dev") {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	out, _, code := bangerCLI("vm", "list")
	if code != 0 || !strings.Contains(out, "dev") || !strings.Contains(out, "512M") {
		t.Fatalf("list: %s", out)
	}
	_, errOut, code := bangerCLI("vm", "create", "--name", "dev", "--no-start")
	if code != 1 || !strings.HasPrefix(errOut, "banger: ") || !strings.Contains(errOut, "  hint: ") {
		t.Fatalf("duplicate: %d %q", code, errOut)
	}
	_, errOut, code = bangerCLI("vm", "delete", "dev")
	if code == 0 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("delete without tty: %d %q", code, errOut)
	}
	if _, errOut, code := bangerCLI("vm", "delete", "dev", "--yes"); code != 0 {
		t.Fatal(errOut)
	}
	out, _, _ = bangerCLI("version")
	if !strings.Contains(out, buildA) || strings.Count(out, buildA) != 2 {
		t.Fatalf("version: %s", out)
	}
}

func TestTwoDaemonsStartedTogether(t *testing.T) {
	l := testLayout(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	type outcome struct {
		res sysexec.Result
		err error
	}
	results := make(chan outcome, 2)
	for i := 0; i < 2; i++ {
		go func() {
			res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: []string{bins.daemonA}})
			results <- outcome{res, err}
		}()
	}
	// Exactly one is refused; it exits at once, naming the lock.
	first := <-results
	if first.res.ExitCode != 1 || !strings.Contains(string(first.res.Stderr), "holds the lock "+l.DaemonLock()) {
		t.Fatalf("first to exit: code %d stderr %q", first.res.ExitCode, first.res.Stderr)
	}
	c := client.New(l.DaemonSocket())
	var info api.DaemonInfo
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if info, err = c.Info(ctx); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("the winner does not serve: %v", err)
	}
	if err := client.StopDaemon(ctx, c, info.PID, false); err != nil {
		t.Fatal(err)
	}
	if second := <-results; second.err != nil {
		t.Fatalf("winner exited with %v: %s", second.err, second.res.Stderr)
	}
}
