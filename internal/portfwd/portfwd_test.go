package portfwd

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

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
