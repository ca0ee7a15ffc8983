package guestinit

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// loadModule loads a kernel module from the image's module tree by its
// path under /lib/modules/<release>/ (as modules.dep names it). Already
// loaded is fine.
func loadModule(modDir, rel string) error {
	p := filepath.Join(modDir, rel)
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(rel, ".xz") || strings.HasSuffix(rel, ".zst") || strings.HasSuffix(rel, ".gz") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

// findModule finds a module's path in modules.dep ("kernel/.../name.ko[.xz]:").
func findModule(dep []byte, name string) (string, bool) {
	for _, line := range strings.Split(string(dep), "\n") {
		rel, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		base := filepath.Base(rel)
		for _, suf := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
			if base == name+suf {
				return rel, true
			}
		}
	}
	return "", false
}

// Input event constants (linux/input-event-codes.h).
const (
	evKey      = 1
	keyPower   = 116
	eventBytes = 24 // struct input_event on 64-bit
)

// isPowerPress reads one struct input_event: a KEY_POWER press.
func isPowerPress(ev []byte) bool {
	if len(ev) < eventBytes {
		return false
	}
	typ := binary.LittleEndian.Uint16(ev[16:])
	code := binary.LittleEndian.Uint16(ev[18:])
	val := int32(binary.LittleEndian.Uint32(ev[20:]))
	return typ == evKey && code == keyPower && val == 1
}

// watchPowerButton loads the ACPI button and evdev drivers (udev would on
// a systemd image) and calls pressed when the ACPI power button (QEMU's
// system_powerdown, which `banger vm stop` sends) is pressed.
func watchPowerButton(logf func(string, ...any), pressed func()) {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	modDir := filepath.Join("/lib/modules", release)
	dep, err := os.ReadFile(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		modDir = filepath.Join("/usr/lib/modules", release)
		if dep, err = os.ReadFile(filepath.Join(modDir, "modules.dep")); err != nil {
			logf("power button: no modules.dep for %s: %v", release, err)
		}
	}
	for _, m := range []string{"evdev", "button"} {
		if rel, ok := findModule(dep, m); ok {
			if err := loadModule(modDir, rel); err != nil {
				logf("power button: load %s: %v", m, err)
			}
		}
	}
	var dev string
	for i := 0; i < 50 && dev == ""; i++ {
		dev = findPowerButton("/sys/class/input")
		if dev == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if dev == "" {
		logf("power button: none found; stop the VM with SIGTERM/ctrl-alt-del or it is killed")
		return
	}
	f, err := os.Open(dev)
	if err != nil {
		logf("power button: %v", err)
		return
	}
	logf("power button: watching %s", dev)
	go func() {
		defer f.Close()
		buf := make([]byte, eventBytes*16)
		for {
			n, err := f.Read(buf)
			if err != nil {
				logf("power button: %v", err)
				return
			}
			for i := 0; i+eventBytes <= n; i += eventBytes {
				if isPowerPress(buf[i : i+eventBytes]) {
					pressed()
				}
			}
		}
	}()
}

// findPowerButton returns /dev/input/eventN of the input device named
// "Power Button", or "".
func findPowerButton(sysInput string) string {
	names, _ := filepath.Glob(filepath.Join(sysInput, "event*", "device", "name"))
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err == nil && strings.TrimSpace(string(data)) == "Power Button" {
			return filepath.Join("/dev/input", filepath.Base(filepath.Dir(filepath.Dir(n))))
		}
	}
	return ""
}

// shutdown ends every process, unmounts the work disk, makes / read-only
// and restarts the machine: banger's VMMs exit on a guest reboot (QEMU
// -no-reboot, Firecracker reboot=k), as the initramfs relies on too.
func shutdown(s *Supervisor, logf func(string, ...any)) {
	s.StopRestarts()
	logf("shutdown: stopping all processes")
	_ = unix.Kill(-1, unix.SIGTERM)
	for i := 0; i < 50; i++ { // up to 5 s for them to exit
		s.ReapNow()
		if !anyProcesses() {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = unix.Kill(-1, unix.SIGKILL)
	time.Sleep(100 * time.Millisecond)
	s.ReapNow()
	unix.Sync()
	if err := unix.Unmount("/root", 0); err != nil && !errors.Is(err, unix.EINVAL) {
		logf("shutdown: unmount /root: %v", err)
		_ = unix.Unmount("/root", unix.MNT_DETACH)
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		logf("shutdown: remount / read-only: %v", err)
	}
	unix.Sync()
	logf("shutdown: rebooting (the VMM exits)")
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	// Only reached if reboot(2) failed: PID 1 must not exit.
	select {}
}

// anyProcesses says whether a user process other than PID 1 is alive
// (kernel threads, children of kthreadd, have no cmdline).
func anyProcesses() bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name() == "1" || e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if data, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && len(data) > 0 {
			return true
		}
	}
	return false
}
