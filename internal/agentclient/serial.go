package agentclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// ErrSessionClosed is returned by Dial after Close.
var ErrSessionClosed = errors.New("agent serial session closed")

// SerialSession carries agent connections over a QEMU virtio-serial chardev
// socket: one Unix connection, multiplexed with yamux (host = client). QEMU's
// chardev accepts one client at a time, so keep one SerialSession per VM and
// share it; it is safe for concurrent use.
type SerialSession struct {
	sockPath string

	mu     sync.Mutex
	sess   *yamux.Session
	closed bool
}

// NewSerialSession returns a session for the chardev socket at sockPath. It
// connects lazily, on the first Dial.
func NewSerialSession(sockPath string) *SerialSession {
	return &SerialSession{sockPath: sockPath}
}

// Dial opens a new stream to the guest agent. Before handing out a stream it
// pings the agent over the session, so a session to a guest that is not
// listening yet, or that went away, is replaced rather than used: the first
// Dial after a guest reboot reconnects. It retries until ctx ends.
func (s *SerialSession) Dial(ctx context.Context) (net.Conn, error) {
	backoff := 50 * time.Millisecond
	// Under TCG a booting guest can be slow to answer: give each new
	// session longer before giving up on it.
	pingTimeout := time.Second
	attempts := 0
	var lastErr error
	for {
		attempts++
		stream, err := s.tryDial(ctx, pingTimeout)
		if err == nil {
			return stream, nil
		}
		if errors.Is(err, ErrSessionClosed) {
			return nil, err
		}
		if ctx.Err() == nil || lastErr == nil {
			lastErr = err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("agent over virtio-serial socket %s: no answer after %d attempts (%w); last failure: %v",
				s.sockPath, attempts, ctx.Err(), lastErr)
		case <-t.C:
		}
		backoff = min(backoff*2, time.Second)
		pingTimeout = min(pingTimeout*2, 8*time.Second)
	}
}

func (s *SerialSession) tryDial(ctx context.Context, pingTimeout time.Duration) (net.Conn, error) {
	sess, err := s.session(ctx)
	if err != nil {
		return nil, err
	}
	if err := ping(ctx, sess, pingTimeout); err != nil {
		// A caller giving up says nothing about the session, which
		// others may be using; an unanswered ping does.
		if ctx.Err() == nil {
			s.drop(sess)
		}
		return nil, err
	}
	stream, err := sess.Open()
	if err != nil {
		s.drop(sess)
		return nil, fmt.Errorf("open yamux stream: %w", err)
	}
	return stream, nil
}

// session returns the live session, connecting if there is none.
func (s *SerialSession) session(ctx context.Context) (*yamux.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrSessionClosed
	}
	if s.sess != nil && !s.sess.IsClosed() {
		return s.sess, nil
	}
	s.sess = nil
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", s.sockPath)
	if err != nil {
		return nil, err
	}
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard // failures surface as Dial errors
	cfg.ConnectionWriteTimeout = 10 * time.Second
	cfg.KeepAliveInterval = 15 * time.Second
	sess, err := yamux.Client(conn, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("start yamux session: %w", err)
	}
	s.sess = sess
	return sess, nil
}

// drop closes sess if it is still the current session.
func (s *SerialSession) drop(sess *yamux.Session) {
	s.mu.Lock()
	if s.sess == sess {
		s.sess = nil
	}
	s.mu.Unlock()
	sess.Close()
}

// ping waits for the agent's yamux server to answer a ping.
func ping(ctx context.Context, sess *yamux.Session, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() {
		_, err := sess.Ping()
		done <- err
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("ping agent: %w", err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("ping agent: no answer within %s (guest agent not running yet?)", timeout)
	case <-ctx.Done():
		return fmt.Errorf("ping agent: %w", ctx.Err())
	}
}

// Close ends the session and every stream on it. Dial fails afterwards.
func (s *SerialSession) Close() error {
	s.mu.Lock()
	sess := s.sess
	s.sess, s.closed = nil, true
	s.mu.Unlock()
	if sess != nil {
		return sess.Close()
	}
	return nil
}
