package portfwd

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]api.PortForward{
		"8080":            {HostAddr: "127.0.0.1", HostPort: 8080, GuestPort: 8080},
		"8080:80":         {HostAddr: "127.0.0.1", HostPort: 8080, GuestPort: 80},
		"0.0.0.0:8080:80": {HostAddr: "0.0.0.0", HostPort: 8080, GuestPort: 80},
		"[::1]:8080:80":   {HostAddr: "::1", HostPort: 8080, GuestPort: 80},
		"[::1]:9000":      {HostAddr: "::1", HostPort: 9000, GuestPort: 9000},
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if back, err := Parse(String(got)); err != nil || back != got {
			t.Errorf("Parse(String(%+v)) = %+v, %v", got, back, err)
		}
	}
	for _, in := range []string{"", "0", "70000", "a:80", "host:1:2", "1:2:3:4", "[::1]8080", "8080:"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}

func TestListenPortInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	_, err = Listen(api.PortForward{HostAddr: "127.0.0.1", HostPort: port, GuestPort: 80})
	var ae *api.Error
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "in use") || !strings.Contains(ae.Message, "127.0.0.1:") {
		t.Errorf("Listen on a held port: %v; want an error naming the port in use", err)
	}
}

// Serve joins each accepted connection to its own dialled stream, both
// ways, passing the client's half-close on.
func TestServeJoinsConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var dialled []int
	dial := func(ctx context.Context, port int) (io.ReadWriteCloser, error) {
		dialled = append(dialled, port)
		a, b := net.Pipe()
		go func() {
			defer b.Close()
			buf := make([]byte, 4)
			n, _ := io.ReadFull(b, buf)
			b.Write([]byte("echo:" + string(buf[:n])))
		}()
		return a, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Serve(ctx, ln, 80, dial, t.Logf); close(done) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ping"))
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "echo:ping" {
		t.Errorf("through the forward: %q, %v", got, err)
	}
	cancel()
	<-done
	if len(dialled) != 1 || dialled[0] != 80 {
		t.Errorf("dialled %v, want one stream to port 80", dialled)
	}
}

// DirectFirst connects straight to a port that accepts on the guest's
// address and goes through the agent for one that does not.
func TestDirectFirst(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("direct"))
			c.Close()
		}
	}()
	open := ln.Addr().(*net.TCPAddr).Port
	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := closedLn.Addr().(*net.TCPAddr).Port
	closedLn.Close()

	var agentPorts []int
	agent := func(ctx context.Context, port int) (io.ReadWriteCloser, error) {
		agentPorts = append(agentPorts, port)
		a, b := net.Pipe()
		go func() { b.Write([]byte("agent")); b.Close() }()
		return a, nil
	}
	read := func(ip string, port int) string {
		t.Helper()
		c, err := DirectFirst(ip, agent)(context.Background(), port)
		if err != nil {
			t.Fatalf("dial %s:%d: %v", ip, port, err)
		}
		defer c.Close()
		got, _ := io.ReadAll(c)
		return string(got)
	}
	if got := read("127.0.0.1", open); got != "direct" || len(agentPorts) != 0 {
		t.Errorf("open port: read %q, agent used for %v; want the direct connection", got, agentPorts)
	}
	if got := read("127.0.0.1", closed); got != "agent" || len(agentPorts) != 1 || agentPorts[0] != closed {
		t.Errorf("closed port: read %q, agent used for %v; want the agent for port %d", got, agentPorts, closed)
	}
	if got := read("", open); got != "agent" || len(agentPorts) != 2 {
		t.Errorf("no guest address: read %q, agent used for %v; want the agent", got, agentPorts)
	}
}

// BenchmarkForwardThroughput: 256 MiB read through Serve's direct path
// (the connection a forward makes when the guest port accepts on the
// guest's address) against the same read straight from the server, both
// on this host's loopback, so the figure is the forwarder's own cost with
// no guest in the way. Reported as fwd-MBps, direct-MBps, fwd/direct.
func BenchmarkForwardThroughput(b *testing.B) {
	const size = 256 << 20
	srv, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	chunk := make([]byte, 1<<20)
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for sent := 0; sent < size; sent += len(chunk) {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
	port := srv.Addr().(*net.TCPAddr).Port
	fwd, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	noAgent := func(context.Context, int) (io.ReadWriteCloser, error) { return nil, errors.New("no agent here") }
	go Serve(ctx, fwd, port, DirectFirst("127.0.0.1", noAgent), b.Logf)
	fetch := func(addr string) float64 {
		start := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		n, err := io.Copy(io.Discard, c)
		if err != nil || n != size {
			b.Fatalf("read %d bytes of %d: %v", n, size, err)
		}
		return time.Since(start).Seconds()
	}
	var fwdS, directS float64
	b.ResetTimer()
	for range b.N {
		fwdS += fetch(fwd.Addr().String())
		directS += fetch(srv.Addr().String())
	}
	mb := float64(size) / 1e6 * float64(b.N)
	b.ReportMetric(mb/fwdS, "fwd-MBps")
	b.ReportMetric(mb/directS, "direct-MBps")
	b.ReportMetric(directS/fwdS, "fwd/direct")
}
