package vmm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/banger-dev/banger/internal/sysexec"
)

// Driver names, as stored in Handle.Driver and accepted by Choose.
const (
	DriverFirecracker = "firecracker"
	DriverQEMU        = "qemu"
)

// kvmAPIVersion is the only KVM API version Linux has ever shipped; anything
// else means a broken or foreign /dev/kvm.
const kvmAPIVersion = 12

// ioctl numbers from <linux/kvm.h>: _IO(KVMIO=0xAE, nr).
const (
	kvmGetAPIVersion = 0xAE00
	kvmCreateVM      = 0xAE01
)

// KVMUsable reports whether this process can run hardware-accelerated VMs:
// /dev/kvm opens read-write, speaks API version 12 and lets us create a VM,
// and it is ordinary hardware KVM (see kvmHost.usable). The string says what
// failed (or "KVM usable").
func KVMUsable() (bool, string) {
	return kvmHost{dev: "/dev/kvm", cpuinfo: "/proc/cpuinfo", modules: "/sys/module"}.usable()
}

// kvmHost names the files KVMUsable looks at, so tests can point elsewhere.
type kvmHost struct {
	dev     string // the KVM device
	cpuinfo string // for the vmx/svm flags
	modules string // /sys/module, to spot the PVM flavour of KVM
}

func (k kvmHost) usable() (bool, string) {
	dev := k.dev
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return false, "no " + dev + " (KVM not available: no hardware virtualization, or the kvm module is not loaded)"
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return false, dev + ": permission denied (add yourself to the kvm group: sudo usermod -aG kvm $USER, then log in again)"
	case err != nil:
		return false, fmt.Sprintf("open %s: %v", dev, err)
	}
	defer unix.Close(fd)
	v, err := unix.IoctlRetInt(fd, kvmGetAPIVersion)
	if err != nil {
		return false, fmt.Sprintf("%s: KVM_GET_API_VERSION: %v", dev, err)
	}
	if v != kvmAPIVersion {
		return false, fmt.Sprintf("%s: KVM API version %d, want %d", dev, v, kvmAPIVersion)
	}
	vmfd, err := unix.IoctlRetInt(fd, kvmCreateVM)
	if err != nil {
		return false, fmt.Sprintf("%s: KVM_CREATE_VM: %v (is another hypervisor holding VT-x/AMD-V?)", dev, err)
	}
	unix.Close(vmfd)
	// PVM (kvm_pvm) is a KVM flavour for hosts without VT-x/AMD-V: /dev/kvm
	// and KVM_CREATE_VM work, but ordinary guest kernels hang at once.
	if _, err := os.Stat(filepath.Join(k.modules, "kvm_pvm")); err == nil {
		return false, dev + " is PVM (kvm_pvm module), which boots only PVM-enabled guest kernels"
	}
	if flags, err := os.ReadFile(k.cpuinfo); err == nil && !hasVirtFlag(string(flags)) {
		return false, dev + " works but the CPU reports no vmx/svm (hardware virtualization) in " + k.cpuinfo
	}
	return true, "KVM usable"
}

// hasVirtFlag reports whether a cpuinfo "flags" line lists vmx or svm.
func hasVirtFlag(cpuinfo string) bool {
	for _, line := range strings.Split(cpuinfo, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		for _, f := range strings.Fields(val) {
			if f == "vmx" || f == "svm" {
				return true
			}
		}
		return false
	}
	return true // no flags line (unusual kernel): do not guess
}

// Chooser picks a driver. Its probes are fields so tests can fake the host;
// the zero value probes the real machine.
type Chooser struct {
	// KVM reports whether KVM is usable and why not (default KVMUsable).
	KVM func() (bool, string)
	// LookPath finds a program in PATH (default sysexec.LookPath).
	LookPath func(name string) (string, error)
	// Executable checks a configured binary path (default: regular file with
	// an execute bit).
	Executable func(path string) error
}

// Choose picks the hypervisor driver on the real host. pref is "auto" (or
// empty), "firecracker" or "qemu"; fcBinary is the configured firecracker_bin
// (empty = look in PATH). reason explains the choice for logs and doctor.
func Choose(pref, fcBinary string) (driver, reason string, err error) {
	return Chooser{}.Choose(pref, fcBinary)
}

// Choose implements the package-level Choose with c's probes.
func (c Chooser) Choose(pref, fcBinary string) (driver, reason string, err error) {
	kvmProbe, look, isExec := c.KVM, c.LookPath, c.Executable
	if kvmProbe == nil {
		kvmProbe = KVMUsable
	}
	if look == nil {
		look = sysexec.LookPath
	}
	if isExec == nil {
		isExec = sysexec.CheckExecutable
	}
	findFC := func() (string, error) {
		if fcBinary != "" {
			if err := isExec(fcBinary); err != nil {
				return "", fmt.Errorf("firecracker_bin %s: %v", fcBinary, err)
			}
			return fcBinary, nil
		}
		p, err := look("firecracker")
		if err != nil {
			return "", errors.New("firecracker not found in PATH")
		}
		return p, nil
	}
	const fcFix = "install firecracker from https://github.com/firecracker-microvm/firecracker/releases into PATH, or set firecracker_bin in config.toml"
	const kvmFix = "enable KVM (load kvm_intel/kvm_amd; nested virtualization on a cloud VM) and give yourself access: sudo usermod -aG kvm $USER, then log in again"

	switch pref {
	case "", "auto":
		kvmOK, kvmWhy := kvmProbe()
		if !kvmOK {
			return DriverQEMU, "qemu: " + kvmWhy + "; software emulation (TCG): slow", nil
		}
		fc, err := findFC()
		if err != nil {
			return DriverQEMU, "qemu: " + err.Error() + " (KVM usable: QEMU runs accelerated)", nil
		}
		return DriverFirecracker, "firecracker: KVM usable and firecracker at " + fc, nil
	case DriverFirecracker:
		kvmOK, kvmWhy := kvmProbe()
		if !kvmOK {
			return "", "", fmt.Errorf("vmm = firecracker but Firecracker needs KVM: %s; fix: %s, or set vmm = \"qemu\" (or \"auto\")", kvmWhy, kvmFix)
		}
		fc, err := findFC()
		if err != nil {
			return "", "", fmt.Errorf("vmm = firecracker but %v; fix: %s, or set vmm = \"qemu\" (or \"auto\")", err, fcFix)
		}
		return DriverFirecracker, "firecracker: requested; firecracker at " + fc, nil
	case DriverQEMU:
		if kvmOK, kvmWhy := kvmProbe(); !kvmOK {
			return DriverQEMU, "qemu: requested; " + kvmWhy + "; software emulation (TCG): slow", nil
		}
		return DriverQEMU, "qemu: requested; KVM usable", nil
	default:
		return "", "", fmt.Errorf("unknown vmm %q: use \"auto\", \"firecracker\" or \"qemu\"", pref)
	}
}
