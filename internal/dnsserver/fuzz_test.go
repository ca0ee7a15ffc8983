package dnsserver

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// recorder is a dns.ResponseWriter that keeps what the handler wrote.
type recorder struct {
	local net.Addr
	msgs  []*dns.Msg
	raw   int
}

func (r *recorder) LocalAddr() net.Addr { return r.local }
func (r *recorder) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(172, 30, 0, 2), Port: 5353}
}
func (r *recorder) WriteMsg(m *dns.Msg) error    { r.msgs = append(r.msgs, m); return nil }
func (r *recorder) Write(b []byte) (int, error)  { r.raw++; return len(b), nil }
func (r *recorder) Close() error                 { return nil }
func (r *recorder) TsigStatus() error            { return nil }
func (r *recorder) TsigTimersOnly(bool)          {}
func (r *recorder) Hijack()                      {}
func (r *recorder) msg(t *testing.T) *dns.Msg    { t.Helper(); return r.msgs[0] }
func packQuery(name string, qtype uint16) []byte { return mustPack(queryMsg(name, qtype)) }

func queryMsg(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	return m
}

func mustPack(m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzServeDNS feeds any packet a guest (or anything on the bridge) can send
// to the handler, decoded as the server decodes it. Whatever the packet:
// exactly one reply, to its id, that packs into a plain 512-byte UDP answer;
// addresses only for names in the zone that Lookup knows, only as A records
// of the asked name; REFUSED for every other name (forwarding is off here,
// so nothing may be invented for it); NOTIMP and FORMERR where due.
func FuzzServeDNS(f *testing.F) {
	vms := map[string]netip.Addr{
		"dev":  netip.MustParseAddr("172.30.0.2"),
		"web":  netip.MustParseAddr("172.30.0.3"),
		"six6": netip.MustParseAddr("fd00::6"), // not IPv4: never answered
	}
	var looked []string
	s := New(Config{Domain: "vm", Lookup: func(name string) (netip.Addr, bool) {
		looked = append(looked, name)
		a, ok := vms[name]
		return a, ok
	}, Upstreams: []string{}})

	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"dev.vm.", dns.TypeA}, {"DEV.Vm.", dns.TypeA}, {"dev.vm.", dns.TypeAAAA}, {"dev.vm.", dns.TypeANY},
		{"nope.vm.", dns.TypeA}, {"vm.", dns.TypeSOA}, {"vm.", dns.TypeNS}, {"six6.vm.", dns.TypeA},
		{"a.dev.vm.", dns.TypeA}, {"example.com.", dns.TypeA}, {"devvm.", dns.TypeA}, {".", dns.TypeNS},
	} {
		f.Add(packQuery(q.name, q.qtype))
	}
	two := queryMsg("dev.vm.", dns.TypeA)
	two.Question = append(two.Question, dns.Question{Name: "web.vm.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	f.Add(mustPack(two))
	notify := queryMsg("dev.vm.", dns.TypeA)
	notify.Opcode = dns.OpcodeNotify
	f.Add(mustPack(notify))
	chaos := queryMsg("dev.vm.", dns.TypeA)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	f.Add(mustPack(chaos))
	edns := queryMsg("dev.vm.", dns.TypeA)
	edns.SetEdns0(4096, true)
	f.Add(mustPack(edns))
	f.Add([]byte{})
	f.Add([]byte{0x12, 0x34, 0x01, 0x00, 0x00, 0x01})

	f.Fuzz(func(t *testing.T, packet []byte) {
		q := new(dns.Msg)
		if err := q.Unpack(packet); err != nil {
			return // the server answers undecodable packets itself (FORMERR) or drops them
		}
		looked = looked[:0]
		w := &recorder{local: &net.UDPAddr{IP: net.IPv4(172, 30, 0, 1), Port: 53}}
		s.ServeDNS(w, q)
		if len(w.msgs) != 1 || w.raw != 0 {
			t.Fatalf("%d replies (%d raw writes), want exactly one\nquery: %v", len(w.msgs), w.raw, q)
		}
		r := w.msg(t)
		wire, err := r.Pack()
		if err != nil {
			t.Fatalf("reply does not pack: %v\n%v", err, r)
		}
		if len(wire) > dns.MinMsgSize {
			t.Fatalf("reply is %d bytes: more than a plain UDP answer holds\n%v", len(wire), r)
		}
		if r.Id != q.Id || !r.Response {
			t.Fatalf("reply id %d response %v, want id %d and the response bit", r.Id, r.Response, q.Id)
		}
		switch {
		case q.Opcode != dns.OpcodeQuery:
			if r.Rcode != dns.RcodeNotImplemented || len(r.Answer) != 0 {
				t.Fatalf("opcode %d: rcode %d, %d answers; want NOTIMP and none", q.Opcode, r.Rcode, len(r.Answer))
			}
			return
		case len(q.Question) != 1:
			if r.Rcode != dns.RcodeFormatError || len(r.Answer) != 0 {
				t.Fatalf("%d questions: rcode %d, %d answers; want FORMERR and none", len(q.Question), r.Rcode, len(r.Answer))
			}
			return
		}
		question := q.Question[0]
		if len(r.Question) != 1 || r.Question[0] != question {
			t.Fatalf("reply question %v, want the query's %v", r.Question, question)
		}
		name := strings.ToLower(question.Name)
		if name != "vm." && !strings.HasSuffix(name, ".vm.") {
			if r.Rcode != dns.RcodeRefused || len(r.Answer)+len(r.Ns)+len(r.Extra) != 0 || len(looked) != 0 {
				t.Fatalf("%s is outside the zone and forwarding is off: rcode %d, answer %v, ns %v, lookups %q; want a bare REFUSED",
					question.Name, r.Rcode, r.Answer, r.Ns, looked)
			}
			return
		}
		if !r.Authoritative {
			t.Fatalf("in-zone reply for %s is not authoritative", question.Name)
		}
		if len(r.Answer) > 1 {
			t.Fatalf("%d answers for %s, want at most one", len(r.Answer), question.Name)
		}
		label := strings.TrimSuffix(name, ".vm.")
		addr, known := vms[label]
		known = known && name != "vm." && addr.Is4()
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				if !known || rr.Hdr.Name != question.Name || !rr.A.Equal(net.IP(addr.AsSlice())) {
					t.Fatalf("answered %v for %s (known %v, address %s)", rr, question.Name, known, addr)
				}
				if question.Qclass != dns.ClassINET && question.Qclass != dns.ClassANY {
					t.Fatalf("answered class %d", question.Qclass)
				}
			case *dns.SOA:
				if name != "vm." || question.Qtype != dns.TypeSOA {
					t.Fatalf("SOA in the answer of %s type %d", question.Name, question.Qtype)
				}
			default:
				t.Fatalf("answered a record banger never serves: %v", rr)
			}
		}
		classOK := question.Qclass == dns.ClassINET || question.Qclass == dns.ClassANY
		if known && classOK && (question.Qtype == dns.TypeA || question.Qtype == dns.TypeANY) && len(r.Answer) != 1 {
			t.Fatalf("no address for the known VM %s (type %d): rcode %d", question.Name, question.Qtype, r.Rcode)
		}
		if classOK && name != "vm." && !known && r.Rcode != dns.RcodeNameError {
			t.Fatalf("unknown name %s: rcode %d, want NXDOMAIN", question.Name, r.Rcode)
		}
	})
}
