// Package portfwd forwards TCP connections accepted on the host to a
// guest port, each over its own stream: straight to the guest's address
// when the port accepts there, else through the guest agent. The CLI's
// `vm port-forward` and bangerd's persistent forwards both use it.
package portfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/splice"
)

// Parse reads [HOST_ADDR:]HOST_PORT[:GUEST_PORT]: "8080" forwards
// 127.0.0.1:8080 to guest port 8080, "8080:80" to guest port 80, and
// "0.0.0.0:8080:80" or "[::1]:8080:80" bind that address.
func Parse(s string) (api.PortForward, error) {
	bad := func(why string) (api.PortForward, error) {
		return api.PortForward{}, api.NewError(api.CodeInvalidArgument,
			fmt.Sprintf("port forward %q: %s", s, why), "use [HOST_ADDR:]HOST_PORT[:GUEST_PORT], e.g. 8080:80 or 0.0.0.0:8080:80")
	}
	addr := "127.0.0.1"
	rest := s
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]:")
		if end < 0 {
			return bad("an IPv6 address in brackets must be followed by :PORT")
		}
		addr, rest = s[1:end], s[end+2:]
	}
	parts := strings.Split(rest, ":")
	if len(parts) == 3 && !strings.HasPrefix(s, "[") {
		addr, parts = parts[0], parts[1:]
	}
	if len(parts) < 1 || len(parts) > 2 {
		return bad("too many parts")
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return bad(fmt.Sprintf("%q is not an IP address", addr))
	}
	port := func(p string) (int, error) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return 0, fmt.Errorf("%q is not a port 1-65535", p)
		}
		return n, nil
	}
	host, err := port(parts[0])
	if err != nil {
		return bad(err.Error())
	}
	guest := host
	if len(parts) == 2 {
		if guest, err = port(parts[1]); err != nil {
			return bad(err.Error())
		}
	}
	return api.PortForward{HostAddr: ip.String(), HostPort: host, GuestPort: guest}, nil
}

// String is the forward as Parse reads it.
func String(f api.PortForward) string {
	return net.JoinHostPort(f.HostAddr, strconv.Itoa(f.HostPort)) + ":" + strconv.Itoa(f.GuestPort)
}

// Listen binds the forward's host side; a port in use is a clear error.
func Listen(f api.PortForward) (net.Listener, error) {
	addr := net.JoinHostPort(f.HostAddr, strconv.Itoa(f.HostPort))
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, api.NewError(api.CodeConflict, fmt.Sprintf("host port %s is in use", addr),
			fmt.Sprintf("pick a free one: %d:%d with another first number (ss -ltnp shows who holds %d)", f.HostPort+1, f.GuestPort, f.HostPort))
	}
	if err != nil {
		return nil, api.NewError(api.CodeFailedPrecondition, fmt.Sprintf("listen on %s: %v", addr, err),
			"ports below 1024 need privileges; binding an address needs it on this host")
	}
	return ln, nil
}

// Dialer opens a stream to a guest port.
type Dialer func(ctx context.Context, guestPort int) (io.ReadWriteCloser, error)

// DirectTimeout bounds the attempt to reach a guest port over the VM
// network before the agent is used instead. A port that is closed or bound
// to the guest's loopback answers at once (a reset), so this only delays
// connections to a guest whose firewall drops them.
const DirectTimeout = time.Second

// DirectFirst reaches the guest port over the VM network at guestIP when it
// accepts there, and through agent otherwise: a listener bound to the
// guest's loopback, a guest without network, a firewall. The direct path is
// the fast one (under QEMU TCG the agent's virtio-serial channel moves about
// a tenth of what virtio-net does); the agent path is what works always.
// A direct connection reaches the guest from the bridge's address, not
// from the guest's 127.0.0.1. An empty guestIP means agent only.
func DirectFirst(guestIP string, agent Dialer) Dialer {
	return func(ctx context.Context, guestPort int) (io.ReadWriteCloser, error) {
		if guestIP != "" {
			d := net.Dialer{Timeout: DirectTimeout}
			conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(guestIP, strconv.Itoa(guestPort)))
			if err == nil {
				return conn, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
		return agent(ctx, guestPort)
	}
}

// Serve accepts on ln until ctx ends or ln is closed, joining each
// connection to a new stream to guestPort. Failures of one connection are
// passed to logf and end only that connection. It returns once every
// connection it accepted is done.
func Serve(ctx context.Context, ln net.Listener, guestPort int, dial Dialer, logf func(string, ...any)) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	open := map[io.Closer]struct{}{}
	defer func() {
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer conn.Close()
			guest, err := dial(ctx, guestPort)
			if err != nil {
				logf("forward %s -> guest port %d: %v", ln.Addr(), guestPort, err)
				return
			}
			defer guest.Close()
			mu.Lock()
			open[conn], open[guest] = struct{}{}, struct{}{}
			mu.Unlock()
			var g io.ReadWriter = rw{guest}
			if tc, ok := guest.(*net.TCPConn); ok {
				g = tc // the direct path: TCP to TCP, which io.Copy splices in the kernel
			}
			splice.Join(conn, g)
			mu.Lock()
			delete(open, conn)
			delete(open, guest)
			mu.Unlock()
		})
	}
}

// rw passes CloseWrite on when the stream has it.
type rw struct{ io.ReadWriteCloser }

func (r rw) CloseWrite() error {
	if cw, ok := r.ReadWriteCloser.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return r.Close()
}
