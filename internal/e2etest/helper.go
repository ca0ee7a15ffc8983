package e2etest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/miekg/dns"

	"github.com/banger-dev/banger/internal/envknob"
)

// helperEnv selects a helper mode when the test binary is re-executed inside
// a namespace the test made (a listener on the "internet" side, a DNS query
// from the environment's side). Go tests cannot enter a network namespace
// for one goroutine safely, so they run a copy of themselves there.
const helperEnv = string(envknob.E2EHelper)

// RunHelper runs the requested helper and exits when the binary was started
// as one; otherwise it returns at once. Call it from an init function of the
// test package, before the testing framework parses flags.
func RunHelper() {
	mode := envknob.E2EHelper.Value()
	if mode == "" {
		return
	}
	var err error
	switch mode {
	case "http-echo":
		err = httpEcho(os.Args[1])
	case "dns":
		err = dnsQuery(os.Args[1], os.Args[2])
	default:
		err = fmt.Errorf("unknown %s mode %q", helperEnv, mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e helper %s: %v\n", mode, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// httpEcho listens on addr, prints the bound address, and answers every
// request with the client's IP as the server saw it.
func httpEcho(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprint(w, host)
	}))
}

// dnsQuery asks server for name's A records and prints a DNSAnswer as JSON.
func dnsQuery(server, name string) error {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	var (
		r   *dns.Msg
		err error
	)
	for attempt := 0; attempt < 3; attempt++ {
		if r, _, err = c.Exchange(m, server); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	a := DNSAnswer{Rcode: dns.RcodeToString[r.Rcode], Addrs: []string{}}
	for _, rr := range r.Answer {
		if rec, ok := rr.(*dns.A); ok {
			a.Addrs = append(a.Addrs, rec.A.String())
		}
	}
	return json.NewEncoder(os.Stdout).Encode(a)
}
