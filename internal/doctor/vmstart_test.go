package doctor

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

func TestKVM(t *testing.T) {
	h := newFakeHost(t)
	h.env.OpenKVM = func() error { t.Fatal("OpenKVM called without /dev/kvm"); return nil }
	want(t, h.run("kvm"), api.CheckWarn, "no /dev/kvm", "enable virtualization")
	if r := h.run("kvm"); !strings.Contains(r.Detail, "QEMU under software emulation (TCG)") {
		t.Errorf("no-KVM detail should say QEMU TCG will be used: %q", r.Detail)
	}
	h.env.VMM = "firecracker"
	want(t, h.run("kvm"), api.CheckFail, "needs KVM", "enable virtualization")
	h.env.VMM = "auto"

	h.file("dev/kvm", "")
	h.env.OpenKVM = func() error {
		return &fs.PathError{Op: "open", Path: "/dev/kvm", Err: fs.ErrPermission}
	}
	want(t, h.run("kvm"), api.CheckWarn, "not openable read-write", "sudo usermod -aG kvm $USER")
	h.env.OpenKVM = func() error { return nil }
	want(t, h.run("kvm"), api.CheckOK, "usable read-write", "")

	// The real probe against a regular file: it opens, but it is no KVM.
	h.env.OpenKVM = nil
	want(t, h.run("kvm"), api.CheckWarn, "KVM_GET_API_VERSION", "enable virtualization")
}

func TestHypervisor(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("hypervisor"), api.CheckWarn, "not checked: the VMM chooser", "")

	// doctor's own chooser (RealEnv's default) on a host without KVM.
	h.env.ChooseVMM = h.env.chooseVMM
	h.program("firecracker", "Firecracker v1.16.1", false)
	want(t, h.run("hypervisor"), api.CheckWarn, "qemu (qemu: no /dev/kvm", "enable virtualization")
	if r := h.run("hypervisor"); !strings.Contains(r.Detail, "software emulation: boots take ~15 s") {
		t.Errorf("TCG detail: %q", r.Detail)
	}
	h.file("dev/kvm", "")
	h.env.OpenKVM = func() error { return nil }
	want(t, h.run("hypervisor"), api.CheckOK, "firecracker (firecracker: KVM usable and firecracker at "+h.bin, "")

	h.env.ChooseVMM = func() (string, string, error) {
		return "", "", errors.New("vmm = firecracker but firecracker not found in PATH")
	}
	want(t, h.run("hypervisor"), api.CheckFail, "firecracker not found", `set vmm = "auto" in /home/u/.config/banger/config.toml`)
}

func TestFirecracker(t *testing.T) {
	h := newFakeHost(t)
	r := h.run("firecracker")
	want(t, r, api.CheckWarn, "firecracker not found in PATH", "github.com/firecracker-microvm/firecracker/releases")
	want(t, r, api.CheckWarn, "VMs will run under QEMU", `firecracker_bin = "/path/to/firecracker"`)
	want(t, r, api.CheckWarn, "", "/usr/local/bin/firecracker")

	h.env.VMM = "firecracker"
	want(t, h.run("firecracker"), api.CheckFail, `vmm = "firecracker" is configured`, "firecracker/releases")

	h.env.FirecrackerBin = "/nonexistent/firecracker"
	want(t, h.run("firecracker"), api.CheckFail, "firecracker_bin /nonexistent/firecracker: does not exist", "firecracker_bin")
	h.env.FirecrackerBin = ""

	p := h.program("firecracker", "Firecracker v1.16.1\n\nExiting successfully", false)
	want(t, h.run("firecracker"), api.CheckOK, "Firecracker v1.16.1 at "+p, "")
	h.program("firecracker", "Firecracker v1.10.1", false)
	want(t, h.run("firecracker"), api.CheckWarn, "older than v1.15", "firecracker/releases")
}

func TestQEMU(t *testing.T) {
	h := newFakeHost(t)
	h.env.ChooseVMM = func() (string, string, error) { return "qemu", "qemu: no /dev/kvm", nil }
	want(t, h.run("qemu"), api.CheckFail, "qemu-system-x86_64 not found", "sudo apt-get install qemu-system-x86 qemu-utils")
	h.env.ChooseVMM = func() (string, string, error) { return "firecracker", "KVM usable", nil }
	want(t, h.run("qemu"), api.CheckWarn, "only needed when Firecracker cannot run", "sudo apt-get install qemu-system-x86 qemu-utils")

	p := h.program("qemu-system-x86_64", "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)\nCopyright (c) 2003-2022", false)
	want(t, h.run("qemu"), api.CheckWarn, "qemu-img not found", "qemu-utils")
	h.program("qemu-img", "qemu-img version 7.2.22", false)
	want(t, h.run("qemu"), api.CheckOK, "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7) at "+p, "")

	h.env.QEMUBin = "/opt/none/qemu"
	want(t, h.run("qemu"), api.CheckWarn, "qemu_bin /opt/none/qemu: does not exist", "set qemu_bin")
}

func TestVhostVsockIsInformationOnly(t *testing.T) {
	h := newFakeHost(t)
	for _, present := range []bool{false, true} {
		if present {
			h.file("dev/vhost-vsock", "")
		}
		r := h.run("vhost-vsock")
		if r.Status == api.CheckFail {
			t.Fatalf("vhost-vsock must never fail: %+v", r)
		}
		for _, s := range []string{"emulated inside the Firecracker process", "Unix sockets", "/dev/vhost-vsock", "virtio-serial"} {
			if !strings.Contains(r.Detail, s) {
				t.Errorf("present=%v: detail lacks %q: %q", present, s, r.Detail)
			}
		}
		wantWord := map[bool]string{false: "absent", true: "present"}[present]
		if !strings.Contains(r.Detail, wantWord) {
			t.Errorf("present=%v: detail %q lacks %q", present, r.Detail, wantWord)
		}
	}
}

func TestBundle(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("bundle"), api.CheckWarn, "not checked: the bundle validator", "")
	h.env.BundleDir = "/data/banger/bundle"
	h.env.BundleCheck = func() []error {
		return []error{errors.New("kernel vmlinux missing"), errors.New("agent banger-agent missing")}
	}
	want(t, h.run("bundle"), api.CheckFail, "/data/banger/bundle is incomplete: kernel vmlinux missing; agent banger-agent missing", "banger bundle build")
	h.env.BundleCheck = func() []error { return nil }
	want(t, h.run("bundle"), api.CheckOK, "complete at /data/banger/bundle", "")
}

func TestAgentConfig(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("agent-config"), api.CheckOK, "no deprecated keys", "")
	h.env.Deprecations = []string{
		"config key ping_helper_port is deprecated: rename it to agent_port",
		"config key ping_helper_bin is deprecated: rename it to agent_bin",
	}
	want(t, h.run("agent-config"), api.CheckWarn, "ping_helper_port is deprecated",
		"in /home/u/.config/banger/config.toml: rename ping_helper_port to agent_port, rename ping_helper_bin to agent_bin")
}

func TestTapRights(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("tap-rights"), api.CheckWarn, "not checked: the privileged helper", "")

	h.env.HelperPath = "/usr/local/libexec/banger/banger-helper"
	var asked []string
	h.env.SudoAllowed = func(_ context.Context, argv []string) error {
		asked = argv
		return errors.New("sudo: a password is required")
	}
	want(t, h.run("tap-rights"), api.CheckFail, "sudo -n does not allow the helper",
		"make install-helper")
	if strings.Join(asked, " ") != "/usr/local/libexec/banger/banger-helper tap-add bg-00000000 banger0 1000" {
		t.Errorf("sudo probe asked about %q", asked)
	}
	h.env.SudoAllowed = func(context.Context, []string) error { return nil }
	want(t, h.run("tap-rights"), api.CheckOK, "sudo -n allows the helper", "")
	h.env.SudoAllowed = func(context.Context, []string) error { t.Fatal("root must not ask sudo"); return nil }
	h.env.Geteuid = func() int { return 0 }
	want(t, h.run("tap-rights"), api.CheckOK, "running as root", "")
}

func TestMemory(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("memory"), api.CheckWarn, "cannot read /proc/meminfo", "mount -t proc")
	h.file("proc/meminfo", "MemTotal:        4194304 kB\nMemFree:          100000 kB\nMemAvailable:    1048576 kB\n")
	want(t, h.run("memory"), api.CheckOK, "1024 MiB available of 4096 MiB", "")
	h.env.VMName = "dev"
	h.env.RequestedMemoryMiB = 512
	want(t, h.run("memory"), api.CheckOK, "asks for 512 MiB", "")
	h.env.RequestedMemoryMiB = 2048
	want(t, h.run("memory"), api.CheckWarn, "only 1024 MiB are available", "banger vm set dev --memory 1024M")
	h.env.RequestedMemoryMiB = 8192
	want(t, h.run("memory"), api.CheckFail, "only 4096 MiB in total", "banger vm set dev --memory 1024M")
}

func TestVersionParsing(t *testing.T) {
	for in, w := range map[string][3]int{
		"mke2fs 1.47.0 (5-Feb-2023)":       {1, 47, 0},
		"Firecracker v1.16.1":              {1, 16, 1},
		"QEMU emulator version 7.2.22 (x)": {7, 2, 22},
		"debootstrap 1.0":                  {1, 0, 0},
	} {
		got, ok := parseVersion(in)
		if !ok || got != w {
			t.Errorf("parseVersion(%q) = %v, %v; want %v", in, got, ok, w)
		}
	}
	if _, ok := parseVersion("no digits"); ok {
		t.Error("parseVersion accepted a string without a version")
	}
	if !versionLess([3]int{1, 42, 9}, [3]int{1, 43, 0}) || versionLess([3]int{1, 43, 0}, [3]int{1, 43, 0}) {
		t.Error("versionLess is wrong")
	}
}

// BANGER_TEST_ASSUME_KVM makes the daemon assume KVM; doctor says that it is
// assumed, as a warning naming the test switch, never as an ok.
func TestAssumedKVMIsAWarning(t *testing.T) {
	t.Setenv("BANGER_TEST_ASSUME_KVM", "1")
	h := newFakeHost(t)
	h.env.OpenKVM = func() error { t.Fatal("OpenKVM called although KVM is assumed"); return nil }
	want(t, h.run("kvm"), api.CheckWarn, "assumed usable because the test-only switch BANGER_TEST_ASSUME_KVM=1 is set", "unset BANGER_TEST_ASSUME_KVM")
	h.env.ChooseVMM = func() (string, string, error) { return "firecracker", "assumed by BANGER_TEST_ASSUME_KVM", nil }
	want(t, h.run("hypervisor"), api.CheckWarn, "firecracker (assumed by BANGER_TEST_ASSUME_KVM), chosen under KVM is assumed", "unset BANGER_TEST_ASSUME_KVM")
}

func TestTestSwitches(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("test-switches"), api.CheckWarn, "not checked: no daemon client", "")
	info := api.DaemonInfo{PID: 7}
	h.env.DaemonInfo = func(context.Context) (api.DaemonInfo, error) { return info, nil }
	want(t, h.run("test-switches"), api.CheckOK, "no test-only switch set", "")
	info.TestSwitches = []string{"BANGER_TEST_SKIP_SSH_WAIT=1", "BANGER_TEST_CRASH_AT=stop:record"}
	want(t, h.run("test-switches"), api.CheckWarn, "BANGER_TEST_SKIP_SSH_WAIT=1, BANGER_TEST_CRASH_AT=stop:record",
		"unset BANGER_TEST_SKIP_SSH_WAIT BANGER_TEST_CRASH_AT")
	h.env.DaemonInfo = func(context.Context) (api.DaemonInfo, error) { return info, errors.New("refused") }
	want(t, h.run("test-switches"), api.CheckWarn, "not checked: bangerd does not answer", "banger daemon start")
}
