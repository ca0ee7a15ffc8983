package dnsserver

import (
	"context"
	"runtime"
	"testing"

	"github.com/miekg/dns"
)

// bangerd restarts its DNS server on the same address (stopDNS, then
// startDNS for the next bridge) and falls back to another port when the
// first is taken: so once Serve has returned, the port must be free, and a
// new server's Listen on it must succeed.

// freeAddr is an address on loopback whose port was free for UDP and TCP.
func freeAddr(t *testing.T) string {
	t.Helper()
	pc, ln, err := listenBoth("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	pc.Close()
	return pc.LocalAddr().String()
}

// A server stopped before the goroutines serving its sockets ran (the
// daemon stopping right after it started): Serve used to shut down servers
// that had not started yet, which miekg/dns refuses ("server not started"),
// return, and leave them to start afterwards and hold the port for good.
// With one P the goroutines Serve starts cannot run before it has seen the
// cancelled context, which is what makes this deterministic.
func TestServeCancelledAtOnceFreesThePort(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	addr := freeAddr(t)
	for round := range 3 {
		s := New(Config{Upstreams: []string{}})
		if err := s.Listen(addr); err != nil {
			t.Fatalf("round %d: listen on %s after the last server's Serve returned: %v", round, addr, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Serve(ctx); err != nil {
			t.Fatalf("round %d: Serve with a cancelled context: %v", round, err)
		}
	}
}

// A server that answered over UDP and TCP, then stopped, many times on one
// address. miekg/dns closes the UDP socket twice on shutdown, from its serve
// loop and from Shutdown; whichever comes second returns at once, before the
// first has released the port, so Serve returning after Shutdown alone left
// a window where the port was still taken (bangerd then served on its
// fallback port). A race, so many rounds: it fails often, not always, when
// the wait is missing.
func TestRestartOnTheSamePort(t *testing.T) {
	addr := freeAddr(t)
	rounds := 200
	if testing.Short() {
		rounds = 50
	}
	for round := range rounds {
		s := New(Config{Upstreams: []string{}})
		if err := s.Listen(addr); err != nil {
			t.Fatalf("round %d: listen on %s after the last server's Serve returned: %v", round, addr, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		<-s.Ready()
		for _, network := range []string{"udp", "tcp"} {
			if r := query(t, network, addr, "vm.", dns.TypeSOA, false); len(r.Answer) != 1 {
				t.Fatalf("round %d: SOA over %s: %v", round, network, r)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("round %d: Serve: %v", round, err)
		}
	}
}
