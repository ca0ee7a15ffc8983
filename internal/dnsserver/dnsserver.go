// Package dnsserver answers `<name>.<domain>` (default domain "vm") for the
// VMs of one daemon and forwards every other query to the host's upstream
// resolvers. bangerd runs it on the bridge address so guests and (through
// systemd-resolved's per-link routing) the host resolve VM names.
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Config configures a Server.
type Config struct {
	Domain string // zone served; default "vm"
	// Lookup maps a VM name (without the domain, lowercased) to its address.
	// It is called once per query in the zone and must be safe for
	// concurrent use.
	Lookup func(name string) (netip.Addr, bool)
	// Upstreams are resolvers ("ip" or "ip:port") for names outside the
	// zone. nil means the nameservers of /etc/resolv.conf (minus our own
	// address); an empty non-nil slice disables forwarding (REFUSED).
	Upstreams []string
	TTL       time.Duration // answer TTL; default 5s (addresses change on VM recreate)
	// ForwardTimeout bounds each upstream attempt; default 2s.
	ForwardTimeout time.Duration
	// ResolvConf is read for default upstreams; default /etc/resolv.conf.
	ResolvConf string
}

// Server is a small authoritative + forwarding DNS server.
type Server struct {
	cfg  Config
	zone string // "vm."
	ttl  uint32

	mu        sync.Mutex
	addr      string
	upstreams []string
	ready     chan struct{}
	pc        net.PacketConn
	ln        net.Listener
	serving   bool
}

// New returns a server; call ListenAndServe to run it.
func New(cfg Config) *Server {
	if cfg.Domain == "" {
		cfg.Domain = "vm"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Second
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = 2 * time.Second
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	if cfg.Lookup == nil {
		cfg.Lookup = func(string) (netip.Addr, bool) { return netip.Addr{}, false }
	}
	return &Server{
		cfg:   cfg,
		zone:  dns.Fqdn(strings.ToLower(strings.Trim(cfg.Domain, "."))),
		ttl:   uint32(max(cfg.TTL/time.Second, 1)),
		ready: make(chan struct{}),
	}
}

// Addr is the address the server listens on (UDP and TCP share the port),
// "" until it is listening.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Ready is closed once the server listens on both UDP and TCP.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Upstreams returns the resolvers queries are forwarded to (after listening).
func (s *Server) Upstreams() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.upstreams...)
}

// ListenAndServe listens on addr ("ip:port"; port 0 picks a free one) over UDP
// and TCP and serves until ctx is done. It returns nil after a clean stop.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if err := s.Listen(addr); err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Listen binds UDP and TCP on addr (the same port for both) without serving
// yet, so bind errors (address not on the bridge yet, port 53 taken) come back
// at once.
func (s *Server) Listen(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pc != nil {
		return errors.New("dnsserver: already listening")
	}
	pc, ln, err := listenBoth(addr)
	if err != nil {
		return err
	}
	ups, err := s.resolveUpstreams(pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		pc.Close()
		ln.Close()
		return err
	}
	s.pc, s.ln = pc, ln
	s.addr, s.upstreams = pc.LocalAddr().String(), ups
	return nil
}

// Serve answers queries on the sockets Listen bound until ctx is done. It
// returns only once both sockets are closed and no query is being answered,
// so a server started right after on the same address gets the port (bangerd
// restarts DNS that way, and would otherwise fall back to another port).
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	pc, ln, bound := s.pc, s.ln, s.addr
	if pc == nil || s.serving {
		s.mu.Unlock()
		return errors.New("dnsserver: Serve needs one successful Listen first")
	}
	s.serving = true
	s.mu.Unlock()

	udp := run(&dns.Server{PacketConn: pc, Handler: s})
	tcp := run(&dns.Server{Listener: ln, Handler: s})
	go func() {
		for _, r := range []*running{udp, tcp} {
			select {
			case <-r.started:
			case <-r.done:
				return // failed before serving: never ready
			}
		}
		close(s.ready)
	}()

	var err error
	select {
	case <-ctx.Done():
	case <-udp.done:
		err = fmt.Errorf("dns server on udp %s stopped: %w", bound, orStopped(udp.err))
	case <-tcp.done:
		err = fmt.Errorf("dns server on tcp %s stopped: %w", bound, orStopped(tcp.err))
	}
	udp.stop()
	tcp.stop()
	return err
}

// running is one miekg/dns server serving a socket in its own goroutine.
type running struct {
	srv     *dns.Server
	started chan struct{} // closed once it serves
	done    chan struct{} // closed once ActivateAndServe returned
	err     error         // what it returned; read after done
}

func run(srv *dns.Server) *running {
	r := &running{srv: srv, started: make(chan struct{}), done: make(chan struct{})}
	srv.NotifyStartedFunc = func() { close(r.started) }
	go func() { r.err = srv.ActivateAndServe(); close(r.done) }()
	return r
}

// stop shuts the server down and returns once its socket is closed. Both
// waits matter. A server not serving yet refuses Shutdown ("server not
// started") and would start afterwards and keep the port: so wait for it to
// serve first. And miekg/dns closes a UDP socket twice, at the end of its
// serve loop and in Shutdown: the second Close returns at once, before the
// first has released the port, so Shutdown returning is not enough: wait
// for ActivateAndServe to return too (its own Close is done by then).
func (r *running) stop() {
	select {
	case <-r.started:
	case <-r.done:
		return
	}
	// Queries still being answered get this long to finish before the
	// socket is closed under them (their replies are then lost).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.srv.ShutdownContext(ctx)
	<-r.done
}

// orStopped names a serve loop's nil return when nothing asked it to stop.
func orStopped(err error) error {
	if err == nil {
		return errors.New("serving ended unexpectedly")
	}
	return err
}

// listenBoth binds UDP and TCP on the same port (retrying when port 0 picked
// a UDP port whose TCP twin is taken).
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns listen address %q: %w (use ip:port, e.g. 172.30.0.1:53)", addr, err)
	}
	for range 10 {
		// net's errors name the network, address and cause ("listen udp
		// 172.30.0.1:53: bind: address already in use"): pass them on as
		// they are.
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(p)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" {
			return nil, nil, err
		}
	}
	return nil, nil, fmt.Errorf("dns: no port free for both udp and tcp on %s", host)
}

func (s *Server) resolveUpstreams(self *net.UDPAddr) ([]string, error) {
	src := s.cfg.Upstreams
	if src == nil {
		cc, err := dns.ClientConfigFromFile(s.cfg.ResolvConf)
		if err != nil {
			// No resolv.conf: serve the zone, refuse the rest.
			return []string{}, nil
		}
		for _, ns := range cc.Servers {
			src = append(src, net.JoinHostPort(ns, cc.Port))
		}
	}
	var out []string
	for _, u := range src {
		hp := u
		if _, _, err := net.SplitHostPort(u); err != nil {
			hp = net.JoinHostPort(u, "53")
		}
		ap, err := netip.ParseAddrPort(hp)
		if err != nil {
			return nil, fmt.Errorf("dns upstream %q is not an ip or ip:port", u)
		}
		if selfAP := self.AddrPort(); ap.Addr().Unmap() == selfAP.Addr().Unmap() && ap.Port() == selfAP.Port() {
			continue // never forward to ourselves
		}
		if ap.Port() == uint16(self.Port) && self.IP.IsUnspecified() && (ap.Addr().IsLoopback() || ap.Addr().IsUnspecified()) {
			continue
		}
		out = append(out, hp)
	}
	return out, nil
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	if r.Opcode != dns.OpcodeQuery {
		m.SetRcode(r, dns.RcodeNotImplemented)
		_ = w.WriteMsg(m)
		return
	}
	if len(r.Question) != 1 {
		m.SetRcode(r, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	if name == s.zone || strings.HasSuffix(name, "."+s.zone) {
		s.answerZone(w, r, q, name)
		return
	}
	s.forward(w, r)
}

func (s *Server) answerZone(w dns.ResponseWriter, r *dns.Msg, q dns.Question, name string) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(m)
		return
	}
	if name == s.zone {
		if q.Qtype == dns.TypeSOA {
			m.Answer = append(m.Answer, s.soa())
		} else {
			m.Ns = append(m.Ns, s.soa())
		}
		_ = w.WriteMsg(m)
		return
	}
	addr, ok := s.cfg.Lookup(name[:len(name)-len(s.zone)-1])
	switch {
	case !ok || !addr.Is4():
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, s.soa())
	case q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY:
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: s.ttl},
			A:   addr.AsSlice(),
		})
	default: // the name exists but has no record of this type (AAAA, MX...)
		m.Ns = append(m.Ns, s.soa())
	}
	_ = w.WriteMsg(m)
}

func (s *Server) soa() dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: s.zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.ttl},
		Ns:      "ns." + s.zone,
		Mbox:    "hostmaster." + s.zone,
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  s.ttl,
	}
}

// forward relays a query outside the zone to the upstreams in order, over the
// transport the client used; SERVFAIL when all fail, REFUSED when forwarding
// is off or the client did not ask for recursion.
func (s *Server) forward(w dns.ResponseWriter, r *dns.Msg) {
	s.mu.Lock()
	ups := s.upstreams
	s.mu.Unlock()
	if len(ups) == 0 || !r.RecursionDesired {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
		_ = w.WriteMsg(m)
		return
	}
	network := "udp"
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	c := &dns.Client{Net: network, Timeout: s.cfg.ForwardTimeout}
	if o := r.IsEdns0(); o != nil && network == "udp" {
		c.UDPSize = o.UDPSize()
	}
	for _, up := range ups {
		resp, _, err := c.Exchange(r, up)
		if err != nil || resp == nil {
			continue
		}
		resp.Id = r.Id
		_ = w.WriteMsg(resp)
		return
	}
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeServerFailure)
	_ = w.WriteMsg(m)
}
