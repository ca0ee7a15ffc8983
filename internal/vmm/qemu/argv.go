package qemu

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/banger-dev/banger/internal/vmm"
)

// Accelerators BuildArgv accepts.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// baseCmdline is what every guest needs from QEMU microvm: the serial
// console, the root disk, classic interface names (the ip= value names eth0)
// and exit instead of hanging on a panic (with -no-reboot QEMU then exits).
const baseCmdline = "console=ttyS0 root=/dev/vda rw net.ifnames=0 panic=-1"

// BuildArgv returns the QEMU command line for spec. accel is AccelKVM or
// AccelTCG. tscKHz is the host TSC rate passed to the guest as tsc_early_khz
// under TCG only (the kernel sometimes hangs calibrating the TSC under
// emulation), with tsc=reliable: TCG's rdtsc reads the host's TSC, but the
// kernel's clocksource watchdog, comparing it with jitter-prone jiffies,
// otherwise drops it for refined-jiffies, and the guest clock then loses a
// third of every second or more (measured: 3 s lost in 6). 0 leaves both out.
//
// Paths are embedded in QEMU option strings, where a comma separates options:
// they are escaped by doubling commas.
func BuildArgv(spec vmm.Spec, accel string, tscKHz int) []string {
	cmdline := baseCmdline
	if accel == AccelTCG && tscKHz > 0 {
		cmdline += " tsc_early_khz=" + strconv.Itoa(tscKHz) + " tsc=reliable"
	}
	if s := strings.TrimSpace(spec.BootArgs); s != "" {
		cmdline += " " + s
	}
	cpu := "host"
	if accel != AccelKVM {
		cpu = "max"
	}
	argv := []string{
		"-name", "banger-" + spec.VMID,
		// rtc=on: QEMU leaves the RTC out under KVM by default; the guest
		// needs it for the wall clock.
		"-M", "microvm,rtc=on",
		"-accel", accel,
		"-cpu", cpu,
		"-m", strconv.Itoa(spec.MemoryMiB),
		"-smp", strconv.Itoa(spec.VCPUs),
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		// append=on keeps earlier boots' output across restarts.
		"-chardev", "file,id=console,path=" + opt(spec.ConsoleLog) + ",append=on",
		"-serial", "chardev:console",
		"-kernel", spec.KernelPath,
	}
	if spec.InitrdPath != "" {
		argv = append(argv, "-initrd", spec.InitrdPath)
	}
	argv = append(argv, "-append", cmdline)
	// Drive order fixes guest names: the first virtio-blk is /dev/vda (root),
	// the second /dev/vdb (work disk).
	if spec.RootfsPath != "" {
		format := spec.RootfsFormat
		if format == "" {
			format = "raw"
		}
		argv = append(argv,
			"-drive", "id=root,file="+opt(spec.RootfsPath)+",format="+format+",if=none",
			"-device", "virtio-blk-device,drive=root")
	}
	if spec.WorkDiskPath != "" {
		argv = append(argv,
			"-drive", "id=work,file="+opt(spec.WorkDiskPath)+",format=raw,if=none",
			"-device", "virtio-blk-device,drive=work")
	}
	if spec.TapName != "" {
		argv = append(argv,
			"-netdev", "tap,id=n0,ifname="+spec.TapName+",script=no,downscript=no",
			"-device", "virtio-net-device,netdev=n0,mac="+spec.MAC)
	}
	argv = append(argv,
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=agent,path="+opt(spec.AgentSocket)+",server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=banger.agent",
		"-chardev", "socket,id=qmp,path="+opt(spec.APISocket)+",server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
	)
	return argv
}

// opt escapes a value for a QEMU comma-separated option string.
func opt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// HostTSCKHz returns the host CPU frequency in kHz for tsc_early_khz: the
// first "cpu MHz" in /proc/cpuinfo, else cpufreq's base or maximum
// frequency, else 0 (the argument is then left out and the guest calibrates
// on its own).
func HostTSCKHz() int {
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		if khz := parseCPUInfoKHz(f); khz > 0 {
			return khz
		}
	}
	for _, p := range []string{
		"/sys/devices/system/cpu/cpu0/cpufreq/base_frequency",
		"/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",
	} {
		if b, err := os.ReadFile(p); err == nil {
			if khz, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && khz > 0 {
				return khz
			}
		}
	}
	return 0
}

func parseCPUInfoKHz(r io.Reader) int {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "cpu MHz" {
			continue
		}
		mhz, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || mhz <= 0 {
			return 0
		}
		return int(mhz*1000 + 0.5)
	}
	return 0
}
