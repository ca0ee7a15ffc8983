package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/client"
	"github.com/banger-dev/banger/internal/e2etest"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/tui/tuitest"
)

// placeholders are what the first frame shows before the daemon answers.
var placeholders = []string{"connecting…", "loading…"}

func hasPlaceholder(screen string) bool {
	for _, p := range placeholders {
		if strings.Contains(screen, p) {
			return true
		}
	}
	return false
}

// tmux drives one private tmux server (its own socket under the
// environment) so tests never touch a user's tmux.
type tmux struct {
	t    *testing.T
	sock string
}

func (x tmux) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := sysexec.Run(ctx, append([]string{"tmux", "-S", x.sock}, args...)...)
	return string(out), err
}

func (x tmux) capture() string {
	out, err := x.run("capture-pane", "-p", "-t", "tui")
	if err != nil {
		return ""
	}
	return out
}

// banger tui in a real terminal (tmux), started with the daemon down: the
// layout with its placeholders comes first, then the VM list once the
// daemon (which the TUI starts) answers; q ends it.
func TestTUIInTmux(t *testing.T) {
	e2etest.Require(t)
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (apt-get install tmux): the terminal test needs it")
	}
	env := newFakeFCEnv(t, "172.30.85.0/24", "bangerc6")
	must(t, env, "vm", "create", "--no-start", "--name", "tuivm")
	must(t, env, "daemon", "stop")

	x := tmux{t: t, sock: filepath.Join(env.Root, "tmux.sock")}
	t.Cleanup(func() { _, _ = x.run("kill-server") })
	argv := env.Argv(filepath.Join(env.Bin, "banger"), "tui", "--poll", "500ms")
	if out, err := x.run(append([]string{"new-session", "-d", "-x", "120", "-y", "40", "-s", "tui"}, argv...)...); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}

	// Capture as fast as tmux answers until the VM list is there; keep
	// every distinct frame.
	var frames []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		f := x.capture()
		if strings.TrimSpace(f) != "" && (len(frames) == 0 || frames[len(frames)-1] != f) {
			frames = append(frames, f)
		}
		if strings.Contains(f, "tuivm") && strings.Contains(f, "connected") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the VM list did not appear within 30s; frames:\n%s", strings.Join(frames, "\n----\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if testing.Verbose() {
		t.Logf("%d frames:\n%s", len(frames), strings.Join(frames, "\n----\n"))
	}
	// The TUI's frames are those with its header; anything before is what
	// the CLI printed before the TUI took the screen.
	var tuiFrames []string
	for _, f := range frames {
		if strings.Contains(f, "q quit") {
			tuiFrames = append(tuiFrames, f)
		}
	}
	if len(tuiFrames) == 0 {
		t.Fatal("no frame with the TUI's header")
	}
	for _, f := range tuiFrames {
		if strings.Contains(f, "starting bangerd") {
			t.Errorf("a status line was printed over the TUI's screen:\n%s", f)
		}
	}
	first := tuiFrames[0]
	for _, want := range []string{"banger", "Images"} {
		if !strings.Contains(first, want) {
			t.Errorf("first frame lacks %q (the full layout):\n%s", want, first)
		}
	}
	if strings.Contains(first, "tuivm") {
		// The daemon won the race with tmux's first capture: the pty
		// history below still proves the placeholder frame came first.
		t.Logf("the daemon answered before tmux's first capture; placeholder checked through the pty history")
	} else if !hasPlaceholder(first) {
		t.Errorf("first frame (before the VM list) shows no placeholder %v:\n%s", placeholders, first)
	}

	if _, err := x.run("send-keys", "-t", "tui", "q"); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); ; {
		if _, err := x.run("has-session", "-t", "tui"); err != nil {
			break // the session ended with the TUI
		}
		if time.Now().After(end) {
			t.Fatalf("q did not end the TUI within 10s; screen:\n%s", x.capture())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The same start in a pty, whose whole output history is kept: the
	// placeholder frame is drawn before the VM list, whoever wins the race.
	must(t, env, "daemon", "stop")
	s, err := tuitest.Start(argv, nil, 120, 40)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.WaitFor(ctx, "tuivm"); err != nil {
		t.Fatal(err)
	}
	screen := s.Screen()
	at := strings.Index(screen, "tuivm")
	if !hasPlaceholder(screen[:at]) {
		t.Errorf("no placeholder %v drawn before the VM list; output:\n%s", placeholders, screen)
	}
	if err := s.Type("q"); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(ctx); err != nil {
		t.Fatalf("TUI did not exit cleanly after q: %v", err)
	}
}

// BenchmarkTUIFirstFrame measures exec of `banger tui` to its first full
// frame (header and the lower pane drawn) in a pty: with the daemon down
// (the frame shows placeholders while the TUI starts the daemon), and with
// the daemon up holding 1,000 VMs (to the frame listing them).
func BenchmarkTUIFirstFrame(b *testing.B) {
	env := newFakeFCEnv(b, "172.30.88.0/22", "bangerc7")
	argv := env.Argv(filepath.Join(env.Bin, "banger"), "tui")

	// open runs the TUI, waits for all of wants and returns the time to the
	// last of them; then, untimed, it waits for the daemon to be connected.
	// (Closed earlier, a TUI still starting the daemon leaves it coming up
	// after the next `daemon stop`, which finds nothing to stop: the next
	// TUI then connects at once and never shows "connecting…".)
	open := func(b *testing.B, wants ...string) time.Duration {
		s, err := tuitest.Start(argv, nil, 120, 40)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var d time.Duration
		for _, w := range wants {
			if d, err = s.WaitFor(ctx, w); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.WaitFor(ctx, "connected"); err != nil {
			b.Fatal(err)
		}
		return d
	}

	b.Run("daemon-down", func(b *testing.B) {
		var total time.Duration
		for b.Loop() {
			b.StopTimer()
			must(b, env, "daemon", "stop")
			b.StartTimer()
			total += open(b, "connecting…", "Images")
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/first-frame")
	})

	b.Run("1000-vms", func(b *testing.B) {
		makeVMs(b, env, 1000)
		must(b, env, "daemon", "start")
		var first, list time.Duration
		for b.Loop() {
			s, err := tuitest.Start(argv, nil, 120, 40)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			f, err1 := s.WaitFor(ctx, "Images")
			l, err2 := s.WaitFor(ctx, "b0000")
			cancel()
			s.Close()
			if err1 != nil || err2 != nil {
				b.Fatal(err1, err2)
			}
			first += f
			list += l
		}
		b.ReportMetric(float64(first.Microseconds())/1000/float64(b.N), "ms/first-frame")
		b.ReportMetric(float64(list.Microseconds())/1000/float64(b.N), "ms/vm-list")
	})
}

// makeVMs records n VMs (b0000...) with --no-start through the daemon's API,
// a few calls at a time.
func makeVMs(b *testing.B, env *e2etest.Env, n int) {
	b.Helper()
	must(b, env, "daemon", "start")
	c := client.New(filepath.Join(env.Root, "run", "bangerd.sock"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	names := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				err := c.Call(ctx, api.MethodVMCreate, api.VMCreateParams{Name: name, NoStart: true}, &api.VM{}, nil)
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("create %s: %w", name, err))
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		names <- fmt.Sprintf("b%04d", i)
	}
	close(names)
	wg.Wait()
	if len(errs) > 0 {
		b.Fatalf("%d of %d creates failed, first: %v", len(errs), n, errs[0])
	}
	if got := len(listVMs(b, env)); got != n {
		b.Fatalf("%d VMs recorded, want %d", got, n)
	}
	b.Logf("recorded %d VMs in %s", n, time.Since(start).Round(time.Millisecond))
}
