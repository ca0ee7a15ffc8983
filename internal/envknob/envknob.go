// Package envknob declares and reads every test-only environment switch, so
// this one file lists everything a test can bend in banger's binaries and
// test helpers (tailscale's envknob is the model). None is for users.
package envknob

import "os"

// Knob is a test-only environment variable. Declare new ones here only.
type Knob string

const (
	// AssumeKVM=1 makes bangerd treat /dev/kvm as usable, so the end-to-end
	// tests drive the Firecracker path (through its fake) on hosts without KVM.
	AssumeKVM Knob = "BANGER_TEST_ASSUME_KVM"
	// SkipSSHWait=1 makes bangerd's VM start skip waiting for the guest's
	// sshd (the fake Firecracker boots no guest).
	SkipSSHWait Knob = "BANGER_TEST_SKIP_SSH_WAIT"
	// CrashAt=<op>:<point> makes bangerd SIGKILL itself at that point of a
	// lifecycle operation, as a crash would (the crash-safety suite).
	CrashAt Knob = "BANGER_TEST_CRASH_AT"
	// Cache is the directory test helpers keep kernels, debootstrap trees and
	// images in between runs (default /var/tmp/banger-test-cache).
	Cache Knob = "BANGER_TEST_CACHE"
	// RequireKernel=1 turns "no test kernel available" from a skip into a
	// failure (CI).
	RequireKernel Knob = "BANGER_TEST_REQUIRE_KERNEL"
	// E2EReuseData=1 keeps the end-to-end tier's cached image although its
	// inputs changed; E2EKeep keeps a failed test's VMs and files.
	E2EReuseData Knob = "BANGER_E2E_REUSE_DATA"
	E2EKeep      Knob = "BANGER_E2E_KEEP"
	// FCSpec is the Firecracker API spec the contract tests validate against.
	FCSpec Knob = "BANGER_FC_SPEC"
	// Fault injection for the fake Firecracker (cmd/fake-firecracker):
	// FakeFCFail="PUT /boot-source[,...]" fails those calls, FakeFCHangStop=1
	// ignores shutdown, FakeFCSkipTapCheck=1 accepts a missing tap,
	// FakeFCNoAgent=1 serves no guest agent, FakeFCRecord=PATH logs requests.
	FakeFCFail         Knob = "FAKE_FC_FAIL"
	FakeFCHangStop     Knob = "FAKE_FC_HANG_STOP"
	FakeFCSkipTapCheck Knob = "FAKE_FC_SKIP_TAP_CHECK"
	FakeFCNoAgent      Knob = "FAKE_FC_NO_AGENT"
	// FakeFCAgent=PATH runs that banger-agent as the fake guest's agent.
	FakeFCAgent  Knob = "FAKE_FC_AGENT"
	FakeFCRecord Knob = "FAKE_FC_RECORD"
	// E2EHelper selects a helper mode of the end-to-end test binary
	// re-executed inside a network namespace.
	E2EHelper Knob = "BANGER_E2E_HELPER"
	// OpenTap names a tap the hostnet integration test's child process opens;
	// OpenTapAs is the uid:gid it opens it as.
	OpenTap   Knob = "BANGER_TEST_OPEN_TAP"
	OpenTapAs Knob = "BANGER_TEST_OPEN_TAP_AS"
	// The privileged helper's attack test re-executes itself in a mount and
	// network namespace (HelperSandbox=1) with the built binaries in
	// HelperBins and its two throwaway users in HelperUsers ("alice,mallory").
	HelperSandbox Knob = "BANGER_TEST_HELPER_SANDBOX"
	HelperBins    Knob = "BANGER_TEST_HELPER_BINS"
	HelperUsers   Knob = "BANGER_TEST_HELPER_USERS"
	// QEMUAccel=tcg|kvm forces the QEMU driver's accelerator (tests exercise
	// TCG on a KVM host with it).
	QEMUAccel Knob = "BANGER_QEMU_ACCEL"
	// TUIHelper=1 makes the TUI test binary run the TUI in a pseudo-terminal
	// (a re-executed child); TUIGate names the file its backend waits on.
	TUIHelper Knob = "BANGER_TUI_HELPER"
	TUIGate   Knob = "BANGER_TUI_GATE"
	// BenchVM=1 runs the benchmarks that boot guests; BenchVMWait (a Go
	// duration) bounds their wait for other guests to finish. BenchImage=1
	// runs the image-build benchmark.
	BenchVM     Knob = "BANGER_BENCH_VM"
	BenchVMWait Knob = "BANGER_BENCH_VM_WAIT"
	BenchImage  Knob = "BANGER_BENCH_IMAGE"
	// MapDNSRun makes a test binary play mapdns (internal/mapdns/mapdnstest),
	// serving in the network namespace MapDNSNetns names; MapDNSSupervise
	// ("BIN DATAFILE") makes it a supervisor of that mapdns.
	MapDNSRun       Knob = "BANGER_TEST_MAPDNS"
	MapDNSNetns     Knob = "BANGER_TEST_MAPDNS_NETNS"
	MapDNSSupervise Knob = "BANGER_TEST_SUPERVISE"
	// RootlessBuild is the build spec the rootless image-build test's child
	// (run as a throwaway user) builds.
	RootlessBuild Knob = "BANGER_TEST_ROOTLESS_BUILD"
	// HelperBuildSandbox=USER makes the image package's helper-build test
	// run its build as USER inside the mount namespace it re-executed
	// itself in (a private /usr/local, /etc/sudoers.d and no subordinate
	// ids, so the build takes the privileged helper).
	HelperBuildSandbox Knob = "BANGER_TEST_HELPER_BUILD_SANDBOX"
	// JourneyUser=NAME makes the end-to-end binary run the non-root
	// journey's inner stage (root, inside the journey's network and mount
	// namespaces) for that throwaway user.
	JourneyUser Knob = "BANGER_TEST_JOURNEY_USER"
)

// All lists every knob above (a test keeps it complete).
var All = []Knob{
	AssumeKVM, SkipSSHWait, CrashAt, Cache, RequireKernel, E2EReuseData, E2EKeep, FCSpec,
	FakeFCFail, FakeFCHangStop, FakeFCSkipTapCheck, FakeFCNoAgent, FakeFCAgent, FakeFCRecord,
	E2EHelper, OpenTap, OpenTapAs, HelperSandbox, HelperBins, HelperUsers, QEMUAccel,
	TUIHelper, TUIGate, BenchVM, BenchVMWait, BenchImage, MapDNSRun, MapDNSNetns, MapDNSSupervise,
	RootlessBuild, HelperBuildSandbox, JourneyUser,
}

// Setting is one knob set in this process's environment.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (s Setting) String() string { return s.Name + "=" + s.Value }

// InBinaries lists the knobs that banger's own binaries (bangerd, banger,
// the helper) read; the rest only steer test programs and harnesses.
var InBinaries = []Knob{AssumeKVM, SkipSSHWait, CrashAt, QEMUAccel}

// Active returns the InBinaries knobs set in this process's environment. A
// daemon started with any of them set (inherited from whichever CLI started
// it) is not telling the plain truth about the host, so it says so: in its
// log at start, in `daemon status` and as a doctor warning.
func Active() []Setting {
	var out []Setting
	for _, k := range InBinaries {
		if v, ok := os.LookupEnv(string(k)); ok {
			out = append(out, Setting{Name: string(k), Value: v})
		}
	}
	return out
}

// Value is the knob's value ("" when unset).
func (k Knob) Value() string { return os.Getenv(string(k)) }

// On reports whether the knob is set to "1".
func (k Knob) On() bool { return k.Value() == "1" }
