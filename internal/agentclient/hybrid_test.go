package agentclient

import (
	"reflect"

	"context"
	"errors"
	"github.com/banger-dev/banger/internal/agentproto"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/agentclient/hvsocktest"
	"github.com/banger-dev/banger/internal/api"
)

func hybridClient(path string, port uint32) Client {
	return Client{Dial: func(ctx context.Context) (net.Conn, error) { return DialHybridVsock(ctx, path, port) }}
}

func TestHybridVsockHealthAndInfo(t *testing.T) {
	m := hvsocktest.NewMuxer(t, filepath.Join(shortDir(t), "v.sock"), agentHandler(t))
	c := hybridClient(m.Path(), 1024)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	h, rtt, err := c.Health(ctx)
	if err != nil {
		t.Fatalf("Health: %v", err)
	}
	want := api.AgentHealth{Status: "ok", Version: "test-1", Hostname: "devbox", UptimeSeconds: 42.5, BootID: testBootID, WorkDiskMounted: true,
		Protocol: agentproto.Version, Features: agentproto.Features}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("health = %+v\nwant     %+v", h, want)
	}
	if rtt <= 0 {
		t.Errorf("rtt = %v, want > 0", rtt)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Load1 != 1 || info.MemTotalBytes != 1000*1024 || info.MemAvailBytes != 600*1024 || info.RootTotalBytes == 0 {
		t.Errorf("info = %+v", info)
	}
	if m.Served() != 2 {
		t.Errorf("muxer served %d connections, want 2 (one per request)", m.Served())
	}
}

func TestHybridVsockRetriesWhileGuestNotListening(t *testing.T) {
	m := hvsocktest.NewMuxer(t, filepath.Join(shortDir(t), "v.sock"), agentHandler(t), hvsocktest.RefuseFirst(3))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := hybridClient(m.Path(), 1024).Health(ctx); err != nil {
		t.Fatalf("Health after refused connections: %v", err)
	}
	if m.Connects() != 4 {
		t.Errorf("muxer saw %d CONNECTs, want 4 (3 refused, then success)", m.Connects())
	}
}

func TestHybridVsockWrongReplyFailsAtOnce(t *testing.T) {
	m := hvsocktest.NewMuxer(t, filepath.Join(shortDir(t), "v.sock"), agentHandler(t), hvsocktest.WithReply("HTTP/1.1 400 Bad Request\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := DialHybridVsock(ctx, m.Path(), 1024)
	if err == nil {
		t.Fatal("dial succeeded against a wrong reply")
	}
	for _, want := range []string{m.Path(), "port 1024", `want "OK <port>"`, "HTTP/1.1 400 Bad Request"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || m.Connects() != 1 {
		t.Errorf("retried a protocol error: %d CONNECTs, err %v", m.Connects(), err)
	}
}

func TestHybridVsockGivesUpAtDeadlineNamingLastFailure(t *testing.T) {
	// The guest listens on another port, so every CONNECT 1024 is closed.
	m := hvsocktest.NewMuxer(t, filepath.Join(shortDir(t), "v.sock"), agentHandler(t), hvsocktest.WithPort(2000))
	// The deadline passes once two attempts were refused, not after a fixed
	// time: on a loaded machine the first dial alone can outlast any short
	// timeout, and the last failure would then be the dial's.
	ctx := newManualDeadline()
	go func() {
		for m.Connects() < 2 {
			time.Sleep(5 * time.Millisecond)
		}
		ctx.expire()
	}()
	_, err := DialHybridVsock(ctx, m.Path(), 1024)
	if err == nil {
		t.Fatal("dial succeeded with no guest listener")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap the deadline", err)
	}
	for _, want := range []string{m.Path(), "port 1024", "last failure", "closed before OK"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if m.Connects() < 2 {
		t.Errorf("only %d attempts before the deadline", m.Connects())
	}
}

func TestHybridVsockMissingSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "absent.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := DialHybridVsock(ctx, path, 1024)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("error = %v; want it to name %s and the missing file", err, path)
	}
}

// The handshake must not read past "OK <port>\n": what follows is the
// guest's stream.
func TestHybridVsockKeepsBytesAfterOK(t *testing.T) {
	path := filepath.Join(shortDir(t), "v.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, len("CONNECT 1024\n"))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "CONNECT 1024\n" {
			return
		}
		_, _ = c.Write([]byte("OK 1073741824\nHELLO"))
		time.Sleep(100 * time.Millisecond)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := DialHybridVsock(ctx, path, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make([]byte, 5)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "HELLO" {
		t.Errorf("stream after OK = %q, %v; want HELLO", got, err)
	}
}

func TestWaitHealthyWaitsForAgent(t *testing.T) {
	m := hvsocktest.NewMuxer(t, filepath.Join(shortDir(t), "v.sock"), agentHandler(t))
	m.SetListening(false)
	time.AfterFunc(300*time.Millisecond, func() { m.SetListening(true) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := WaitHealthy(ctx, hybridClient(m.Path(), 1024), 50*time.Millisecond)
	if err != nil || h.BootID != testBootID {
		t.Fatalf("WaitHealthy = %+v, %v", h, err)
	}
	if m.Connects() < 2 {
		t.Errorf("%d CONNECTs: the agent was not listening at first, want retries", m.Connects())
	}
}

func TestWaitHealthyNamesLastFailure(t *testing.T) {
	srvErr := api.NewError(api.CodeInternal, "read /proc/uptime: no such file", "check /proc")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"code":"internal","message":"` + srvErr.Message + `","hint":"check /proc"}`))
	})
	m := hvsocktest.NewMuxer(t, filepath.Join(shortDir(t), "v.sock"), h)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	_, err := WaitHealthy(ctx, hybridClient(m.Path(), 1024), 50*time.Millisecond)
	if err == nil {
		t.Fatal("WaitHealthy succeeded against a failing agent")
	}
	if !strings.Contains(err.Error(), "last failure") || !strings.Contains(err.Error(), srvErr.Message) || !strings.Contains(err.Error(), "500") {
		t.Errorf("error %q does not name the agent's failure", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap the deadline", err)
	}
}

func TestHealthRejectsNotOK(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"status":"degraded","version":"x"}`))
	})
	m := hvsocktest.NewMuxer(t, filepath.Join(shortDir(t), "v.sock"), h)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := hybridClient(m.Path(), 1024).Health(ctx)
	if err == nil || !strings.Contains(err.Error(), `"degraded"`) {
		t.Errorf("Health = %v, want an error naming the status", err)
	}
}

func TestClientTypedAgentError(t *testing.T) {
	m := hvsocktest.NewMuxer(t, filepath.Join(shortDir(t), "v.sock"), agentHandler(t))
	c := hybridClient(m.Path(), 1024)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Reuse get to reach an unknown endpoint: the agent's 404 JSON error
	// must come back as a typed *api.Error.
	err := c.get(ctx, "/nope", new(struct{}))
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Code != api.CodeNotFound {
		t.Errorf("error = %v, want a wrapped *api.Error with code not_found", err)
	}
}

// manualDeadline is a context whose deadline passes when the test says so:
// Err is then context.DeadlineExceeded, as for a real deadline.
type manualDeadline struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func newManualDeadline() *manualDeadline {
	return &manualDeadline{Context: context.Background(), done: make(chan struct{})}
}

func (c *manualDeadline) expire()               { c.once.Do(func() { close(c.done) }) }
func (c *manualDeadline) Done() <-chan struct{} { return c.done }
func (c *manualDeadline) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
