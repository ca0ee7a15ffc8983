package tui

import (
	"fmt"
	"strings"

	"github.com/banger-dev/banger/internal/api"
)

// CapacityFigures is what the capacity row shows: what VMs reserve or occupy
// against what the host has.
type CapacityFigures struct {
	VCPUsUsed      int   // vCPUs of running VMs
	VCPUsTotal     int   // host CPUs
	MemUsedBytes   int64 // memory of running VMs
	MemTotalBytes  int64 // host RAM
	DiskUsedBytes  int64 // allocated bytes of every VM's disks, running or not
	DiskTotalBytes int64 // size of the filesystem holding banger's state
}

// Capacity aggregates the VM list against the host totals. Only running VMs
// reserve CPU and memory; every VM's disks occupy space whatever its state.
func Capacity(vms []api.VM, host api.HostResources) CapacityFigures {
	f := CapacityFigures{
		VCPUsTotal:     host.CPUs,
		MemTotalBytes:  host.MemoryBytes,
		DiskTotalBytes: host.FSBytes,
	}
	for _, vm := range vms {
		if vm.State == api.VMRunning {
			f.VCPUsUsed += vm.VCPUs
			f.MemUsedBytes += int64(vm.MemoryMiB) << 20
		}
		f.DiskUsedBytes += vm.DiskAllocatedBytes
	}
	return f
}

// Level classifies a usage ratio for coloring.
type Level int

const (
	LevelOK   Level = iota // < 70%
	LevelWarn              // 70% to < 90%
	LevelHigh              // >= 90%
)

// UsageLevel maps used/total to a Level. An unknown total (0) is LevelOK
// unless something is used, in which case it is LevelHigh.
func UsageLevel(used, total int64) Level {
	if total <= 0 {
		if used > 0 {
			return LevelHigh
		}
		return LevelOK
	}
	// Integer math: used*100 >= 90*total avoids float rounding at the edges.
	switch {
	case used*100 >= 90*total:
		return LevelHigh
	case used*100 >= 70*total:
		return LevelWarn
	default:
		return LevelOK
	}
}

// bar draws a width-cell bar filled in proportion to used/total, rounded to
// the nearest cell but never showing full before 100% nor empty when
// something is used.
func bar(used, total int64, width int) (filled, empty string) {
	if width <= 0 {
		return "", ""
	}
	n := 0
	switch {
	case total <= 0:
		if used > 0 {
			n = width
		}
	case used >= total:
		n = width
	case used > 0:
		n = int((used*int64(width) + total/2) / total)
		n = max(1, min(n, width-1))
	}
	return strings.Repeat("█", n), strings.Repeat("░", width-n)
}

// inGiB formats bytes in GiB: one decimal below 10, none above.
func inGiB(b int64) string {
	g := float64(b) / (1 << 30)
	if g < 10 {
		return fmt.Sprintf("%.1f", g)
	}
	return fmt.Sprintf("%.0f", g)
}
