package dnsserver

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/hostnet/nettest"
	"github.com/miekg/dns"
)

// TestServesGuestsOnTheBridge runs the server where bangerd runs it: on the
// bridge address (port 53) in a "host" namespace, queried from a "guest"
// namespace attached to the bridge. The upstream resolver is a test server
// on the real loopback: forwarding sockets are opened by the server's worker
// threads, which are outside the test namespaces.
func TestServesGuestsOnTheBridge(t *testing.T) {
	host, guest := nettest.New(t), nettest.New(t)
	host.Do(t, func() error { return hostnet.EnsureBridge("banger0", netip.MustParsePrefix("172.30.0.0/24")) })
	host.Exec(t, "ip", "link", "add", "gb0", "type", "veth", "peer", "name", "eth0", "netns", guest.Name)
	host.Exec(t, "ip", "link", "set", "gb0", "master", "banger0", "up")
	guest.Exec(t, "ip", "addr", "add", "172.30.0.2/24", "dev", "eth0")
	guest.Exec(t, "ip", "link", "set", "eth0", "up")

	up := upstream(t)
	s := New(Config{Lookup: mapLookup(vms), Upstreams: []string{up}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Bind inside the host namespace: the sockets stay there once created.
	host.Do(t, func() error { return s.Listen("172.30.0.1:53") })
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-s.Ready()

	ask := func(name string) (r *dns.Msg) {
		guest.Do(t, func() (err error) {
			m := new(dns.Msg)
			m.SetQuestion(name, dns.TypeA)
			r, _, err = (&dns.Client{Timeout: 3 * time.Second}).Exchange(m, "172.30.0.1:53")
			return err
		})
		return r
	}
	if r := ask("dev.vm."); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "172.30.0.2" {
		t.Errorf("dev.vm from the guest: %v", r)
	}
	if r := ask("nope.vm."); r.Rcode != dns.RcodeNameError {
		t.Errorf("nope.vm from the guest: %s", dns.RcodeToString[r.Rcode])
	}
	if r := ask("example.test."); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
		t.Errorf("forwarded example.test from the guest: %v", r)
	}
}
