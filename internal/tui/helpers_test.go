package tui

import (
	"context"
	"os/exec"
	"sync"
	"testing"
	"time"

	"charm.land/bubbles/v2/spinner"
	tea "charm.land/bubbletea/v2"

	"github.com/banger-dev/banger/internal/api"
)

// fakeClock is a settable clock; the fake backend advances it to simulate
// how long each daemon call takes.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeBackend stands in for the daemon client. Gates, when set, block the
// matching call until closed; delays advance the clock during the call.
type fakeBackend struct {
	clock *fakeClock

	mu         sync.Mutex
	calls      []string
	connectErr error
	vms        []api.VM
	images     []api.Image
	host       api.HostResources
	health     map[string]api.VMHealthResult
	opErr      error

	vmsGate, imagesGate              chan struct{}
	connectTook, vmsTook, imagesTook time.Duration
	sshCmd                           *exec.Cmd
	execRes                          ExecResult
	created                          []api.VMCreateParams
}

func (f *fakeBackend) record(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

func (f *fakeBackend) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeBackend) called(call string) bool {
	for _, c := range f.Calls() {
		if c == call {
			return true
		}
	}
	return false
}

func (f *fakeBackend) advance(d time.Duration) {
	if f.clock != nil {
		f.clock.Advance(d)
	}
}

func (f *fakeBackend) Connect(ctx context.Context) error {
	f.record("Connect")
	f.advance(f.connectTook)
	return f.connectErr
}

func (f *fakeBackend) ListVMs(ctx context.Context) ([]api.VM, error) {
	f.record("ListVMs")
	if f.vmsGate != nil {
		<-f.vmsGate
	}
	f.advance(f.vmsTook)
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.VM(nil), f.vms...), nil
}

func (f *fakeBackend) ListImages(ctx context.Context) ([]api.Image, error) {
	f.record("ListImages")
	if f.imagesGate != nil {
		<-f.imagesGate
	}
	f.advance(f.imagesTook)
	return append([]api.Image(nil), f.images...), nil
}

func (f *fakeBackend) HostResources(ctx context.Context) (api.HostResources, error) {
	f.record("HostResources")
	return f.host, nil
}

func (f *fakeBackend) Health(ctx context.Context, name string) (api.VMHealthResult, error) {
	f.record("Health " + name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if h, ok := f.health[name]; ok {
		return h, nil
	}
	return api.VMHealthResult{}, &api.Error{Code: api.CodeNotFound, Message: "no VM " + name}
}

func (f *fakeBackend) CreateVM(ctx context.Context, p api.VMCreateParams) (api.VM, error) {
	f.record("CreateVM " + p.Name)
	f.mu.Lock()
	f.created = append(f.created, p)
	f.mu.Unlock()
	return api.VM{Name: p.Name}, f.opErr
}

func (f *fakeBackend) StartVM(ctx context.Context, name string) error {
	f.record("StartVM " + name)
	return f.opErr
}

func (f *fakeBackend) StopVM(ctx context.Context, name string) error {
	f.record("StopVM " + name)
	return f.opErr
}

func (f *fakeBackend) RestartVM(ctx context.Context, name string) error {
	f.record("RestartVM " + name)
	return f.opErr
}

func (f *fakeBackend) SuspendVM(ctx context.Context, name string) error {
	f.record("SuspendVM " + name)
	return f.opErr
}

func (f *fakeBackend) ResumeVM(ctx context.Context, name string) error {
	f.record("ResumeVM " + name)
	return f.opErr
}

func (f *fakeBackend) SnapshotVM(ctx context.Context, name string) (string, error) {
	f.record("SnapshotVM " + name)
	return "snap-1", f.opErr
}

func (f *fakeBackend) CloneVM(ctx context.Context, src, newName string) error {
	f.record("CloneVM " + src + " " + newName)
	return f.opErr
}

func (f *fakeBackend) DeleteVM(ctx context.Context, name string) error {
	f.record("DeleteVM " + name)
	return f.opErr
}

func (f *fakeBackend) SSHCommand(name string) (*exec.Cmd, error) {
	f.record("SSHCommand " + name)
	return f.sshCmd, nil
}

func (f *fakeBackend) Exec(ctx context.Context, name, command string) (ExecResult, error) {
	f.record("Exec " + name + " " + command)
	return f.execRes, f.opErr
}

// harness runs a model's commands the way Bubble Tea does (batches fan out
// concurrently) and feeds the resulting messages back into Update.
type harness struct {
	t    *testing.T
	m    *Model
	msgs chan tea.Msg
}

func newHarness(t *testing.T, b Backend, clock *fakeClock) *harness {
	t.Helper()
	opts := Options{NoColor: true, Poll: time.Hour, Version: "v0.1.0"}
	if clock != nil {
		opts.Now = clock.Now
	}
	m := New(context.Background(), b, opts)
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 30})
	return &harness{t: t, m: m, msgs: make(chan tea.Msg, 64)}
}

// run starts cmd in the background; BatchMsg results fan out further.
func (h *harness) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		msg := cmd()
		if batch, ok := msg.(tea.BatchMsg); ok {
			for _, c := range batch {
				h.run(c)
			}
			return
		}
		if msg != nil {
			h.msgs <- msg
		}
	}()
}

// until feeds incoming messages to Update until one satisfies pred, and
// returns it. Spinner ticks and polls are dropped so nothing loops.
func (h *harness) until(what string, pred func(tea.Msg) bool) tea.Msg {
	h.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case msg := <-h.msgs:
			switch msg.(type) {
			case spinner.TickMsg, pollMsg:
				continue
			}
			_, cmd := h.m.Update(msg)
			h.run(cmd)
			if pred(msg) {
				return msg
			}
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s", what)
			return nil
		}
	}
}

// runSync executes cmd and its batches one leaf at a time, in order, and
// returns the messages (without spinner ticks and polls). Leaf order is the
// order the model put them in its batch, so an injected clock sees the calls
// strictly one after another.
func runSync(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if batch, ok := msg.(tea.BatchMsg); ok {
		var out []tea.Msg
		for _, c := range batch {
			out = append(out, runSync(c)...)
		}
		return out
	}
	switch msg.(type) {
	case nil, spinner.TickMsg, pollMsg:
		return nil
	}
	return []tea.Msg{msg}
}

func keyPress(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(s)
	return tea.KeyPressMsg{Code: r[0], Text: s}
}

// typeText sends one key press per rune.
func typeText(m *Model, s string) {
	for _, r := range s {
		m.Update(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
}
