package hostnet

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/hostnet/nettest"
	"github.com/banger-dev/banger/internal/sysexec"
)

var testRedirect = DNSRedirect{Bridge: "banger0", Gateway: netip.MustParseAddr("172.30.0.1"), Port: 10053}

func TestRenderDNSRedirect(t *testing.T) {
	got, err := RenderDNSRedirectNFT(testRedirect)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "dnsredirect.nft", got)
	var ipt []string
	for _, r := range IptablesDNSRedirectRules(testRedirect) {
		ipt = append(ipt, strings.Join(r, " "))
	}
	golden(t, "dnsredirect-iptables.golden", strings.Join(ipt, "\n")+"\n")
	for _, bad := range []DNSRedirect{
		{Bridge: "eth0", Gateway: testRedirect.Gateway, Port: 10053},
		{Bridge: "banger0", Gateway: netip.MustParseAddr("fd00::1"), Port: 10053},
		{Bridge: "banger0", Gateway: testRedirect.Gateway, Port: 22},
		{Bridge: "banger0", Gateway: testRedirect.Gateway, Port: 70000},
	} {
		if _, err := RenderDNSRedirectNFT(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// udpServe answers every UDP datagram to addr inside ns with reply.
func udpServe(t *testing.T, ns nettest.NS, addr, reply string) {
	t.Helper()
	var pc net.PacketConn
	ns.Do(t, func() (err error) { pc, err = net.ListenPacket("udp", addr); return err })
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(reply), from)
		}
	}()
}

// udpAsk sends a datagram from ns to addr and returns the reply; every
// case below has a server that answers, so the deadline only ends a broken
// run.
func udpAsk(t *testing.T, ns nettest.NS, addr string) string {
	t.Helper()
	var got string
	ns.Do(t, func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("q")); err != nil {
			return err
		}
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		got = string(buf[:n])
		return err
	})
	return got
}

// tcpAsk connects from ns to addr and returns what the server says, or the
// connection error.
func tcpAsk(t *testing.T, ns nettest.NS, addr string) (string, error) {
	t.Helper()
	var got string
	var dialErr error
	ns.Do(t, func() error {
		c, err := (&net.Dialer{Timeout: 10 * time.Second}).Dial("tcp", addr)
		if err != nil {
			dialErr = err
			return nil
		}
		defer c.Close()
		b, err := io.ReadAll(c)
		got, dialErr = string(b), err
		return nil
	})
	return got, dialErr
}

// A guest asking the bridge address's port 53 reaches the port bangerd
// serves on, over UDP and TCP, while another server holds port 53 on every
// address (as mapdns does) and still answers the host; removing the
// redirect gives the guests port 53 again and leaves no banger rules.
func TestDNSRedirectEndToEnd(t *testing.T) {
	nettest.RequireRoot(t)
	for _, tc := range []struct {
		name    string
		hideNFT bool
	}{{name: "nft"}, {name: "iptables", hideNFT: true}} {
		t.Run(tc.name, func(t *testing.T) {
			host, guest := nettest.New(t), nettest.New(t)
			host.Do(t, func() error { return EnsureBridge("banger0", subnet24) })
			host.Exec(t, "ip", "link", "add", "gb0", "type", "veth", "peer", "name", "eth0", "netns", guest.Name)
			host.Exec(t, "ip", "link", "set", "gb0", "master", "banger0", "up")
			guest.Exec(t, "ip", "addr", "add", "172.30.0.2/24", "dev", "eth0")
			guest.Exec(t, "ip", "link", "set", "eth0", "up")

			udpServe(t, host, ":53", "mapdns")
			udpServe(t, host, "172.30.0.1:10053", "bangerd")
			serve(t, host, "172.30.0.1:10053", func(string) string { return "bangerd" })
			if got := udpAsk(t, guest, "172.30.0.1:53"); got != "mapdns" {
				t.Fatalf("before the redirect the guest got %q from port 53", got)
			}

			fw := Firewall{Run: host.Runner(), LookPath: func(name string) (string, error) {
				if tc.hideNFT && name == "nft" {
					return "", errors.New("nft hidden by the test")
				}
				return sysexec.LookPath(name)
			}}
			ctx := context.Background()
			for range 2 { // idempotent
				host.Do(t, func() error { return fw.EnsureDNSRedirect(ctx, testRedirect) })
			}
			if got := udpAsk(t, guest, "172.30.0.1:53"); got != "bangerd" {
				t.Errorf("guest's UDP to port 53 answered by %q, want bangerd", got)
			}
			if got, err := tcpAsk(t, guest, "172.30.0.1:53"); got != "bangerd" {
				t.Errorf("guest's TCP to port 53: %q, %v, want bangerd", got, err)
			}
			if got := udpAsk(t, host, "172.30.0.1:53"); got != "mapdns" {
				t.Errorf("the host's own query to port 53 answered by %q, want the server holding 53", got)
			}
			if tc.hideNFT {
				if n := strings.Count(host.Exec(t, "iptables", "-w", "-t", "nat", "-S", "PREROUTING"), "-j BANGER-DNS-banger0"); n != 1 {
					t.Errorf("%d jumps to BANGER-DNS-banger0 after two ensures, want 1", n)
				}
			}

			host.Do(t, func() error { return fw.RemoveDNSRedirect(ctx, "banger0") })
			if got := udpAsk(t, guest, "172.30.0.1:53"); got != "mapdns" {
				t.Errorf("after removing the redirect the guest got %q from port 53", got)
			}
			rules := host.Exec(t, "nft", "list", "ruleset")
			if strings.Contains(rules, "banger") || strings.Contains(rules, "BANGER") {
				t.Errorf("banger rules left after RemoveDNSRedirect:\n%s", rules)
			}
		})
	}
}
