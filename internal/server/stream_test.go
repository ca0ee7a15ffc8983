package server

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

// A stream method's connection is joined to the caller's after the 101;
// both directions and the caller's half-close get through.
func TestStreamMethodUpgrades(t *testing.T) {
	s, c, _ := serve(t)
	s.Register("echo.stream", Method(func(ctx context.Context, p struct{ Prefix string }, _ func(api.Progress)) (*Stream, error) {
		if p.Prefix == "" {
			return nil, api.NewError(api.CodeInvalidArgument, "no prefix", "pass one")
		}
		a, b := socketPair(t)
		go func() {
			defer b.Close()
			data, _ := io.ReadAll(b)
			b.Write([]byte(p.Prefix + string(data)))
		}()
		return &Stream{Conn: a}, nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	conn, err := c.Stream(ctx, "echo.stream", map[string]string{"Prefix": "got:"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("hello"))
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "got:hello" {
		t.Errorf("through the stream: %q, %v; want got:hello", got, err)
	}

	// A failing stream method answers the usual error frame.
	_, err = c.Stream(ctx, "echo.stream", map[string]string{})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument || ae.Hint != "pass one" {
		t.Errorf("failed stream call: %v, want the handler's invalid_argument", err)
	}
	// Called without the upgrade, a stream method says how to call it.
	err = c.Call(ctx, "echo.stream", map[string]string{"Prefix": "x"}, nil, nil)
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "stream method") {
		t.Errorf("stream method called as a plain call: %v", err)
	}
}

// Shutdown ends upgraded streams: they are no longer the HTTP server's.
func TestShutdownEndsStreams(t *testing.T) {
	s, c, _ := serve(t)
	s.Register("hold.stream", Method(func(ctx context.Context, _ struct{}, _ func(api.Progress)) (*Stream, error) {
		a, _ := net.Pipe()
		return &Stream{Conn: a}, nil
	}))
	conn, err := c.Stream(context.Background(), "hold.stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s.Shutdown(context.Background())
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("read after shutdown: %v, want EOF", err)
	}
}

// socketPair is two connected Unix sockets (which, unlike net.Pipe, can
// half-close).
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}
