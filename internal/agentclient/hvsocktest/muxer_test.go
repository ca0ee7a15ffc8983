package hvsocktest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hvs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "v.sock")
}

// handshake sends line and returns the muxer's reply line ("" when it
// closed the connection instead).
func handshake(t *testing.T, path, line string) (string, net.Conn) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	reply, err := r.ReadString('\n')
	if err == io.EOF && reply == "" {
		return "", c
	}
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return reply, c
}

func TestMuxerFollowsFirecrackerProtocol(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "agent") })
	m := NewMuxer(t, socketPath(t), h, RefuseFirst(1))

	if reply, _ := handshake(t, m.Path(), "CONNECT 1024\n"); reply != "" {
		t.Errorf("first (refused) connection got %q, want a close", reply)
	}
	if reply, _ := handshake(t, m.Path(), "CONNECT 1025\n"); reply != "" {
		t.Errorf("CONNECT to a port nobody listens on got %q, want a close", reply)
	}
	if reply, _ := handshake(t, m.Path(), "HELLO\n"); reply != "" {
		t.Errorf("malformed CONNECT got %q, want a close", reply)
	}
	for i := range 2 {
		reply, c := handshake(t, m.Path(), "CONNECT 1024\n")
		want := []string{"OK 1073741824\n", "OK 1073741825\n"}[i]
		if reply != want {
			t.Fatalf("reply %d = %q, want %q", i, reply, want)
		}
		// The stream is now the fake guest's HTTP server.
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := io.ReadAll(c)
		if err != nil || !strings.HasPrefix(string(resp), "HTTP/1.1 200") || !strings.HasSuffix(string(resp), "agent") {
			t.Errorf("response = %q, %v", resp, err)
		}
	}
	if m.Connects() != 5 || m.Served() != 2 {
		t.Errorf("Connects = %d, Served = %d; want 5 and 2", m.Connects(), m.Served())
	}

	m.SetListening(false)
	if reply, _ := handshake(t, m.Path(), "CONNECT 1024\n"); reply != "" {
		t.Errorf("CONNECT while not listening got %q, want a close", reply)
	}
}

func TestMuxerCloseEndsHeldConnections(t *testing.T) {
	m := NewMuxer(t, socketPath(t), http.NotFoundHandler())
	c, err := net.Dial("unix", m.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	go func() { m.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close waited for a client that never sent CONNECT")
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after Close")
	}
}
