// Package mapdnstest is a stand-in for the external mapdns server
// (github.com/bahlo/mapdns v0.2.0), which the tests cannot fetch. A test
// binary plays it when EnvRun is set (call Main first in TestMain), and then
// behaves as that program does:
//
//   - it takes no arguments and reads mapdns.json from its working
//     directory, once, at start (a missing or broken file: it logs and exits 0);
//   - it serves UDP on :53, all addresses (a taken port: it logs and exits 0);
//   - it answers an A question for a name in the file (or matching a "*."
//     entry) with that address, authoritative, TTL 60, and every other
//     question with an empty NOERROR answer (it has no NXDOMAIN);
//   - it has no reload signal: SIGHUP and SIGTERM end it (Go's defaults),
//     SIGINT shuts it down.
//
// EnvNetns names a network namespace (ip netns) to serve in, so a test never
// binds the host's port 53. Dig asks a server with dig, inside a namespace.
package mapdnstest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"strings"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"

	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/hostnet/nettest"
	"github.com/banger-dev/banger/internal/sysexec"
)

// Environment of the stand-in.
const (
	EnvRun   = string(envknob.MapDNSRun)   // set: this process is mapdns
	EnvNetns = string(envknob.MapDNSNetns) // the named network namespace to serve in
)

// Main runs the stand-in, and exits, when EnvRun is set; otherwise it
// returns at once.
func Main() {
	if envknob.MapDNSRun.Value() == "" {
		return
	}
	os.Exit(run())
}

type entry struct{ A string }

func run() int {
	// The socket is bound on this thread: keep it in the namespace.
	runtime.LockOSThread()
	if name := envknob.MapDNSNetns.Value(); name != "" {
		h, err := netns.GetFromName(name)
		if err == nil {
			err = netns.Set(h)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "mapdns stand-in: enter netns %s: %v\n", name, err)
			return 1
		}
	}
	cfg := map[string]entry{}
	f, err := os.Open("mapdns.json")
	if err == nil {
		err = json.NewDecoder(f).Decode(&cfg)
		f.Close()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "Failed to read config: %v\n", err)
		return 0
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	srv := &dns.Server{Addr: ":53", Net: "udp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		msg := new(dns.Msg)
		msg.SetReply(r)
		msg.Authoritative = true
		name := r.Question[0].Name
		if e, ok := lookup(cfg, name); ok && r.Question[0].Qtype == dns.TypeA && e.A != "" {
			msg.Answer = append(msg.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.ParseIP(e.A),
			})
		}
		_ = w.WriteMsg(msg)
	})}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown()
	}()
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintf(os.Stderr, "Failed to set udp listener: %v\n", err)
	}
	return 0
}

func lookup(cfg map[string]entry, name string) (entry, bool) {
	if e, ok := cfg[name]; ok {
		return e, true
	}
	for k, e := range cfg {
		if strings.HasPrefix(k, "*.") && strings.HasSuffix(name, k[2:]) {
			return e, true
		}
	}
	return entry{}, false
}

var digStatus = regexp.MustCompile(`status: ([A-Z]+)`)

// Dig asks server ("ip:port") inside ns for name's A records with dig (one
// try, one second), returning the status (NOERROR, NXDOMAIN...; "" when
// nothing answered) and the addresses.
func Dig(ns nettest.NS, server, name string) (status string, addrs []string) {
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		return "", nil
	}
	res, err := ns.Runner().Run(context.Background(), sysexec.Cmd{Argv: []string{
		"dig", "+time=1", "+tries=1", "+nocmd", "+noquestion", "+nostats", "-p", port, "@" + host, name, "A"}})
	if err != nil {
		return "", nil
	}
	out := string(res.Stdout)
	if m := digStatus.FindStringSubmatch(out); m != nil {
		status = m[1]
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 5 && !strings.HasPrefix(f[0], ";") && f[3] == "A" {
			addrs = append(addrs, f[4])
		}
	}
	return status, addrs
}
