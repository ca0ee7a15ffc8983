package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/e2etest"
)

// noTrace asserts that nothing of VM name exists: no record, no disk or
// socket directory, no tap, no VMM process.
func noTrace(t *testing.T, env *e2etest.Env, name string) {
	t.Helper()
	vms := listVMs(t, env)
	if v, ok := findVM(vms, name); ok {
		t.Errorf("refused VM %s has a record: %+v", name, v)
	}
	checkNoLeaks(t, env, vms)
	if dirs := idDirs(filepath.Join(env.Root, "state", "vms")); len(dirs) != len(vms) {
		t.Errorf("disk dirs %v for %d VMs", dirs, len(vms))
	}
}

// vm create and vm start refuse, with the failing check's fix, when the
// configured hypervisor binary is not in the daemon's PATH, and leave
// nothing behind; the same commands work once it is there.
func TestDoctorPreflightRefuses(t *testing.T) {
	e2etest.Require(t)
	if _, err := exec.LookPath("firecracker"); err == nil {
		t.Skip("a firecracker binary is in PATH here: this test needs a host without one")
	}
	bin := e2etest.Binaries(t)
	// vmm = "firecracker" and no firecracker_bin: the daemon looks for
	// "firecracker" in its PATH, which has only fake-firecracker.
	env := e2etest.New(t, e2etest.Options{
		Subnet: "172.30.82.0/24", Bridge: "bangerc3",
		Config: "vmm = \"firecracker\"\ndefault_image = \"tiny\"\ndisk_size = \"1G\"\n",
		Env:    []string{"BANGER_TEST_ASSUME_KVM=1", "BANGER_TEST_SKIP_SSH_WAIT=1"},
	})
	registerTinyImage(t, env)
	// A PATH where "firecracker" is the fake, for the runs that must work.
	withFC := filepath.Join(env.Root, "fcbin")
	if err := os.MkdirAll(withFC, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(bin, "fake-firecracker"), filepath.Join(withFC, "firecracker")); err != nil {
		t.Fatal(err)
	}
	pathWithFC := []string{"PATH=" + withFC + ":" + bin + ":" + os.Getenv("PATH")}

	// The preflight's refusal: the failing checks, and their fixes.
	preflight := []string{"cannot start", "nothing was changed", "firecracker:",
		"https://github.com/firecracker-microvm/firecracker/releases", "firecracker_bin"}
	wantRefusal := func(t *testing.T, what, stderr string, code int, wants ...string) {
		t.Helper()
		if code == 0 {
			t.Fatalf("%s succeeded without a firecracker binary", what)
		}
		for _, want := range wants {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s: stderr lacks %q (the failing check and its fix):\n%s", what, want, stderr)
			}
		}
	}

	t.Run("create", func(t *testing.T) {
		_, errOut, code := env.Banger("vm", "create", "--name", "d1")
		wantRefusal(t, "vm create", errOut, code, preflight...)
		noTrace(t, env, "d1")
		// --no-start runs no boot checks, but still needs a hypervisor to
		// make the right kind of root disk: it says which and how to fix it.
		_, errOut, code = env.Banger("vm", "create", "--no-start", "--name", "d1")
		wantRefusal(t, "vm create --no-start", errOut, code, "firecracker not found",
			"https://github.com/firecracker-microvm/firecracker/releases", "firecracker_bin")
		noTrace(t, env, "d1")
	})

	t.Run("start", func(t *testing.T) {
		// Make a VM with firecracker in PATH, then start it without.
		must(t, env, "daemon", "stop")
		if out, errOut, code := env.BangerWithEnv(pathWithFC, "vm", "create", "--no-start", "--name", "d2"); code != 0 {
			t.Fatalf("vm create --no-start with firecracker in PATH: exit %d\n%s%s", code, out, errOut)
		}
		must(t, env, "daemon", "stop")
		var before api.VM
		jsonOf(t, env, &before, "vm", "show", "d2")
		_, errOut, code := env.Banger("vm", "start", "d2")
		wantRefusal(t, "vm start", errOut, code, preflight...)
		var after api.VM
		jsonOf(t, env, &after, "vm", "show", "d2")
		if after.State != api.VMStopped || after.LastError != before.LastError {
			t.Errorf("a refused start changed the VM: state %s, last_error %q (before: %s, %q)",
				after.State, after.LastError, before.State, before.LastError)
		}
		checkNoLeaks(t, env, listVMs(t, env))

		// With firecracker back in the daemon's PATH the same start works.
		must(t, env, "daemon", "stop")
		if out, errOut, code := env.BangerWithEnv(pathWithFC, "vm", "start", "d2"); code != 0 {
			t.Fatalf("vm start with firecracker in PATH: exit %d\n%s%s", code, out, errOut)
		}
		mustBeHealthy(t, env, "d2")
		must(t, env, "vm", "delete", "--force", "d2")
		checkNoLeaks(t, env, listVMs(t, env))
	})
}

// `banger doctor` on this very host, with the default vmm = "auto" and no
// test overrides, reports what is true here.
func TestDoctorOnThisHost(t *testing.T) {
	env := e2etest.New(t, e2etest.Options{Subnet: "172.30.83.0/24", Bridge: "bangerc4"})
	table, _, code := env.Banger("doctor")
	jsonOut, errOut, jcode := env.Banger("doctor", "--output", "json")
	var res api.DoctorResult
	if err := json.Unmarshal([]byte(jsonOut), &res); err != nil {
		t.Fatalf("doctor --output json: %v\n%s%s", err, jsonOut, errOut)
	}
	checks := map[string]api.CheckResult{}
	anyFail := false
	for _, c := range res.Checks {
		checks[c.Name] = c
		anyFail = anyFail || c.Status == api.CheckFail
		// The table shows every check with its status.
		if !strings.Contains(table, c.Name) || !strings.Contains(table, string(c.Status)) {
			t.Errorf("doctor table lacks check %s (%s):\n%s", c.Name, c.Status, table)
		}
	}
	if (code != 0) != anyFail || code != jcode {
		t.Errorf("doctor exit %d (json %d), but a check failed: %v", code, jcode, anyFail)
	}

	// Firecracker: not installed here, so it must say so and how to fix it.
	fc := checks["firecracker"]
	if _, err := exec.LookPath("firecracker"); err != nil {
		if fc.Status != api.CheckWarn || !strings.Contains(fc.Detail, "not found") ||
			!strings.Contains(fc.Fix, "https://github.com/firecracker-microvm/firecracker/releases") {
			t.Errorf("firecracker check with no firecracker installed: %+v; want warn, \"not found\" and the release download", fc)
		}
	} else if fc.Status == api.CheckFail {
		t.Errorf("firecracker is installed but the check fails: %+v", fc)
	}

	// The hypervisor banger would use: the daemon's own choice.
	var info api.DaemonInfo
	jsonOf(t, env, &info, "daemon", "status")
	hv := checks["hypervisor"]
	if !strings.Contains(hv.Detail, info.VMM) || hv.Status == api.CheckFail {
		t.Errorf("hypervisor check %+v disagrees with the daemon's choice %q (%s)", hv, info.VMM, info.VMMReason)
	}
	if _, err := exec.LookPath("firecracker"); err != nil {
		// No Firecracker: QEMU it is, under TCG when KVM is not usable.
		if info.VMM != "qemu" {
			t.Errorf("daemon chose %q with no firecracker installed; want qemu", info.VMM)
		}
		kvm := checks["kvm"]
		tcg := strings.Contains(info.VMMReason, "TCG") || strings.Contains(info.VMMReason, "software emulation")
		if tcg && kvm.Status == api.CheckOK {
			t.Errorf("the daemon runs QEMU under software emulation (%s), but the kvm check says ok: %+v", info.VMMReason, kvm)
		}
		if tcg && (!strings.Contains(hv.Detail, "software emulation") || hv.Status != api.CheckWarn) {
			t.Errorf("QEMU under software emulation (%s), but the hypervisor check does not warn of it: %+v", info.VMMReason, hv)
		}
	}
	// A daemon started without test switches reports none.
	if ts := checks["test-switches"]; ts.Status != api.CheckOK || len(info.TestSwitches) != 0 {
		t.Errorf("no test switch set, but doctor says %+v and daemon status %q", ts, info.TestSwitches)
	}
	t.Logf("doctor on this host:\n%s", table)
}

// A daemon started with test-only switches in its environment (here the
// fake-Firecracker tier's BANGER_TEST_ASSUME_KVM and _SKIP_SSH_WAIT) says
// so: in its log at start, in `daemon status`, and as doctor warnings; the
// KVM it assumes is never reported as a fact about the host.
func TestTestSwitchesAreReported(t *testing.T) {
	env := newFakeFCEnv(t, "172.30.94.0/24", "bangerd5", "BANGER_TEST_CRASH_AT=stop:nowhere")
	want := []string{"BANGER_TEST_ASSUME_KVM=1", "BANGER_TEST_SKIP_SSH_WAIT=1", "BANGER_TEST_CRASH_AT=stop:nowhere"}

	var info api.DaemonInfo
	jsonOf(t, env, &info, "daemon", "status")
	for _, w := range want {
		if !slices.Contains(info.TestSwitches, w) {
			t.Errorf("daemon status --output json: test_switches %q lacks %s", info.TestSwitches, w)
		}
	}
	table := env.MustBanger("daemon", "status")
	if !strings.Contains(table, "test switches") || !strings.Contains(table, "BANGER_TEST_ASSUME_KVM=1") {
		t.Errorf("daemon status table does not show the test switches:\n%s", table)
	}
	log, err := os.ReadFile(info.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !strings.Contains(string(log), "test-only switch set: "+w) {
			t.Errorf("daemon log does not record %s at start:\n%s", w, log)
		}
	}

	var res api.DoctorResult
	jsonOut, errOut, _ := env.Banger("doctor", "--output", "json")
	if err := json.Unmarshal([]byte(jsonOut), &res); err != nil {
		t.Fatalf("doctor --output json: %v\n%s%s", err, jsonOut, errOut)
	}
	checks := map[string]api.CheckResult{}
	for _, c := range res.Checks {
		checks[c.Name] = c
	}
	for name, detail := range map[string]string{
		"kvm":           "BANGER_TEST_ASSUME_KVM=1 is set",
		"hypervisor":    "BANGER_TEST_ASSUME_KVM=1 is set",
		"test-switches": "BANGER_TEST_CRASH_AT=stop:nowhere",
	} {
		c := checks[name]
		if c.Status != api.CheckWarn || !strings.Contains(c.Detail, detail) || !strings.Contains(c.Fix, "unset") {
			t.Errorf("doctor %s under test switches: %+v; want warn mentioning %q with an unset fix", name, c, detail)
		}
	}
}
