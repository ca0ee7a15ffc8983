package vmm

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func fakeChooser(kvm bool, fcInPath bool) Chooser {
	return Chooser{
		KVM: func() (bool, string) {
			if kvm {
				return true, "KVM usable"
			}
			return false, "no /dev/kvm"
		},
		LookPath: func(name string) (string, error) {
			if fcInPath && name == "firecracker" {
				return "/usr/local/bin/firecracker", nil
			}
			return "", errors.New(name + " not found in PATH")
		},
		Executable: func(path string) error {
			if path == "/opt/fc/firecracker" {
				return nil
			}
			return errors.New("no such file or directory")
		},
	}
}

func TestChoose(t *testing.T) {
	tests := []struct {
		name       string
		kvm, fc    bool
		pref, bin  string
		wantDriver string
		wantReason []string // substrings
		wantErr    []string // substrings; empty = no error
	}{
		{name: "auto both", kvm: true, fc: true, pref: "auto", wantDriver: "firecracker", wantReason: []string{"/usr/local/bin/firecracker"}},
		{name: "empty pref is auto", kvm: true, fc: true, pref: "", wantDriver: "firecracker"},
		{name: "auto no kvm", kvm: false, fc: true, pref: "auto", wantDriver: "qemu", wantReason: []string{"no /dev/kvm", "software emulation (TCG): slow"}},
		{name: "auto no binary", kvm: true, fc: false, pref: "auto", wantDriver: "qemu", wantReason: []string{"firecracker not found in PATH"}},
		{name: "auto neither", kvm: false, fc: false, pref: "auto", wantDriver: "qemu", wantReason: []string{"no /dev/kvm", "TCG"}},
		{name: "auto configured binary", kvm: true, fc: false, pref: "auto", bin: "/opt/fc/firecracker", wantDriver: "firecracker", wantReason: []string{"/opt/fc/firecracker"}},
		{name: "auto configured binary missing", kvm: true, fc: true, pref: "auto", bin: "/nope/firecracker", wantDriver: "qemu", wantReason: []string{"firecracker_bin /nope/firecracker"}},
		{name: "forced fc ok", kvm: true, fc: true, pref: "firecracker", wantDriver: "firecracker"},
		{name: "forced fc no kvm", kvm: false, fc: true, pref: "firecracker", wantErr: []string{"no /dev/kvm", "usermod -aG kvm"}},
		{name: "forced fc no binary", kvm: true, fc: false, pref: "firecracker", wantErr: []string{"firecracker not found in PATH", "github.com/firecracker-microvm/firecracker/releases", "firecracker_bin"}},
		{name: "forced qemu with kvm", kvm: true, fc: true, pref: "qemu", wantDriver: "qemu", wantReason: []string{"KVM usable"}},
		{name: "forced qemu no kvm", kvm: false, fc: true, pref: "qemu", wantDriver: "qemu", wantReason: []string{"TCG"}},
		{name: "unknown pref", kvm: true, fc: true, pref: "xen", wantErr: []string{`unknown vmm "xen"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, reason, err := fakeChooser(tc.kvm, tc.fc).Choose(tc.pref, tc.bin)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Choose = %q (%s), want error", d, reason)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Choose: %v", err)
			}
			if d != tc.wantDriver {
				t.Errorf("driver = %q, want %q (reason %q)", d, tc.wantDriver, reason)
			}
			for _, s := range tc.wantReason {
				if !strings.Contains(reason, s) {
					t.Errorf("reason %q lacks %q", reason, s)
				}
			}
		})
	}
}

func TestKVMUsableMissingDevice(t *testing.T) {
	dir := t.TempDir()
	ok, why := kvmHost{dev: dir + "/kvm", cpuinfo: "/proc/cpuinfo", modules: dir}.usable()
	if ok || !strings.Contains(why, "no ") {
		t.Fatalf("usable(missing) = %v, %q", ok, why)
	}
}

func TestKVMUsableNotKVM(t *testing.T) {
	// /dev/null opens read-write but rejects KVM ioctls.
	ok, why := kvmHost{dev: "/dev/null", cpuinfo: "/proc/cpuinfo", modules: t.TempDir()}.usable()
	if ok || !strings.Contains(why, "KVM_GET_API_VERSION") {
		t.Fatalf("usable(/dev/null) = %v, %q", ok, why)
	}
}

func TestHasVirtFlag(t *testing.T) {
	cases := map[string]bool{
		"processor : 0\nflags\t\t: fpu vme pni vmx sse4_2\n": true,
		"flags : fpu svm lm\n":                               true,
		"flags : fpu pni hypervisor lm\n":                    false,
		"flags : fpu vmxnot\n":                               false,
		"processor : 0\n":                                    true,
	}
	for in, want := range cases {
		if got := hasVirtFlag(in); got != want {
			t.Errorf("hasVirtFlag(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestKVMUsableRejectsPVMAndNoVirt runs on a host whose /dev/kvm really
// creates VMs and checks the later probes veto it.
func TestKVMUsableRejectsPVMAndNoVirt(t *testing.T) {
	base := kvmHost{dev: "/dev/kvm", cpuinfo: "/proc/cpuinfo", modules: t.TempDir()}
	if ok, why := base.usable(); !ok && !strings.Contains(why, "vmx/svm") {
		t.Skipf("/dev/kvm cannot create VMs here (%s)", why)
	}
	pvm := base
	pvm.modules = t.TempDir()
	os.Mkdir(pvm.modules+"/kvm_pvm", 0o755)
	if ok, why := pvm.usable(); ok || !strings.Contains(why, "PVM") {
		t.Errorf("with kvm_pvm loaded: %v, %q", ok, why)
	}
	noVirt := base
	noVirt.cpuinfo = t.TempDir() + "/cpuinfo"
	os.WriteFile(noVirt.cpuinfo, []byte("flags : fpu pni hypervisor\n"), 0o644)
	if ok, why := noVirt.usable(); ok || !strings.Contains(why, "vmx/svm") {
		t.Errorf("without vmx/svm: %v, %q", ok, why)
	}
	withVirt := base
	withVirt.cpuinfo = t.TempDir() + "/cpuinfo"
	os.WriteFile(withVirt.cpuinfo, []byte("flags : fpu vmx\n"), 0o644)
	if ok, why := withVirt.usable(); !ok {
		t.Errorf("real /dev/kvm with vmx and no PVM: %v, %q", ok, why)
	}
}

func TestKVMUsableHost(t *testing.T) {
	ok, why := KVMUsable()
	t.Logf("this host: KVMUsable = %v (%s)", ok, why)
	if why == "" {
		t.Fatal("KVMUsable gave no reason")
	}
}
