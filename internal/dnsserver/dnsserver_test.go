package dnsserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func mapLookup(m map[string]netip.Addr) func(string) (netip.Addr, bool) {
	return func(name string) (netip.Addr, bool) { a, ok := m[name]; return a, ok }
}

// start runs a server on 127.0.0.1:0 until the test ends.
func start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx, "127.0.0.1:0") }()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("server did not start within 5s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with %v", err)
		}
	})
	return s
}

func query(t testing.TB, network, addr, name string, qtype uint16, rd bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = rd
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %s: %v", network, name, err)
	}
	return r
}

// upstream is a resolver started for the test: it answers example.test.
func upstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		if r.Question[0].Name == "example.test." && r.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR("example.test. 60 IN A 192.0.2.7")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

var vms = map[string]netip.Addr{"dev": netip.MustParseAddr("172.30.0.2"), "web-1": netip.MustParseAddr("172.30.0.3")}

func TestAnswersVMNames(t *testing.T) {
	s := start(t, Config{Lookup: mapLookup(vms), Upstreams: []string{}, TTL: 7 * time.Second})
	for _, network := range []string{"udp", "tcp"} {
		r := query(t, network, s.Addr(), "dev.vm.", dns.TypeA, true)
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
			t.Fatalf("%s dev.vm: %v", network, r)
		}
		a := r.Answer[0].(*dns.A)
		if a.A.String() != "172.30.0.2" || a.Hdr.Ttl != 7 {
			t.Errorf("%s dev.vm answer %v", network, a)
		}
	}
	// Case-insensitive, and the answer echoes the question's case.
	r := query(t, "udp", s.Addr(), "WEB-1.Vm.", dns.TypeA, true)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "172.30.0.3" || r.Answer[0].Header().Name != "WEB-1.Vm." {
		t.Errorf("WEB-1.Vm.: %v", r)
	}
}

func TestNXDomainAndNoData(t *testing.T) {
	s := start(t, Config{Lookup: mapLookup(vms), Upstreams: []string{}})
	for _, name := range []string{"nope.vm.", "x.dev.vm."} {
		r := query(t, "udp", s.Addr(), name, dns.TypeA, true)
		if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("%s: want NXDOMAIN with SOA, got %v", name, r)
		}
	}
	r := query(t, "udp", s.Addr(), "dev.vm.", dns.TypeAAAA, true)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Errorf("AAAA dev.vm: want empty NOERROR with SOA, got %v", r)
	}
	r = query(t, "udp", s.Addr(), "vm.", dns.TypeSOA, true)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("SOA vm.: %v", r)
	}
}

func TestForwarding(t *testing.T) {
	up := upstream(t)
	s := start(t, Config{Lookup: mapLookup(vms), Upstreams: []string{up}})
	r := query(t, "udp", s.Addr(), "example.test.", dns.TypeA, true)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
		t.Errorf("forwarded example.test: %v", r)
	}
	if r := query(t, "udp", s.Addr(), "missing.test.", dns.TypeA, true); r.Rcode != dns.RcodeNameError {
		t.Errorf("forwarded NXDOMAIN became %s", dns.RcodeToString[r.Rcode])
	}
	if r := query(t, "udp", s.Addr(), "example.test.", dns.TypeA, false); r.Rcode != dns.RcodeRefused {
		t.Errorf("query without RD: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	// VM names are never forwarded even with an upstream.
	if r := query(t, "udp", s.Addr(), "nope.vm.", dns.TypeA, true); r.Rcode != dns.RcodeNameError || !r.Authoritative {
		t.Errorf("nope.vm with upstream: %v", r)
	}
}

func TestForwardingFailures(t *testing.T) {
	// A port nobody listens on: every attempt fails.
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	dead := pc.LocalAddr().String()
	pc.Close()
	s := start(t, Config{Upstreams: []string{dead}, ForwardTimeout: 300 * time.Millisecond})
	if r := query(t, "udp", s.Addr(), "example.test.", dns.TypeA, true); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("all upstreams dead: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	off := start(t, Config{Upstreams: []string{}})
	if r := query(t, "udp", off.Addr(), "example.test.", dns.TypeA, true); r.Rcode != dns.RcodeRefused {
		t.Errorf("forwarding off: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
}

func TestDefaultUpstreamsFromResolvConf(t *testing.T) {
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("# test\nnameserver 192.0.2.53\nnameserver 127.0.0.53\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, Config{ResolvConf: rc})
	if got := s.Upstreams(); !slices.Equal(got, []string{"192.0.2.53:53", "127.0.0.53:53"}) {
		t.Errorf("upstreams from resolv.conf = %v", got)
	}
	none := start(t, Config{ResolvConf: filepath.Join(t.TempDir(), "missing")})
	if r := query(t, "udp", none.Addr(), "example.test.", dns.TypeA, true); r.Rcode != dns.RcodeRefused || len(none.Upstreams()) != 0 {
		t.Errorf("no resolv.conf: %s, upstreams %v", dns.RcodeToString[r.Rcode], none.Upstreams())
	}
	// Our own address would loop; it is left out.
	got, err := New(Config{Upstreams: []string{"127.0.0.1:5353", "10.0.0.1"}}).resolveUpstreams(&net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5353})
	if err != nil || !slices.Equal(got, []string{"10.0.0.1:53"}) {
		t.Errorf("own address not excluded: %v, %v", got, err)
	}
	if _, err := New(Config{Upstreams: []string{"dns.google"}}).resolveUpstreams(&net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 53}); err == nil {
		t.Error("a host name upstream was accepted")
	}
}

// BenchmarkQueryVMName measures `<name>.vm` A query latency over UDP on
// 127.0.0.1 with 1,000 VMs known, reporting p50 and p99.
func BenchmarkQueryVMName(b *testing.B) {
	m := make(map[string]netip.Addr, 1000)
	for i := range 1000 {
		m[fmt.Sprintf("vm%d", i)] = netip.AddrFrom4([4]byte{172, 30, byte(i / 250), byte(2 + i%250)})
	}
	s := start(b, Config{Lookup: mapLookup(m), Upstreams: []string{}})
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	conn, err := c.Dial(s.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		q := new(dns.Msg)
		q.SetQuestion(fmt.Sprintf("vm%d.vm.", i%1000), dns.TypeA)
		t0 := time.Now()
		r, _, err := c.ExchangeWithConn(q, conn)
		lat = append(lat, time.Since(t0))
		if err != nil || len(r.Answer) != 1 {
			b.Fatalf("query %d: %v %v", i, r, err)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
