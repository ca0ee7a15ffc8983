package doctor

import (
	"context"
	"errors"
	"fmt"
	"github.com/banger-dev/banger/internal/envknob"
	"io/fs"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/hostinfo"
	"github.com/banger-dev/banger/internal/sysexec"
)

const (
	kvmGroupFix  = "sudo usermod -aG kvm $USER (then log out and back in)"
	kvmEnableFix = "enable virtualization: turn on VT-x/AMD-V in the firmware (or nested virtualization for a cloud VM), then sudo modprobe kvm_intel (or kvm_amd)"
	qemuFix      = "sudo apt-get install qemu-system-x86 qemu-utils"
	// FirecrackerVersion is the release banger is tested against.
	FirecrackerVersion = "v1.16.1"
)

// firecrackerInstallFix is the exact command that installs the tested
// Firecracker release (it is not packaged by Debian or Ubuntu).
func firecrackerInstallFix(configFile string) string {
	arch := "x86_64"
	if runtime.GOARCH == "arm64" {
		arch = "aarch64"
	}
	v := FirecrackerVersion
	return fmt.Sprintf("download the release tarball from https://github.com/firecracker-microvm/firecracker/releases and put firecracker in PATH: "+
		"curl -fL https://github.com/firecracker-microvm/firecracker/releases/download/%[1]s/firecracker-%[1]s-%[2]s.tgz | tar -xz && "+
		"sudo install release-%[1]s-%[2]s/firecracker-%[1]s-%[2]s /usr/local/bin/firecracker "+
		"(or set firecracker_bin = \"/path/to/firecracker\" in %[3]s)", v, arch, configFile)
}

func (e *Env) findFirecracker() (string, error) {
	if e.FirecrackerBin != "" {
		if err := sysexec.CheckExecutable(e.FirecrackerBin); err != nil {
			return "", fmt.Errorf("firecracker_bin %s: %v", e.FirecrackerBin, err)
		}
		return e.FirecrackerBin, nil
	}
	p, err := e.lookPath("firecracker")
	if err != nil {
		return "", errors.New("firecracker not found in PATH")
	}
	return p, nil
}

func (e *Env) findQEMU() (string, error) {
	if e.QEMUBin != "" {
		if err := sysexec.CheckExecutable(e.QEMUBin); err != nil {
			return "", fmt.Errorf("qemu_bin %s: %v", e.QEMUBin, err)
		}
		return e.QEMUBin, nil
	}
	p, err := e.lookPath("qemu-system-x86_64")
	if err != nil {
		return "", errors.New("qemu-system-x86_64 not found in PATH")
	}
	return p, nil
}

// firstLine keeps version output to one readable line.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

var versionRE = regexp.MustCompile(`(\d+)\.(\d+)(?:\.(\d+))?`)

// parseVersion returns the first dotted version in s as [major, minor, patch].
func parseVersion(s string) ([3]int, bool) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return [3]int{}, false
	}
	var v [3]int
	for i := 0; i < 3; i++ {
		if m[i+1] != "" {
			v[i], _ = strconv.Atoi(m[i+1])
		}
	}
	return v, true
}

func versionLess(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func checkHypervisor(ctx context.Context, e *Env) api.CheckResult {
	if e.ChooseVMM == nil {
		return notChecked("the VMM chooser was not provided")
	}
	driver, reason, err := e.ChooseVMM()
	if err != nil {
		return fail(err.Error(), fmt.Sprintf("set vmm = \"auto\" in %s (or fix what the kvm and firecracker checks report)", e.configFile()))
	}
	if envknob.AssumeKVM.On() {
		return warn(fmt.Sprintf("%s (%s), chosen under %s: not what this host would choose", driver, reason, assumedKVM),
			"unset "+string(envknob.AssumeKVM)+" (a test-only switch) and restart the daemon: banger daemon stop")
	}
	if driver == "qemu" && e.kvmError() != nil {
		return warn(fmt.Sprintf("qemu (%s): software emulation: boots take ~15 s", reason), kvmEnableFix+"; "+kvmGroupFix)
	}
	return ok(fmt.Sprintf("%s (%s)", driver, reason))
}

// assumedKVM says what BANGER_TEST_ASSUME_KVM=1 makes banger assume.
var assumedKVM = "KVM is assumed usable because the test-only switch " + string(envknob.AssumeKVM) + "=1 is set"

func checkKVM(ctx context.Context, e *Env) api.CheckResult {
	mustHave := e.vmmPref() == "firecracker"
	degrade := func(detail, fix string) api.CheckResult {
		if mustHave {
			return fail(detail+"; vmm = \"firecracker\" needs KVM", fix)
		}
		return warn(detail+"; QEMU under software emulation (TCG) will be used: boots take ~15 s", fix)
	}
	if envknob.AssumeKVM.On() {
		// The daemon's chooser and probe assume KVM too (the end-to-end
		// tests drive the Firecracker path through its fake on hosts without
		// KVM), but a test switch is never reported as a fact about the host.
		return warn(assumedKVM+": /dev/kvm was not checked",
			"unset "+string(envknob.AssumeKVM)+" (a test-only switch) and restart the daemon: banger daemon stop")
	}
	if _, err := os.Stat(e.sys("/dev/kvm")); err != nil {
		return degrade("no /dev/kvm: no hardware virtualization, or the kvm module is not loaded", kvmEnableFix)
	}
	if err := e.openKVM(); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return degrade("/dev/kvm is not openable read-write by this user: "+err.Error(), kvmGroupFix)
		}
		return degrade("/dev/kvm present but not usable: "+err.Error(), kvmEnableFix)
	}
	return ok("/dev/kvm usable read-write: hardware acceleration available")
}

func checkFirecracker(ctx context.Context, e *Env) api.CheckResult {
	p, err := e.findFirecracker()
	if err != nil {
		if e.vmmPref() == "firecracker" {
			return fail(err.Error()+"; vmm = \"firecracker\" is configured", firecrackerInstallFix(e.configFile()))
		}
		return warn(err.Error()+"; VMs will run under QEMU", firecrackerInstallFix(e.configFile()))
	}
	out, err := e.runVersion(ctx, p, "--version")
	if err != nil {
		return warn(fmt.Sprintf("firecracker at %s does not run: %v", p, err), firecrackerInstallFix(e.configFile()))
	}
	line := firstLine(out)
	v, okv := parseVersion(line)
	if !okv {
		return warn(fmt.Sprintf("firecracker at %s: unrecognized version output %q", p, line), firecrackerInstallFix(e.configFile()))
	}
	if versionLess(v, [3]int{1, 15, 0}) {
		return warn(fmt.Sprintf("%s at %s is older than v1.15 (upstream supports only 1.15 and 1.16; banger is tested with %s)", line, p, FirecrackerVersion),
			firecrackerInstallFix(e.configFile()))
	}
	return ok(fmt.Sprintf("%s at %s", line, p))
}

func checkQEMU(ctx context.Context, e *Env) api.CheckResult {
	// QEMU is required when configured, or when it is what would run.
	needed := e.vmmPref() == "qemu"
	if e.ChooseVMM != nil {
		if d, _, err := e.ChooseVMM(); err == nil && d == "qemu" {
			needed = true
		}
	}
	missing := func(detail string) api.CheckResult {
		if needed {
			return fail(detail+"; QEMU is the hypervisor banger would use", qemuFix)
		}
		return warn(detail+"; only needed when Firecracker cannot run", qemuFix)
	}
	p, err := e.findQEMU()
	if err != nil {
		fix := qemuFix
		if e.QEMUBin != "" {
			fix = fmt.Sprintf("set qemu_bin to an existing binary in %s, or remove it and %s", e.configFile(), qemuFix)
		}
		r := missing(err.Error())
		r.Fix = fix
		return r
	}
	if _, err := e.lookPath("qemu-img"); err != nil {
		return missing("qemu-img not found in PATH (it makes the per-VM disk overlays)")
	}
	out, err := e.runVersion(ctx, p, "--version")
	if err != nil {
		return missing(fmt.Sprintf("%s does not run: %v", p, err))
	}
	return ok(fmt.Sprintf("%s at %s", firstLine(out), p))
}

func checkVhostVsock(ctx context.Context, e *Env) api.CheckResult {
	const why = "Firecracker's vsock needs no vhost on the host: the device is emulated inside the Firecracker process and bridged to Unix sockets. " +
		"QEMU's vsock would need /dev/vhost-vsock, which is why banger gives QEMU guests a virtio-serial agent channel (banger.agent) instead"
	_, err := os.Stat(e.sys("/dev/vhost-vsock"))
	switch {
	case err == nil:
		return ok("/dev/vhost-vsock present (information only). " + why)
	case errors.Is(err, fs.ErrNotExist):
		return ok("/dev/vhost-vsock absent (information only, nothing to fix). " + why)
	default:
		return ok("cannot inspect /dev/vhost-vsock: " + err.Error() + " (information only, nothing to fix). " + why)
	}
}

func checkBundle(ctx context.Context, e *Env) api.CheckResult {
	if e.BundleCheck == nil {
		return notChecked("the bundle validator was not provided")
	}
	dir := e.BundleDir
	if dir == "" {
		dir = "the bundle directory"
	}
	errs := e.BundleCheck()
	if len(errs) == 0 {
		return ok("runtime bundle complete at " + dir)
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return fail(fmt.Sprintf("runtime bundle at %s is incomplete: %s", dir, strings.Join(msgs, "; ")), "banger bundle build")
}

var deprecationRE = regexp.MustCompile(`([a-z0-9_]+) is deprecated: rename it to ([a-z0-9_]+)`)

func checkAgentConfig(ctx context.Context, e *Env) api.CheckResult {
	if len(e.Deprecations) == 0 {
		return ok("no deprecated keys in " + e.configFile())
	}
	var renames []string
	for _, d := range e.Deprecations {
		if m := deprecationRE.FindStringSubmatch(d); m != nil {
			renames = append(renames, fmt.Sprintf("rename %s to %s", m[1], m[2]))
		} else {
			renames = append(renames, d)
		}
	}
	return warn(strings.Join(e.Deprecations, "; ")+" (the old names still work for now)",
		"in "+e.configFile()+": "+strings.Join(renames, ", "))
}

// helperInstallFix installs the helper and the user's grant in one sudo step.
const helperInstallFix = "from banger's source tree: make install-helper (asks sudo once; installs banger-helper root-owned and a sudoers drop-in for you; see docs/security.md)"

// helperRights reports whether a privileged verb can run: as root directly,
// otherwise through `sudo -n` and the helper. sudo is asked about a full,
// typical invocation (verb and example arguments), because a sudoers line
// such as "banger-helper ^tap-add bg-[0-9a-f]{8} ...$" does not match the bare verb.
func helperRights(ctx context.Context, e *Env, verbArgs []string, what string) api.CheckResult {
	if e.euid() == 0 {
		return ok("running as root: " + what + " directly")
	}
	if e.HelperPath == "" {
		return notChecked("the privileged helper path was not provided")
	}
	if e.HelperCheck != nil {
		if err := e.HelperCheck(); err != nil {
			return fail("not root, and "+err.Error(), helperInstallFix)
		}
	}
	argv := append([]string{e.HelperPath}, verbArgs...)
	if err := e.sudoAllowed(ctx, argv); err != nil {
		return fail(fmt.Sprintf("not root, and sudo -n does not allow the helper (%s): %v", strings.Join(argv, " "), err), helperInstallFix)
	}
	return ok(fmt.Sprintf("not root; sudo -n allows the helper (%s): %s", strings.Join(argv, " "), what))
}

func checkTapRights(ctx context.Context, e *Env) api.CheckResult {
	return helperRights(ctx, e, []string{"tap-add", "bg-00000000", e.bridge(), strconv.Itoa(e.euid())}, "taps are created")
}

func checkMemory(ctx context.Context, e *Env) api.CheckResult {
	m, err := hostinfo.ReadMemoryFrom(e.sys("/proc/meminfo"))
	if err != nil {
		return warn("cannot read /proc/meminfo: "+err.Error(), procFix)
	}
	totalMiB, availMiB := m.TotalBytes>>20, m.AvailableBytes>>20
	req := int64(e.RequestedMemoryMiB)
	if req <= 0 {
		return ok(fmt.Sprintf("%d MiB available of %d MiB", availMiB, totalMiB))
	}
	suggest := availMiB / 128 * 128
	if suggest < 128 {
		suggest = 128
	}
	fix := fmt.Sprintf("banger vm set %s --memory %dM (or stop another VM: banger vm stop OTHER)", e.vmName(), suggest)
	switch {
	case req > totalMiB:
		return fail(fmt.Sprintf("the VM asks for %d MiB but the host has only %d MiB in total", req, totalMiB), fix)
	case req > availMiB:
		return warn(fmt.Sprintf("the VM asks for %d MiB but only %d MiB are available (of %d MiB): the host may swap or kill processes", req, availMiB, totalMiB), fix)
	}
	return ok(fmt.Sprintf("the VM asks for %d MiB; %d MiB available of %d MiB", req, availMiB, totalMiB))
}
