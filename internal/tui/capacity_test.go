package tui

import (
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

func TestCapacity(t *testing.T) {
	host := api.HostResources{CPUs: 8, MemoryBytes: 16 << 30, FSBytes: 250 << 30,
		// The daemon's own reservation figures are ignored: the TUI derives
		// them from the VM list it shows, so the row and the table agree.
		VCPUsReserved: 99, MemoryReservedBytes: 99, DiskAllocatedBytes: 99}
	vms := []api.VM{
		{Name: "a", State: api.VMRunning, VCPUs: 2, MemoryMiB: 2048, DiskAllocatedBytes: 3 << 30},
		{Name: "b", State: api.VMRunning, VCPUs: 1, MemoryMiB: 512, DiskAllocatedBytes: 1 << 30},
		{Name: "c", State: api.VMStopped, VCPUs: 4, MemoryMiB: 8192, DiskAllocatedBytes: 5 << 30},
		{Name: "d", State: api.VMStarting, VCPUs: 4, MemoryMiB: 4096, DiskAllocatedBytes: 1 << 20},
		{Name: "e", State: api.VMError, VCPUs: 4, MemoryMiB: 4096},
	}
	got := Capacity(vms, host)
	want := CapacityFigures{
		VCPUsUsed: 3, VCPUsTotal: 8,
		MemUsedBytes: 2560 << 20, MemTotalBytes: 16 << 30,
		DiskUsedBytes: 9<<30 + 1<<20, DiskTotalBytes: 250 << 30,
	}
	if got != want {
		t.Errorf("Capacity = %+v\nwant       %+v", got, want)
	}
	if z := Capacity(nil, api.HostResources{}); z != (CapacityFigures{}) {
		t.Errorf("Capacity of nothing = %+v", z)
	}
}

func TestUsageLevel(t *testing.T) {
	cases := []struct {
		used, total int64
		want        Level
	}{
		{0, 100, LevelOK}, {69, 100, LevelOK}, {70, 100, LevelWarn}, {89, 100, LevelWarn},
		{90, 100, LevelHigh}, {150, 100, LevelHigh},
		{699, 1000, LevelOK}, {7, 10, LevelWarn}, {9, 10, LevelHigh},
		{0, 0, LevelOK}, {1, 0, LevelHigh},
	}
	for _, c := range cases {
		if got := UsageLevel(c.used, c.total); got != c.want {
			t.Errorf("UsageLevel(%d, %d) = %v, want %v", c.used, c.total, got, c.want)
		}
	}
}

func TestBar(t *testing.T) {
	cases := []struct {
		used, total int64
		width       int
		want        string
	}{
		{0, 8, 8, "░░░░░░░░"},
		{4, 8, 8, "████░░░░"},
		{8, 8, 8, "████████"},
		{9, 8, 8, "████████"},      // over-committed stays full
		{1, 1000, 8, "█░░░░░░░"},   // something used is never drawn empty
		{999, 1000, 8, "███████░"}, // not full before 100%
		{0, 0, 4, "░░░░"},
	}
	for _, c := range cases {
		f, e := bar(c.used, c.total, c.width)
		if got := f + e; got != c.want {
			t.Errorf("bar(%d, %d, %d) = %q, want %q", c.used, c.total, c.width, got, c.want)
		}
	}
}

// The capacity row prints the figures beside the bars.
func TestCapacityRowFigures(t *testing.T) {
	m := loaded(newStatic(120, 24, true), []api.VM{
		{Name: "a", State: api.VMRunning, VCPUs: 4, MemoryMiB: 2048, DiskAllocatedBytes: 3174 << 20},
	}, nil, sampleHost())
	row := m.renderCapacity(120)
	for _, want := range []string{"4/8 vCPU", "RAM", "2.0/16 GiB", "Disk", "3.1/250 GiB"} {
		if !strings.Contains(row, want) {
			t.Errorf("capacity row %q lacks %q", row, want)
		}
	}
}

// Colors follow the thresholds: green < 70% <= yellow < 90% <= red.
func TestCapacityRowColors(t *testing.T) {
	th := newTheme(false)
	for _, c := range []struct {
		vcpus int
		style string
	}{{4, th.ok.Render("█")}, {6, th.warn.Render("█")}, {8, th.bad.Render("█")}} {
		m := loaded(newStatic(120, 24, false), []api.VM{{Name: "a", State: api.VMRunning, VCPUs: c.vcpus}}, nil, sampleHost())
		row := m.renderCapacity(120)
		cpu := row[:strings.Index(row, "vCPU")]
		// The style's opening sequence is everything before the glyph.
		open := c.style[:strings.Index(c.style, "█")]
		if !strings.Contains(cpu, open) {
			t.Errorf("%d/8 vCPU: CPU bar %q lacks style %q", c.vcpus, cpu, open)
		}
	}
}
