// Package validate checks user input shared by the CLI and the daemon: names,
// sizes and VM resource limits. Messages state the rule so users can fix input.
package validate

import (
	"fmt"
	"strconv"
	"strings"
)

const (
	MaxVCPUs       = 32
	MinMemoryMiB   = 128
	MinDiskBytes   = 1 << 30 // 1 GiB: room for a home directory and a package cache
	nameRule       = "1-63 characters, lower-case letters a-z, digits 0-9 and '-', not starting or ending with '-'"
	sizeFormsHint  = "accepted forms: plain bytes (1073741824), or a number with a binary unit K, M, G, T (also KiB, MiB, GiB, TiB; e.g. 512M, 2G, 1024MiB)"
	vmNameExample  = "e.g. dev, web-1"
	imgNameExample = "e.g. debian, void-musl"
)

// VMName checks a VM name: it becomes a DNS label (<name>.vm) and hostname.
func VMName(name string) error { return label("VM name", name, vmNameExample) }

// SnapshotName checks a snapshot name (same rule: it names a directory).
func SnapshotName(name string) error { return label("snapshot name", name, "e.g. before-upgrade") }

// ImageName checks an image name (same rule as VM names).
func ImageName(name string) error { return label("image name", name, imgNameExample) }

func label(what, name, example string) error {
	if name == "" {
		return fmt.Errorf("%s is empty: use %s (%s)", what, nameRule, example)
	}
	bad := len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-'
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("invalid %s %q: use %s (%s)", what, name, nameRule, example)
	}
	return nil
}

// ParseSize parses a size with an optional binary unit. All units are powers
// of 1024: "2G" and "2GiB" are both 2*2^30 bytes.
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	num := strings.TrimRightFunc(in, func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' })
	unit := strings.ToUpper(in[len(num):])
	mult := int64(1)
	switch unit {
	case "", "B":
	case "K", "KB", "KIB":
		mult = 1 << 10
	case "M", "MB", "MIB":
		mult = 1 << 20
	case "G", "GB", "GIB":
		mult = 1 << 30
	case "T", "TB", "TIB":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("invalid size %q: unknown unit %q; %s", s, unit, sizeFormsHint)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %s", s, sizeFormsHint)
	}
	if n <= 0 {
		return 0, fmt.Errorf("invalid size %q: must be greater than zero; %s", s, sizeFormsHint)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}

// ParseMemoryMiB parses a memory size; a bare integer means MiB (as users
// write --memory 1024), anything with a unit is converted to whole MiB.
func ParseMemoryMiB(s string) (int, error) {
	t := strings.TrimSpace(s)
	if n, err := strconv.Atoi(t); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("invalid memory %q: must be greater than zero (a bare number means MiB, or use 512M, 2G)", s)
		}
		return n, nil
	}
	b, err := ParseSize(t)
	if err != nil {
		return 0, err
	}
	if b%(1<<20) != 0 {
		return 0, fmt.Errorf("invalid memory %q: must be a whole number of MiB", s)
	}
	return int(b >> 20), nil
}

// FormatBytes renders bytes with a binary unit, e.g. "8.0G", "512M". It
// stops at T, the largest unit ParseSize reads, so exact values read back.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + string("KMGT"[exp])
}

// Limits are the host capacity VM resources are checked against.
type Limits struct {
	HostCPUs        int
	HostMemoryBytes int64
	FSFreeBytes     int64 // free space on the filesystem holding VM disks
}

// VCPUs checks 1..min(32, host CPUs).
func VCPUs(n int, l Limits) error {
	max := MaxVCPUs
	if l.HostCPUs > 0 && l.HostCPUs < max {
		max = l.HostCPUs
	}
	if n < 1 || n > max {
		return fmt.Errorf("invalid vcpus %d: must be between 1 and %d (this host has %d CPUs, banger allows at most %d)", n, max, l.HostCPUs, MaxVCPUs)
	}
	return nil
}

// MemoryMiB checks 128 MiB..host RAM.
func MemoryMiB(n int, l Limits) error {
	if n < MinMemoryMiB {
		return fmt.Errorf("invalid memory %d MiB: must be at least %d MiB", n, MinMemoryMiB)
	}
	if l.HostMemoryBytes > 0 && int64(n)<<20 > l.HostMemoryBytes {
		return fmt.Errorf("invalid memory %d MiB: more than this host's RAM (%d MiB)", n, l.HostMemoryBytes>>20)
	}
	return nil
}

// DiskBytes checks 1 GiB..free space of the state filesystem. Work disks
// are sparse, but a disk larger than the free space would fail mid-write in
// the guest, which is worse than refusing up front.
func DiskBytes(n int64, l Limits) error {
	if n < MinDiskBytes {
		return fmt.Errorf("invalid disk size %s: must be at least 1G", FormatBytes(n))
	}
	if l.FSFreeBytes > 0 && n > l.FSFreeBytes {
		return fmt.Errorf("invalid disk size %s: more than the %s free on the state filesystem", FormatBytes(n), FormatBytes(l.FSFreeBytes))
	}
	return nil
}
