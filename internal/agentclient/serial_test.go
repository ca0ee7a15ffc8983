package agentclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/agent"
)

// fakeChardev stands in for QEMU's `-chardev socket,server=on` wired to a
// virtserialport: it accepts host connections on a Unix socket, and the
// guest's "port" is the far end of the current one. With no host connected
// the guest port reads EOF at once, as a real virtio-serial port does.
type fakeChardev struct {
	ln     net.Listener
	guests chan net.Conn

	mu       sync.Mutex
	accepted int
	current  net.Conn
}

func newFakeChardev(t testing.TB) *fakeChardev {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(shortDir(t), "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeChardev{ln: ln, guests: make(chan net.Conn, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.accepted++
			f.mu.Unlock()
			f.guests <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return f
}

func (f *fakeChardev) path() string { return f.ln.Addr().String() }

func (f *fakeChardev) acceptedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted
}

// open is the guest agent's view: the port of the current host connection.
func (f *fakeChardev) open() (io.ReadWriteCloser, error) {
	select {
	case c := <-f.guests:
		f.mu.Lock()
		f.current = c
		f.mu.Unlock()
		return c, nil
	default:
		return noHostPort{}, nil
	}
}

// breakCurrent drops the connection under the running session, as when the
// guest agent dies or QEMU's chardev is reset.
func (f *fakeChardev) breakCurrent() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current != nil {
		f.current.Close()
	}
}

type noHostPort struct{}

func (noHostPort) Read([]byte) (int, error)    { return 0, io.EOF }
func (noHostPort) Write(p []byte) (int, error) { return len(p), nil }
func (noHostPort) Close() error                { return nil }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startGuestAgent runs the real agent serial loop against the fake chardev.
func startGuestAgent(t testing.TB, f *fakeChardev) *lockedBuffer {
	t.Helper()
	logs := &lockedBuffer{}
	srv := agent.NewServer(agentHandler(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = agent.ServeSerial(ctx, srv, agent.SerialConfig{
			Open: f.open, Name: "vport1p1", Logger: log.New(logs, "", 0),
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		})
	}()
	t.Cleanup(func() {
		cancel()
		_ = srv.Close()
		<-done
	})
	return logs
}

func TestSerialSessionEndToEnd(t *testing.T) {
	f := newFakeChardev(t)
	startGuestAgent(t, f)
	s := NewSerialSession(f.path())
	defer s.Close()
	c := Client{Dial: s.Dial}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	h, rtt, err := c.Health(ctx)
	if err != nil {
		t.Fatalf("Health over serial: %v", err)
	}
	if h.Status != "ok" || h.BootID != testBootID || !h.WorkDiskMounted || rtt <= 0 {
		t.Errorf("health = %+v rtt %v", h, rtt)
	}
	if info, err := c.Info(ctx); err != nil || info.MemAvailBytes != 600*1024 {
		t.Errorf("Info = %+v, %v", info, err)
	}
	// Concurrent callers share the one chardev connection.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, _, err := c.Health(ctx); err != nil {
				t.Errorf("concurrent Health: %v", err)
			}
		})
	}
	wg.Wait()
	if n := f.acceptedCount(); n != 1 {
		t.Errorf("chardev accepted %d connections, want 1 shared session", n)
	}
}

func TestSerialSessionHostReconnects(t *testing.T) {
	f := newFakeChardev(t)
	logs := startGuestAgent(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	first := NewSerialSession(f.path())
	if _, _, err := (Client{Dial: first.Dial}).Health(ctx); err != nil {
		t.Fatalf("first Health: %v", err)
	}
	// The daemon restarts: its session goes away, a new one comes.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Dial(ctx); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("Dial after Close = %v, want ErrSessionClosed", err)
	}
	second := NewSerialSession(f.path())
	defer second.Close()
	if _, _, err := (Client{Dial: second.Dial}).Health(ctx); err != nil {
		t.Fatalf("Health after the host reconnected: %v\nagent log:\n%s", err, logs)
	}
	if n := f.acceptedCount(); n != 2 {
		t.Errorf("chardev accepted %d connections, want 2", n)
	}
	if !strings.Contains(logs.String(), "session ended") || strings.Count(logs.String(), "host connected;") != 2 {
		t.Errorf("agent log does not show the disconnect and the second session:\n%s", logs)
	}
}

func TestSerialSessionReconnectsLazilyAfterBreak(t *testing.T) {
	f := newFakeChardev(t)
	startGuestAgent(t, f)
	s := NewSerialSession(f.path())
	defer s.Close()
	c := Client{Dial: s.Dial}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, _, err := c.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	f.breakCurrent()
	// The same SerialSession notices the broken session and reconnects.
	if _, _, err := c.Health(ctx); err != nil {
		t.Fatalf("Health after the connection broke: %v", err)
	}
	if n := f.acceptedCount(); n != 2 {
		t.Errorf("chardev accepted %d connections, want 2 (one reconnect)", n)
	}
}

func TestSerialSessionWaitsForLateAgent(t *testing.T) {
	f := newFakeChardev(t)
	s := NewSerialSession(f.path())
	defer s.Close()
	// The guest is still booting: its agent opens the port later.
	time.AfterFunc(300*time.Millisecond, func() { startGuestAgent(t, f) })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	h, err := WaitHealthy(ctx, Client{Dial: s.Dial}, 100*time.Millisecond)
	if err != nil || h.Status != "ok" {
		t.Fatalf("WaitHealthy = %+v, %v", h, err)
	}
}

func TestSerialSessionNoAgentNamesSocketAndFailure(t *testing.T) {
	f := newFakeChardev(t) // QEMU accepts, but nothing in the guest answers
	s := NewSerialSession(f.path())
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := s.Dial(ctx)
	if err == nil {
		t.Fatal("Dial succeeded with no agent")
	}
	for _, want := range []string{f.path(), "last failure", "ping agent"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap the deadline", err)
	}
}

func TestSerialSessionMissingSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "absent.sock")
	s := NewSerialSession(path)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := s.Dial(ctx)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("error = %v; want it to name %s and the missing file", err, path)
	}
}
