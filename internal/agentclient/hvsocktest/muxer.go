// Package hvsocktest is a wire-level fake of Firecracker's hybrid vsock
// muxer, for tests that cannot run Firecracker: it listens on the vsock Unix
// socket, answers "CONNECT <port>\n" the way Firecracker v1.16 does, and
// hands accepted streams to an in-process HTTP handler standing in for the
// guest agent.
package hvsocktest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FirstHostPort is the first local port Firecracker reports in "OK <port>";
// each further connection gets the next one.
const FirstHostPort = 1 << 30

// Option adjusts a Muxer.
type Option func(*Muxer)

// WithPort sets the vsock port the fake guest listens on (default 1024).
// CONNECTs to any other port are closed without a reply, as Firecracker
// does when no guest socket listens there.
func WithPort(port uint32) Option { return func(m *Muxer) { m.port = port } }

// RefuseFirst closes the first n connections after reading CONNECT, without
// replying: what Firecracker does while the guest agent is still booting.
func RefuseFirst(n int) Option { return func(m *Muxer) { m.refuse = n } }

// WithReply makes the muxer answer CONNECT with line (sent verbatim) and
// then close, to test how clients handle a wrong reply.
func WithReply(line string) Option { return func(m *Muxer) { m.reply = line } }

// Muxer is a running fake. Close it, or let the test's cleanup do so.
type Muxer struct {
	path    string
	port    uint32
	refuse  int
	reply   string
	ln      net.Listener
	srv     *http.Server
	streams *chanListener

	mu        sync.Mutex
	listening bool
	connects  int
	served    int
	nextPort  uint32
	conns     map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// NewMuxer listens on udsPath and serves handler on accepted streams until
// the test ends.
func NewMuxer(t testing.TB, udsPath string, handler http.Handler, opts ...Option) *Muxer {
	t.Helper()
	m := &Muxer{path: udsPath, port: 1024, listening: true, nextPort: FirstHostPort, conns: map[net.Conn]struct{}{}}
	for _, o := range opts {
		o(m)
	}
	ln, err := net.Listen("unix", udsPath)
	if err != nil {
		t.Fatalf("hvsocktest: listen on %s: %v", udsPath, err)
	}
	m.ln = ln
	m.streams = newChanListener(ln.Addr())
	m.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	m.wg.Go(func() { _ = m.srv.Serve(m.streams) })
	m.wg.Go(m.acceptLoop)
	t.Cleanup(m.Close)
	return m
}

// Path is the Unix socket the muxer listens on.
func (m *Muxer) Path() string { return m.path }

// SetListening says whether the fake guest listens on its port. While it
// does not, every CONNECT is closed without a reply.
func (m *Muxer) SetListening(on bool) {
	m.mu.Lock()
	m.listening = on
	m.mu.Unlock()
}

// Connects counts the CONNECT requests received.
func (m *Muxer) Connects() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connects
}

// Served counts the connections answered with OK and handed to the handler.
func (m *Muxer) Served() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.served
}

// Close stops the muxer and closes every connection it holds.
func (m *Muxer) Close() {
	m.ln.Close()
	m.srv.Close()
	m.mu.Lock()
	m.closed = true
	for c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

func (m *Muxer) acceptLoop() {
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			conn.Close()
			return
		}
		m.conns[conn] = struct{}{}
		m.mu.Unlock()
		m.wg.Go(func() {
			m.handshake(conn)
			m.mu.Lock()
			delete(m.conns, conn)
			m.mu.Unlock()
		})
	}
}

func (m *Muxer) handshake(conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	// Read byte by byte, like the real muxer, so that nothing the client
	// sends after the CONNECT line is swallowed by a buffer.
	line, err := readLine(conn)
	if err != nil {
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	portText, ok := strings.CutPrefix(line, "CONNECT ")
	port, perr := strconv.ParseUint(portText, 10, 32)

	m.mu.Lock()
	m.connects++
	refuse := m.refuse > 0
	if refuse {
		m.refuse--
	}
	accept := ok && perr == nil && uint32(port) == m.port && m.listening && !refuse
	hostPort := m.nextPort
	if accept && m.reply == "" {
		m.nextPort++
		m.served++
	}
	m.mu.Unlock()

	if !accept {
		conn.Close()
		return
	}
	if m.reply != "" {
		_, _ = conn.Write([]byte(m.reply))
		conn.Close()
		return
	}
	if _, err := fmt.Fprintf(conn, "OK %d\n", hostPort); err != nil {
		conn.Close()
		return
	}
	if !m.streams.deliver(conn) {
		conn.Close()
	}
}

func readLine(conn net.Conn) (string, error) {
	var line []byte
	var b [1]byte
	for len(line) < 64 {
		if _, err := io.ReadFull(conn, b[:]); err != nil {
			return "", err
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
	return "", errors.New("CONNECT line too long")
}

// chanListener is a net.Listener fed with already-accepted connections.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closer sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closer.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
