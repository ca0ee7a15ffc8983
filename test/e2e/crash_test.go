// Package e2e holds banger's end-to-end tests that drive the real banger and
// bangerd binaries: crash safety, concurrency, daemon stop, doctor preflight
// and the TUI in a terminal. They use the wire-level fake Firecracker (no
// guest boots), so they are fast; see internal/e2etest for the harness.
package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/e2etest"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/vm"
	"github.com/banger-dev/banger/internal/vmruntime"
)

// newFakeFCEnv is an environment whose VMs run on the fake Firecracker and
// boot a tiny image (the fake boots nothing, and a tiny image keeps per-VM
// disk clones cheap).
func newFakeFCEnv(t testing.TB, subnet, bridge string, extraEnv ...string) *e2etest.Env {
	t.Helper()
	e2etest.Require(t)
	bin := e2etest.Binaries(t)
	env := e2etest.New(t, e2etest.Options{
		Subnet: subnet, Bridge: bridge,
		Config: fmt.Sprintf("vmm = \"firecracker\"\nfirecracker_bin = %q\ndefault_image = \"tiny\"\ndisk_size = \"1G\"\n",
			filepath.Join(bin, "fake-firecracker")),
		Env: append([]string{"BANGER_TEST_ASSUME_KVM=1", "BANGER_TEST_SKIP_SSH_WAIT=1"}, extraEnv...),
	})
	registerTinyImage(t, env)
	return env
}

// registerTinyImage packs a 16 MiB ext4 image holding what `image register`
// insists on (the agent and an sshd) and registers it as "tiny".
func registerTinyImage(t testing.TB, env *e2etest.Env) {
	t.Helper()
	tree := filepath.Join(env.Root, "tiny-tree")
	for _, d := range []string{"usr/local/bin", "usr/sbin", "sbin"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	agent, err := os.ReadFile(filepath.Join(env.Bin, "banger-agent"))
	if err != nil {
		t.Fatal(err)
	}
	script := []byte("#!/bin/sh\nexit 0\n")
	for p, data := range map[string][]byte{"usr/local/bin/banger-agent": agent, "usr/sbin/sshd": script, "sbin/init": script} {
		if err := os.WriteFile(filepath.Join(tree, p), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(env.Root, "tiny.ext4")
	if out, err := sysexec.Run(t.Context(), "mkfs.ext4", "-q", "-F", "-d", tree, img, "16M"); err != nil {
		t.Fatalf("mkfs.ext4 tiny image: %v\n%s", err, out)
	}
	must(t, env, "image", "register", "--name", "tiny", "--rootfs", img)
}

// must runs the CLI and fails t (not the environment's test) on a non-zero
// exit.
func must(t testing.TB, env *e2etest.Env, args ...string) string {
	t.Helper()
	out, errOut, code := env.Banger(args...)
	if code != 0 {
		t.Fatalf("banger %s: exit %d\nstdout:\n%s\nstderr:\n%s\n%s", strings.Join(args, " "), code, out, errOut, daemonLogTail(env))
	}
	return out
}

// daemonLogTail is the end of the environment's bangerd.log, for failures.
func daemonLogTail(env *e2etest.Env) string {
	b, _ := os.ReadFile(filepath.Join(env.Root, "state", "bangerd.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "--- end of bangerd.log ---\n" + string(b)
}

// jsonOf runs the CLI with --output json and decodes stdout into v.
func jsonOf(t testing.TB, env *e2etest.Env, v any, args ...string) {
	t.Helper()
	out := must(t, env, append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("banger %s: decode JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// listVMs is `banger vm list --output json` (it starts the daemon when
// none runs, which reconciles).
func listVMs(t testing.TB, env *e2etest.Env) []api.VM {
	t.Helper()
	var vms []api.VM
	jsonOf(t, env, &vms, "vm", "list")
	return vms
}

func findVM(vms []api.VM, name string) (api.VM, bool) {
	for _, v := range vms {
		if v.Name == name {
			return v, true
		}
	}
	return api.VM{}, false
}

func health(t *testing.T, env *e2etest.Env, name string) api.VMHealthResult {
	t.Helper()
	out, errOut, _ := env.Banger("vm", "health", name, "--output", "json")
	var h api.VMHealthResult
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("vm health %s: %v\nstdout: %s\nstderr: %s", name, err, out, errOut)
	}
	return h
}

func mustBeHealthy(t *testing.T, env *e2etest.Env, name string) {
	t.Helper()
	if h := health(t, env, name); !h.Healthy {
		t.Fatalf("VM %s is not healthy: state %s: %s", name, h.State, h.Error)
	}
}

// liveProcess reports whether pid runs and is not a zombie.
func liveProcess(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// vmmPIDs are the live processes whose command line names a path under the
// environment: the (fake) Firecracker processes.
func vmmPIDs(env *e2etest.Env) []int {
	var pids []int
	for _, p := range e2etest.PIDsMentioning(env.Root) {
		if !liveProcess(p) {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
		if strings.Contains(string(cmdline), "fake-firecracker") {
			pids = append(pids, p)
		}
	}
	sort.Ints(pids)
	return pids
}

// taps lists the banger taps in the environment's namespace.
func taps(t *testing.T, env *e2etest.Env) []string {
	t.Helper()
	out, err := env.InNS("ip", "-o", "link", "show")
	if err != nil {
		t.Fatalf("ip link: %v", err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, "bg-") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// idDirs lists subdirectories of dir named like VM ids.
func idDirs(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var ids []string
	for _, e := range entries {
		if e.IsDir() && len(e.Name()) == 8 && strings.Trim(e.Name(), "0123456789abcdef") == "" {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids
}

// checkNoLeaks asserts that what exists on the host matches the VM records
// exactly: one VMM process, one tap and one socket directory per running
// VM, disk directories only for recorded VMs.
func checkNoLeaks(t *testing.T, env *e2etest.Env, vms []api.VM) {
	t.Helper()
	var wantPIDs []int
	var wantTaps, running []string
	all := map[string]bool{}
	for _, v := range vms {
		all[v.ID] = true
		if v.State == api.VMRunning {
			wantPIDs = append(wantPIDs, v.PID)
			wantTaps = append(wantTaps, "bg-"+v.ID)
			running = append(running, v.ID)
		} else if v.State != api.VMStopped && v.State != api.VMError {
			t.Errorf("VM %s is left %s after the daemon restarted: want running or stopped", v.Name, v.State)
		}
	}
	sort.Ints(wantPIDs)
	sort.Strings(wantTaps)
	sort.Strings(running)
	if got := vmmPIDs(env); fmt.Sprint(got) != fmt.Sprint(wantPIDs) {
		t.Errorf("VMM processes %v, want exactly the running VMs' %v", got, wantPIDs)
	}
	if got := taps(t, env); fmt.Sprint(got) != fmt.Sprint(wantTaps) {
		t.Errorf("taps %v, want exactly the running VMs' %v", got, wantTaps)
	}
	if got := idDirs(filepath.Join(env.Root, "run")); fmt.Sprint(got) != fmt.Sprint(running) {
		t.Errorf("socket dirs %v, want exactly the running VMs' %v", got, running)
	}
	// Besides per-VM socket dirs, the runtime dir holds only the daemon's
	// socket and the CLI's note of the daemon build it verified there.
	entries, _ := os.ReadDir(filepath.Join(env.Root, "run"))
	for _, e := range entries {
		if n := e.Name(); n != "bangerd.sock" && n != "bangerd.sock.verified" && !(e.IsDir() && all[n]) {
			t.Errorf("run/%s left in the runtime dir", n)
		}
	}
	for _, id := range idDirs(filepath.Join(env.Root, "state", "vms")) {
		if !all[id] {
			t.Errorf("disk dir state/vms/%s has no VM record", id)
		}
	}
}

// crashDuring stops the daemon, then runs one CLI command whose fresh daemon
// SIGKILLs itself at point. The command must fail: success would mean the
// point was never reached and the test proves nothing.
func crashDuring(t *testing.T, env *e2etest.Env, point string, args ...string) {
	t.Helper()
	must(t, env, "daemon", "stop")
	out, errOut, code := env.BangerWithEnv([]string{"BANGER_TEST_CRASH_AT=" + point}, args...)
	if code == 0 {
		t.Fatalf("banger %s with the daemon crashing at %s succeeded: the crash point was never reached\n%s%s",
			strings.Join(args, " "), point, out, errOut)
	}
	t.Logf("crash at %s: exit %d\n%s%s", point, code, out, errOut)
	if pids := bangerdPIDs(env); len(pids) != 0 {
		t.Fatalf("bangerd still runs (pids %v) after the crash at %s", pids, point)
	}
}

// bangerdPIDs lists live bangerd processes of this environment (their
// environment names its state dir).
func bangerdPIDs(env *e2etest.Env) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || !liveProcess(pid) {
			continue
		}
		exe, _ := os.Readlink("/proc/" + d.Name() + "/exe")
		if filepath.Base(exe) != "bangerd" {
			continue
		}
		environ, _ := os.ReadFile("/proc/" + d.Name() + "/environ")
		if strings.Contains(string(environ), "BANGER_STATE_DIR="+filepath.Join(env.Root, "state")+"\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// keeper is a VM that runs through every crash; it must be re-adopted each
// time, with the same VMM process, and stay healthy.
type keeper struct {
	name string
	pid  int
}

func (k keeper) check(t *testing.T, env *e2etest.Env, vms []api.VM) {
	t.Helper()
	v, ok := findVM(vms, k.name)
	if !ok || v.State != api.VMRunning || v.PID != k.pid {
		t.Fatalf("running VM %s was not re-adopted: %+v (want running, pid %d)", k.name, v, k.pid)
	}
	mustBeHealthy(t, env, k.name)
}

// settleAndClean checks a VM an interrupted operation touched: it is either
// gone without a trace or a usable VM (it starts and is healthy). It then
// deletes it, so the next crash point starts from the same place.
func settleAndClean(t *testing.T, env *e2etest.Env, vms []api.VM, name string) {
	t.Helper()
	v, ok := findVM(vms, name)
	if !ok {
		return // rolled back; checkNoLeaks proved nothing is left
	}
	switch v.State {
	case api.VMRunning:
	case api.VMStopped, api.VMError:
		must(t, env, "vm", "start", name)
	default:
		t.Fatalf("VM %s left %s", name, v.State)
	}
	mustBeHealthy(t, env, name)
	must(t, env, "vm", "delete", "--force", name)
}

// crashPoints are the BANGER_TEST_CRASH_AT values of op: the steps the
// runtime declares for provision and start, the crash points the VM service
// declares for stop and delete (both refuse or fail a test on code that
// drifts from its declaration).
func crashPoints(op string) []string {
	names := vmruntime.StepNames(op)
	if op == "stop" || op == "delete" {
		names = vm.CrashPoints(op)
	}
	var points []string
	for _, step := range names {
		points = append(points, op+":"+step)
	}
	return points
}

func TestCrashSafety(t *testing.T) {
	for _, op := range []string{"provision", "start", "stop", "delete"} {
		if len(crashPoints(op)) == 0 {
			t.Fatalf("no crash points declared for %s: the suite would silently cover none", op)
		}
	}
	// The last step of a boot, the one the old hard-coded list missed.
	if !slices.Contains(crashPoints("start"), "start:wait-ssh") {
		t.Fatalf("the start crash points %q lack start:wait-ssh", crashPoints("start"))
	}
	env := newFakeFCEnv(t, "172.30.80.0/24", "bangerc1")
	must(t, env, "vm", "create", "--name", "keep")
	v, _ := findVM(listVMs(t, env), "keep")
	k := keeper{name: "keep", pid: v.PID}
	mustBeHealthy(t, env, "keep")

	// Create: every step of provisioning, then every step of the first boot,
	// as the runtime declares them (it refuses to run undeclared steps), so
	// a new step is a new crash point here without editing this list.
	startPoints := crashPoints("start")
	createPoints := append(crashPoints("provision"), startPoints...)
	for i, point := range createPoints {
		t.Run("create/"+point, func(t *testing.T) {
			name := fmt.Sprintf("cr%d", i)
			crashDuring(t, env, point, "vm", "create", "--name", name)
			vms := listVMs(t, env)
			k.check(t, env, vms)
			checkNoLeaks(t, env, vms)
			settleAndClean(t, env, vms, name)
			checkNoLeaks(t, env, listVMs(t, env))
		})
	}

	// Start of an existing stopped VM.
	must(t, env, "vm", "create", "--no-start", "--name", "st")
	for _, point := range startPoints {
		t.Run("start/"+point, func(t *testing.T) {
			crashDuring(t, env, point, "vm", "start", "st")
			vms := listVMs(t, env)
			k.check(t, env, vms)
			checkNoLeaks(t, env, vms)
			v, ok := findVM(vms, "st")
			if !ok {
				t.Fatal("an interrupted start lost the VM record")
			}
			if v.State != api.VMRunning {
				if v.LastError == "" {
					t.Errorf("VM st is %s after an interrupted start but last_error does not say why", v.State)
				}
				must(t, env, "vm", "start", "st")
			}
			mustBeHealthy(t, env, "st")
			must(t, env, "vm", "stop", "st")
			checkNoLeaks(t, env, listVMs(t, env))
		})
	}

	// Stop, at each point the VM service declares (before the VMM is
	// stopped, after it is gone but before the record says so, ...).
	for _, point := range crashPoints("stop") {
		t.Run(point, func(t *testing.T) {
			must(t, env, "vm", "start", "st")
			crashDuring(t, env, point, "vm", "stop", "st")
			vms := listVMs(t, env)
			k.check(t, env, vms)
			checkNoLeaks(t, env, vms)
			v, _ := findVM(vms, "st")
			switch v.State {
			case api.VMRunning:
				mustBeHealthy(t, env, "st")
				must(t, env, "vm", "stop", "st")
			case api.VMStopped:
			default:
				t.Fatalf("VM st is %s after an interrupted stop", v.State)
			}
			must(t, env, "vm", "start", "st")
			mustBeHealthy(t, env, "st")
			must(t, env, "vm", "stop", "st")
		})
	}

	// Delete, at each declared point (before the record goes, after it went
	// but before the files and tap did, ...).
	for i, point := range crashPoints("delete") {
		t.Run(point, func(t *testing.T) {
			name := fmt.Sprintf("del%d", i)
			must(t, env, "vm", "create", "--no-start", "--name", name)
			crashDuring(t, env, point, "vm", "delete", "--yes", name)
			vms := listVMs(t, env)
			k.check(t, env, vms)
			checkNoLeaks(t, env, vms)
			if _, ok := findVM(vms, name); ok {
				// Not deleted: it must be whole.
				must(t, env, "vm", "start", name)
				mustBeHealthy(t, env, name)
				must(t, env, "vm", "delete", "--force", name)
				checkNoLeaks(t, env, listVMs(t, env))
			}
		})
	}

	// A VMM killed behind the daemon's back (daemon running): the VM is
	// reported stopped with the reason, and starts again.
	t.Run("vmm-killed", func(t *testing.T) {
		must(t, env, "vm", "start", "st")
		v, _ := findVM(listVMs(t, env), "st")
		if err := syscall.Kill(v.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for liveProcess(v.PID) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		var shown api.VM
		jsonOf(t, env, &shown, "vm", "show", "st")
		if shown.State != api.VMStopped || !strings.Contains(shown.LastError, "exited") {
			t.Fatalf("after its VMM was killed, vm show says state %q, last_error %q: want stopped with the reason", shown.State, shown.LastError)
		}
		if h := health(t, env, "st"); h.Healthy {
			t.Fatal("vm health says healthy with the VMM dead")
		}
		vms := listVMs(t, env)
		k.check(t, env, vms)
		checkNoLeaks(t, env, vms)
		must(t, env, "vm", "start", "st")
		mustBeHealthy(t, env, "st")
	})
}

// waitGone waits until pid has exited (or is a zombie).
func waitGone(t testing.TB, pid int, within time.Duration) {
	t.Helper()
	for end := time.Now().Add(within); liveProcess(pid); {
		if time.Now().After(end) {
			t.Fatalf("pid %d still runs after %s", pid, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stopping the daemon (daemon stop, or SIGTERM) leaves VMs running, and the
// next daemon re-adopts them; daemon stop --stop-vms stops them cleanly.
func TestDaemonStop(t *testing.T) {
	env := newFakeFCEnv(t, "172.30.86.0/24", "bangerc8")
	must(t, env, "vm", "create", "--name", "ds1")
	must(t, env, "vm", "create", "--name", "ds2")
	before := listVMs(t, env)
	pids := map[string]int{}
	for _, v := range before {
		pids[v.Name] = v.PID
	}

	stillRunning := func(t *testing.T) {
		t.Helper()
		if got := bangerdPIDs(env); len(got) != 0 {
			t.Fatalf("bangerd still runs: %v", got)
		}
		for name, pid := range pids {
			if !liveProcess(pid) {
				t.Fatalf("VM %s's VMM (pid %d) died with the daemon", name, pid)
			}
		}
		// The next command starts a daemon, which re-adopts both VMs.
		vms := listVMs(t, env)
		for name, pid := range pids {
			if v, _ := findVM(vms, name); v.State != api.VMRunning || v.PID != pid {
				t.Fatalf("VM %s after the daemon came back: %s pid %d, want running pid %d", name, v.State, v.PID, pid)
			}
			mustBeHealthy(t, env, name)
		}
		checkNoLeaks(t, env, vms)
	}

	t.Run("daemon-stop", func(t *testing.T) {
		out := must(t, env, "daemon", "stop")
		if !strings.Contains(out, "stopped bangerd") {
			t.Errorf("daemon stop said %q", out)
		}
		stillRunning(t)
	})

	t.Run("sigterm", func(t *testing.T) {
		var info api.DaemonInfo
		jsonOf(t, env, &info, "daemon", "status")
		if err := syscall.Kill(info.PID, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitGone(t, info.PID, 30*time.Second)
		stillRunning(t)
	})

	t.Run("stop-vms", func(t *testing.T) {
		must(t, env, "daemon", "stop", "--stop-vms")
		for name, pid := range pids {
			if liveProcess(pid) {
				t.Errorf("VM %s's VMM (pid %d) still runs after daemon stop --stop-vms", name, pid)
			}
		}
		if got := bangerdPIDs(env); len(got) != 0 {
			t.Fatalf("bangerd still runs: %v", got)
		}
		vms := listVMs(t, env)
		for _, v := range vms {
			if v.State != api.VMStopped || v.LastError != "" {
				t.Errorf("VM %s after daemon stop --stop-vms: state %s, last_error %q; want cleanly stopped", v.Name, v.State, v.LastError)
			}
		}
		checkNoLeaks(t, env, vms)
		// And they start again.
		must(t, env, "vm", "start", "ds1")
		mustBeHealthy(t, env, "ds1")
	})
}
