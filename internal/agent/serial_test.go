package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// eofPort is a virtio-serial port with no host connected: reads end at once.
type eofPort struct{}

func (eofPort) Read([]byte) (int, error)    { return 0, nil }
func (eofPort) Write(p []byte) (int, error) { return len(p), nil }
func (eofPort) Close() error                { return nil }

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeSerialBacksOffWhileNoHost(t *testing.T) {
	var opens atomic.Int32
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	srv := NewServer(http.NotFoundHandler(), nil)
	err := ServeSerial(ctx, srv, SerialConfig{
		Open:       func() (io.ReadWriteCloser, error) { opens.Add(1); return eofPort{}, nil },
		Name:       "/dev/vport1p1",
		Logger:     log.New(&logs, "", 0),
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("ServeSerial = %v, want nil when ctx ends", err)
	}
	// A loop without backoff would reopen many thousands of times.
	if n := opens.Load(); n < 2 || n > 30 {
		t.Errorf("port opened %d times in 500ms with 20-50ms backoff; want a handful", n)
	}
	if c := strings.Count(logs.String(), "no host connected yet"); c != 1 {
		t.Errorf("'no host' logged %d times, want once:\n%s", c, logs.String())
	}
}

func TestServeSerialLogsOpenFailureOnceAndRetries(t *testing.T) {
	var opens atomic.Int32
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_ = ServeSerial(ctx, NewServer(http.NotFoundHandler(), nil), SerialConfig{
		Open: func() (io.ReadWriteCloser, error) {
			opens.Add(1)
			return nil, errors.New("open /dev/vport1p1: no such device")
		},
		Name:       "/dev/vport1p1",
		Logger:     log.New(&logs, "", 0),
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	})
	if opens.Load() < 2 {
		t.Errorf("opened %d times, want retries", opens.Load())
	}
	if c := strings.Count(logs.String(), "no such device"); c != 1 {
		t.Errorf("open failure logged %d times, want once:\n%s", c, logs.String())
	}
}

// pipePorts hands out the guest ends of host connections, and a port with
// no host (EOF) when none is waiting: how a virtio-serial port behaves.
type pipePorts struct{ guests chan net.Conn }

func (p pipePorts) open() (io.ReadWriteCloser, error) {
	select {
	case c := <-p.guests:
		return c, nil
	default:
		return eofPort{}, nil
	}
}

// connectHost plays the host: a yamux client over a fresh pipe.
func (p pipePorts) connectHost(t *testing.T) (*yamux.Session, net.Conn) {
	t.Helper()
	host, guest := net.Pipe()
	p.guests <- guest
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	sess, err := yamux.Client(host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sess, host
}

func getOverSession(t *testing.T, sess *yamux.Session, path string) (int, string) {
	t.Helper()
	client := &http.Client{
		Transport: &http.Transport{
			DialContext:       func(context.Context, string, string) (net.Conn, error) { return sess.Open() },
			DisableKeepAlives: true,
		},
		Timeout: 5 * time.Second,
	}
	resp, err := client.Get("http://agent" + path)
	if err != nil {
		t.Fatalf("GET %s over yamux: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestServeSerialServesEachHostConnection(t *testing.T) {
	p := newProcTree(t, true)
	ports := pipePorts{guests: make(chan net.Conn, 1)}
	var logs syncBuffer
	srv := NewServer(p.handler(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeSerial(ctx, srv, SerialConfig{
			Open: ports.open, Name: "/dev/vport1p1", Logger: log.New(&logs, "", 0),
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		})
	}()

	for round := 1; round <= 3; round++ {
		sess, host := ports.connectHost(t)
		status, body := getOverSession(t, sess, "/healthz")
		if status != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
			t.Fatalf("round %d: GET /healthz = %d %s", round, status, body)
		}
		// Two streams at once on one session.
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				if status, body := getOverSession(t, sess, "/v1/info"); status != http.StatusOK {
					t.Errorf("round %d: GET /v1/info = %d %s", round, status, body)
				}
			})
		}
		wg.Wait()
		// The host goes away: the guest must notice and serve the next one.
		sess.Close()
		host.Close()
	}
	if c := strings.Count(logs.String(), "host connected;"); c != 3 {
		t.Errorf("logged %d connections, want 3:\n%s", c, logs.String())
	}

	// Shutdown ends ServeSerial even while it waits for a host.
	_ = srv.Shutdown(context.Background())
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeSerial = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeSerial did not return after shutdown")
	}
}
