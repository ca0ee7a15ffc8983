package tui

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/banger-dev/banger/internal/api"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const gib = 1 << 30

var fixedNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func ago(d time.Duration) *time.Time { t := fixedNow.Add(-d); return &t }

func sampleVMs() []api.VM {
	return []api.VM{
		{ID: "1a2b3c4d", Name: "dev", Image: "debian", VCPUs: 2, MemoryMiB: 2048, DiskBytes: 20 * gib,
			DiskAllocatedBytes: 3*gib + 100<<20, State: api.VMRunning, VMM: "qemu", IP: "172.30.0.2",
			MAC: "06:00:ac:1e:00:02", Tap: "bg-1a2b3c4d", PID: 4242, CreatedAt: fixedNow.Add(-72 * time.Hour), StartedAt: ago(3 * time.Minute)},
		{ID: "5e6f7a8b", Name: "api-server", Image: "debian", VCPUs: 4, MemoryMiB: 4096, DiskBytes: 40 * gib,
			DiskAllocatedBytes: 12 * gib, State: api.VMRunning, VMM: "firecracker", IP: "172.30.0.3",
			CreatedAt: fixedNow.Add(-240 * time.Hour), StartedAt: ago(26*time.Hour + 5*time.Minute)},
		{ID: "9c0d1e2f", Name: "scratch", Image: "void-musl", VCPUs: 1, MemoryMiB: 512, DiskBytes: 8 * gib,
			DiskAllocatedBytes: 700 << 20, State: api.VMStopped, CreatedAt: fixedNow.Add(-5 * time.Hour)},
		{ID: "3a4b5c6d", Name: "broken", Image: "debian", VCPUs: 2, MemoryMiB: 1024, DiskBytes: 20 * gib,
			DiskAllocatedBytes: 2 * gib, State: api.VMError, LastError: "agent did not answer within 60s",
			CreatedAt: fixedNow.Add(-1 * time.Hour)},
		{ID: "7e8f9a0b", Name: "ci-runner-with-a-very-long-name", Image: "debian", VCPUs: 2, MemoryMiB: 2048,
			DiskBytes: 20 * gib, DiskAllocatedBytes: 1 * gib, State: api.VMStopped, CreatedAt: fixedNow.Add(-2 * time.Hour)},
		{ID: "c1d2e3f4", Name: "web", Image: "debian", VCPUs: 2, MemoryMiB: 1024, DiskBytes: 10 * gib,
			DiskAllocatedBytes: 1536 << 20, State: api.VMRunning, VMM: "qemu", IP: "172.30.0.5", StartedAt: ago(45 * time.Second),
			CreatedAt: fixedNow.Add(-30 * time.Minute)},
	}
}

func sampleImages() []api.Image {
	return []api.Image{
		{Name: "debian", Distro: "debian", Suite: "bookworm", SizeBytes: 2 * gib, KernelVersion: "6.1.0-28-amd64", CreatedAt: fixedNow.Add(-300 * time.Hour)},
		{Name: "void-musl", Distro: "void", SizeBytes: 1 * gib, CreatedAt: fixedNow.Add(-100 * time.Hour)},
	}
}

func sampleHost() api.HostResources {
	return api.HostResources{CPUs: 8, MemoryBytes: 16 * gib, FSBytes: 250 * gib, FSFreeBytes: 200 * gib}
}

// newStatic builds a model whose state the test sets through messages,
// without running any command.
func newStatic(width, height int, noColor bool) *Model {
	m := New(context.Background(), &fakeBackend{}, Options{NoColor: noColor, Version: "v0.1.0", Now: func() time.Time { return fixedNow }})
	m.Update(tea.WindowSizeMsg{Width: width, Height: height})
	return m
}

func loaded(m *Model, vms []api.VM, images []api.Image, host api.HostResources) *Model {
	m.Update(connectedMsg{took: 120 * time.Millisecond})
	m.Update(vmsMsg{vms: vms, took: 8 * time.Millisecond})
	m.Update(imagesMsg{images: images, took: 31 * time.Millisecond})
	m.Update(hostMsg{host: host, took: 2 * time.Millisecond})
	return m
}

func populated(width, height int, noColor bool) *Model {
	m := loaded(newStatic(width, height, noColor), sampleVMs(), sampleImages(), sampleHost())
	m.Update(healthMsg{name: "dev", res: api.VMHealthResult{Name: "dev", State: api.VMRunning, Healthy: true,
		Agent: &api.AgentHealth{Status: "ok", Version: "0.1.0", WorkDiskMounted: true}, RTTMillis: 1.4}})
	m.Update(healthMsg{name: "api-server", res: api.VMHealthResult{Name: "api-server", State: api.VMRunning, Error: "agent: connection refused"}})
	m.ops["scratch"] = "starting"
	m.setStatus(levelInfo, "starting scratch…")
	return m
}

func heightFor(width int) int {
	if width >= 200 {
		return 40
	}
	return 24
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./internal/tui -run Golden -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file; rerun with -update if intended.\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// plain renders the model without colors and checks no line is wider than
// the screen and there are exactly height lines.
func plain(t *testing.T, m *Model) string {
	t.Helper()
	out := m.Render()
	if strings.Contains(out, "\x1b[") {
		t.Errorf("NoColor render contains escape sequences: %q", out)
	}
	lines := strings.Split(out, "\n")
	if len(lines) != m.height {
		t.Errorf("render has %d lines, want the screen height %d", len(lines), m.height)
	}
	for i, l := range lines {
		if w := ansi.StringWidth(l); w > m.width {
			t.Errorf("line %d is %d cells wide, screen is %d: %q", i, w, m.width, l)
		}
	}
	return out
}

func TestGoldenViews(t *testing.T) {
	cases := map[string]func(w, h int) *Model{
		"loading": func(w, h int) *Model { return newStatic(w, h, true) },
		"empty": func(w, h int) *Model {
			return loaded(newStatic(w, h, true), nil, nil, sampleHost())
		},
		"connect_error": func(w, h int) *Model {
			m := newStatic(w, h, true)
			m.Update(connectedMsg{took: 5 * time.Second, err: &api.Error{Code: api.CodeFailedPrecondition,
				Message: "bangerd did not start within 5s", Hint: "see ~/.local/state/banger/bangerd.log, or run: banger doctor"}})
			return m
		},
		"capacity_0": func(w, h int) *Model {
			vms := []api.VM{{ID: "00000001", Name: "idle", Image: "debian", VCPUs: 2, MemoryMiB: 1024, DiskBytes: 20 * gib, State: api.VMStopped}}
			return loaded(newStatic(w, h, true), vms, sampleImages(), sampleHost())
		},
		"capacity_50": func(w, h int) *Model {
			vms := []api.VM{{ID: "00000002", Name: "half", Image: "debian", VCPUs: 4, MemoryMiB: 8192, DiskBytes: 200 * gib,
				DiskAllocatedBytes: 125 * gib, State: api.VMRunning, IP: "172.30.0.2", StartedAt: ago(time.Hour)}}
			return loaded(newStatic(w, h, true), vms, sampleImages(), sampleHost())
		},
		"capacity_95": func(w, h int) *Model {
			vms := []api.VM{{ID: "00000003", Name: "full", Image: "debian", VCPUs: 19, MemoryMiB: 19456, DiskBytes: 200 * gib,
				DiskAllocatedBytes: 190 * gib, State: api.VMRunning, IP: "172.30.0.2", StartedAt: ago(time.Hour)}}
			host := api.HostResources{CPUs: 20, MemoryBytes: 20 * gib, FSBytes: 200 * gib}
			return loaded(newStatic(w, h, true), vms, sampleImages(), host)
		},
		"populated": func(w, h int) *Model { return populated(w, h, true) },
	}
	for name, build := range cases {
		for _, w := range []int{80, 120, 200} {
			t.Run(fmt.Sprintf("%s_%d", name, w), func(t *testing.T) {
				checkGolden(t, fmt.Sprintf("%s_%d", name, w), plain(t, build(w, heightFor(w))))
			})
		}
	}
}

func TestGoldenPanes(t *testing.T) {
	t.Run("details_120", func(t *testing.T) {
		m := populated(120, 30, true)
		m.Update(keyPress("enter")) // cursor starts on api-server (sorted first)
		checkGolden(t, "details_120", plain(t, m))
	})
	t.Run("form_errors_80", func(t *testing.T) {
		m := populated(80, 24, true)
		m.Update(keyPress("c"))
		typeText(m, "Bad_Name")
		m.Update(keyPress("tab"))
		typeText(m, "ubuntu")
		m.Update(keyPress("tab"))
		typeText(m, "0")
		m.Update(keyPress("tab"))
		typeText(m, "64")
		m.Update(keyPress("tab"))
		typeText(m, "20X")
		m.Update(keyPress("enter"))
		checkGolden(t, "form_errors_80", plain(t, m))
	})
	t.Run("help_80", func(t *testing.T) {
		m := populated(80, 24, true)
		m.Update(keyPress("?"))
		checkGolden(t, "help_80", plain(t, m))
	})
	t.Run("many_vms_80", func(t *testing.T) {
		m := loaded(newStatic(80, 24, true), manyVMs(1000), sampleImages(), sampleHost())
		for range 30 {
			m.Update(keyPress("j"))
		}
		checkGolden(t, "many_vms_80", plain(t, m))
	})
}

// The colored render is stable: basic ANSI colors, no terminal detection.
func TestGoldenColor(t *testing.T) {
	m := populated(120, 24, false)
	out := m.Render()
	if !strings.Contains(out, "\x1b[") {
		t.Fatal("colored render has no escape sequences")
	}
	checkGolden(t, "populated_color_120", out)
	// Stripped of color it draws the same characters as the NoColor render.
	trim := func(s string) string {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimRight(l, " ")
		}
		return strings.Join(lines, "\n")
	}
	if got, want := trim(ansi.Strip(out)), populated(120, 24, true).Render(); got != want {
		t.Errorf("colored render differs from NoColor render in text:\n%s\n---\n%s", got, want)
	}
}

func manyVMs(n int) []api.VM {
	vms := make([]api.VM, n)
	for i := range vms {
		vms[i] = api.VM{ID: fmt.Sprintf("%08x", i), Name: fmt.Sprintf("vm-%04d", i), Image: "debian", VCPUs: 2, MemoryMiB: 1024,
			DiskBytes: 20 * gib, DiskAllocatedBytes: int64(i) << 20, State: api.VMStopped}
		if i%3 == 0 {
			vms[i].State, vms[i].IP, vms[i].StartedAt = api.VMRunning, fmt.Sprintf("172.30.%d.%d", i/250, i%250+2), ago(time.Duration(i)*time.Minute)
		}
	}
	return vms
}

// Every screen size renders without panicking, never wider than the screen,
// and exactly as tall as the screen once it has room for the layout.
func TestRenderAnySize(t *testing.T) {
	states := map[string]func() *Model{
		"loading":   func() *Model { return newStatic(80, 24, true) },
		"populated": func() *Model { return populated(80, 24, true) },
		"many":      func() *Model { return loaded(newStatic(80, 24, true), manyVMs(300), sampleImages(), sampleHost()) },
		"details":   func() *Model { m := populated(80, 24, true); m.Update(keyPress("enter")); return m },
		"help":      func() *Model { m := populated(80, 24, true); m.Update(keyPress("?")); return m },
		"form": func() *Model {
			m := populated(80, 24, true)
			m.Update(keyPress("c"))
			typeText(m, "X")
			m.Update(keyPress("enter"))
			return m
		},
		"error": func() *Model {
			m := newStatic(80, 24, true)
			m.Update(connectedMsg{err: &api.Error{Message: strings.Repeat("long message ", 20), Hint: "do this"}})
			return m
		},
	}
	for name, build := range states {
		m := build()
		for w := 10; w <= 230; w += 11 {
			for h := 3; h <= 50; h += 4 {
				m.Update(tea.WindowSizeMsg{Width: w, Height: h})
				lines := strings.Split(m.Render(), "\n")
				for i, l := range lines {
					if lw := ansi.StringWidth(l); lw > w {
						t.Fatalf("%s %dx%d: line %d is %d wide: %q", name, w, h, i, lw, l)
					}
				}
				if h >= 24 && len(lines) != h {
					t.Fatalf("%s %dx%d: %d lines", name, w, h, len(lines))
				}
			}
		}
	}
}
