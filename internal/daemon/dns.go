package daemon

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/banger-dev/banger/internal/dnsserver"
	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/mapdns"
)

// dnsState is the embedded DNS server for <name>.<domain>: started when
// the bridge first exists, stopped by host teardown.
type dnsState struct {
	mu   sync.Mutex
	srv  *dnsserver.Server
	addr netip.AddrPort // where it serves; zero when it does not
	stop context.CancelFunc
	done chan struct{} // closed once the server stopped and let go of its port
}

// startDNS serves <name>.<domain> on the bridge address once the bridge
// exists: port dns_port, else dns_fallback_port when that is taken (another
// resolver often holds 53). With mapdns configured, port 53 is mapdns's
// (it binds it on every address): bangerd does not compete for it.
func (d *Daemon) startDNS(gw netip.Addr) {
	d.dns.mu.Lock()
	defer d.dns.mu.Unlock()
	if d.dns.srv != nil {
		return
	}
	cfg := d.Config
	srv := dnsserver.New(dnsserver.Config{Domain: cfg.DNSDomain, Lookup: d.lookupVM})
	var lastErr error
	for _, port := range []int{cfg.DNSPort, cfg.DNSFallbackPort} {
		if port <= 0 {
			continue
		}
		if port == mapdns.Port && d.mapdnsConfigured() {
			d.Log.Printf("dns: port %d is left to mapdns (mapdns_data_file is set)", port)
			continue
		}
		if lastErr != nil {
			// Say why dns_port was refused before the fallback hides it
			// (another resolver on it, the bridge without its address).
			d.Log.Printf("dns: cannot serve on %s port %d: %v; trying port %d", gw, cfg.DNSPort, lastErr, port)
		}
		addr := netip.AddrPortFrom(gw, uint16(port))
		if lastErr = srv.Listen(addr.String()); lastErr != nil {
			continue
		}
		serveCtx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		d.dns.srv, d.dns.addr, d.dns.stop, d.dns.done = srv, addr, stop, done
		go func() { _ = srv.Serve(serveCtx); close(done) }()
		d.Log.Printf("dns: serving *.%s on %s", cfg.DNSDomain, addr)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d.guestResolver(ctx, gw, port)
		cancel()
		return
	}
	d.Log.Printf("dns: cannot serve on %s: %v", gw, lastErr)
}

// guestResolver makes the guests' resolver, the bridge address's port 53
// (all a kernel ip= argument and resolv.conf can say), reach bangerd on
// port: nothing to do when it is 53 (then the host can use it too:
// systemd-resolved gets the bridge's domain), else a DNS redirect through
// the helper. Failures are logged; the doctor's dns checks show them.
func (d *Daemon) guestResolver(ctx context.Context, gw netip.Addr, port int) {
	cfg := d.Config
	if port == 53 {
		if err := d.Helper.DNSRedirectRemove(ctx, cfg.Bridge); err != nil {
			d.Log.Printf("dns: remove the guests' DNS redirect of an earlier run: %v", err)
		}
		if err := hostnet.RegisterResolved(ctx, d.Helper, cfg.Bridge, gw, cfg.DNSDomain); err != nil {
			d.Log.Printf("dns: systemd-resolved registration: %v", err)
		}
		return
	}
	if err := d.Helper.DNSRedirect(ctx, cfg.Bridge, port); err != nil {
		d.Log.Printf("dns: guests ask %s port 53 but bangerd serves on port %d, and the redirect failed: %v", gw, port, err)
		return
	}
	d.Log.Printf("dns: guests' queries to %s port 53 are redirected to port %d", gw, port)
}

// stopDNS stops the DNS server (host teardown removes its address).
func (d *Daemon) stopDNS() {
	d.dns.mu.Lock()
	defer d.dns.mu.Unlock()
	if d.dns.stop != nil {
		d.dns.stop()
		// Wait for the port to be free again (Serve returns once its
		// sockets are closed): a DNS server started right after (the next
		// VM's bridge) would otherwise find its own port taken and fall
		// back to dns_fallback_port.
		select {
		case <-d.dns.done:
		case <-time.After(5 * time.Second):
			d.Log.Printf("dns: the server on %s did not stop within 5s", d.dns.addr)
		}
	}
	d.dns.srv, d.dns.addr, d.dns.stop, d.dns.done = nil, netip.AddrPort{}, nil, nil
}

// dnsPort is the port DNS is served on, 0 when it is not.
func (d *Daemon) dnsPort() int {
	d.dns.mu.Lock()
	defer d.dns.mu.Unlock()
	return int(d.dns.addr.Port())
}

// lookupVM answers DNS queries from the VM records.
func (d *Daemon) lookupVM(name string) (netip.Addr, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := d.Store.GetVM(ctx, name)
	if err != nil || v.Name != name {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(v.IP)
	return ip, err == nil
}
