package tui

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/tui/tuitest"
)

// gatedBackend's Connect waits until a file exists, so the test decides
// when the daemon "comes up".
type gatedBackend struct {
	*fakeBackend
	gate string
}

func (g gatedBackend) Connect(ctx context.Context) error {
	for {
		if _, err := os.Stat(g.gate); err == nil {
			return g.fakeBackend.Connect(ctx)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestRunHelperProcess is not a test: it is the TUI that TestRunInPTY runs
// in a pseudo-terminal by re-executing the test binary.
func TestRunHelperProcess(t *testing.T) {
	if !envknob.TUIHelper.On() {
		t.Skip("helper process for TestRunInPTY")
	}
	b := gatedBackend{
		fakeBackend: &fakeBackend{vms: sampleVMs(), images: sampleImages(), host: sampleHost()},
		gate:        envknob.TUIGate.Value(),
	}
	_, noColor := os.LookupEnv("NO_COLOR")
	err := Run(context.Background(), b, Options{Version: "v9.9.9", NoColor: noColor, Poll: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	os.Exit(0)
}

func helperArgv() []string { return []string{os.Args[0], "-test.run=^TestRunHelperProcess$"} }

// The real program in a real pty: the first frame with its placeholders is
// on screen while Connect is still blocked, the VM list follows once the
// daemon is up, and q quits cleanly.
func TestRunInPTY(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the TUI in a pty; skipped with -short")
	}
	gate := filepath.Join(t.TempDir(), "daemon-up")
	s, err := tuitest.Start(helperArgv(), []string{"BANGER_TUI_HELPER=1", "BANGER_TUI_GATE=" + gate}, 100, 30)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, want := range []string{"v9.9.9", "connecting…", "Images"} {
		if _, err := s.WaitFor(ctx, want); err != nil {
			t.Fatalf("first frame: %v", err)
		}
	}
	if strings.Contains(s.Screen(), "api-server") {
		t.Fatal("VMs shown before the daemon was up")
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"api-server", "void-musl", "connected"} {
		if _, err := s.WaitFor(ctx, want); err != nil {
			t.Fatalf("after connect: %v", err)
		}
	}
	if err := s.Type("q"); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(ctx); err != nil {
		t.Fatalf("TUI did not exit cleanly after q: %v\nscreen:\n%s", err, s.Screen())
	}
}

// NO_COLOR removes colors from the real terminal output; without it the
// same screen is colored (so this test can tell the difference).
func TestRunInPTYNoColor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the TUI in a pty; skipped with -short")
	}
	gate := filepath.Join(t.TempDir(), "daemon-up")
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	green := "\x1b[32m" // "connected", "running", "healthy" and the low bars
	for _, noColor := range []bool{false, true} {
		env := []string{"BANGER_TUI_HELPER=1", "BANGER_TUI_GATE=" + gate}
		if noColor {
			env = append(env, "NO_COLOR=1")
		}
		s, err := tuitest.Start(helperArgv(), env, 120, 30)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err = s.WaitFor(ctx, "void-musl")
		cancel()
		out := string(s.Output())
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if colored := strings.Contains(out, green); colored == noColor {
			t.Errorf("NO_COLOR=%v: output contains green = %v", noColor, colored)
		}
		if !strings.Contains(out, "█") || !strings.Contains(out, "░") {
			t.Errorf("NO_COLOR=%v: capacity bars not drawn", noColor)
		}
	}
}

// BenchmarkExecToFirstFrame measures process start to the first frame of
// the TUI in a pty (with the test binary as the program; the lead's
// benchmark uses the real banger binary through tuitest the same way).
func BenchmarkExecToFirstFrame(b *testing.B) {
	gate := filepath.Join(b.TempDir(), "never")
	var total time.Duration
	for b.Loop() {
		s, err := tuitest.Start(helperArgv(), []string{"BANGER_TUI_HELPER=1", "BANGER_TUI_GATE=" + gate}, 120, 30)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		d, err := s.WaitFor(ctx, "connecting…")
		cancel()
		s.Close()
		if err != nil {
			b.Fatal(err)
		}
		total += d
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/first-frame")
}

func BenchmarkViewFirstFrame1000VMs(b *testing.B) {
	for _, w := range []int{80, 200} {
		b.Run(fmt.Sprintf("width%d", w), func(b *testing.B) {
			m := loaded(newStatic(w, 50, false), manyVMs(1000), sampleImages(), sampleHost())
			for b.Loop() {
				_ = m.View()
			}
		})
	}
}
