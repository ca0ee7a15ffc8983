package daemon

import (
	"bytes"
	"context"
	"log"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/config"
	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/hostnet/nettest"
	"github.com/banger-dev/banger/internal/mapdns/mapdnstest"
	"github.com/banger-dev/banger/internal/privhelper"
	"github.com/banger-dev/banger/internal/sysexec"
)

// lockedBuffer is a log the daemon's goroutines write while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A non-default dns_domain, with DNS on port 53 and the real helper (root:
// its verbs in process) in a network namespace: VM names answer under that
// domain only (on the bridge address, from a guest), the ssh config names
// hosts in it, no DNS redirect is installed (53 needs none), and with no
// systemd-resolved on the host the registration is reported as skipped,
// not as a failure; doctor's vm-names check asks for the domain's name.
func TestNonDefaultDNSDomainOnPort53(t *testing.T) {
	if _, err := sysexec.LookPath("dig"); err != nil {
		t.Skip("needs dig (apt-get install dnsutils)")
	}
	ns := nettest.New(t)
	guest := nettest.New(t)
	ns.Exec(t, "ip", "link", "add", "gb0", "type", "veth", "peer", "name", "eth0", "netns", guest.Name)
	guest.Exec(t, "ip", "addr", "add", "172.30.0.2/24", "dev", "eth0")
	guest.Exec(t, "ip", "link", "set", "eth0", "up")

	logs := &lockedBuffer{}
	d := newTestDaemon(t, func(c *config.Config) {
		c.DNSDomain = "lab.test"
		c.DNSPort, c.DNSFallbackPort = 53, 10053
		c.Subnet = netip.MustParsePrefix("172.30.0.0/24")
	})
	d.Log = log.New(logs, "", 0)
	d.VMs.Runtime, d.VMs.Preflight = nopRuntime{}, nil
	d.Helper = privhelper.New(privhelper.DefaultPath)
	d.Runtime.Helper = d.Helper
	seedImage(t, d)
	ctx := context.Background()
	gw := netip.MustParseAddr("172.30.0.1")
	ns.Do(t, func() error { return d.Helper.BridgeEnsure(ctx, "banger0", d.Config.Subnet) })
	ns.Exec(t, "ip", "link", "set", "gb0", "master", "banger0", "up")
	ns.Do(t, func() error { d.startDNS(gw); return nil })
	if port := d.dnsPort(); port != 53 {
		t.Fatalf("bangerd serves DNS on port %d, want 53:\n%s", port, logs)
	}

	vm, err := d.VMs.Create(ctx, api.VMCreateParams{Name: "dev"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitDig(t, guest, "172.30.0.1:53", "dev.lab.test.", "NOERROR", vm.IP)
	waitDig(t, ns, "172.30.0.1:53", "dev.lab.test.", "NOERROR", vm.IP)
	// Not the default domain: banger answers only for its own.
	if status, addrs := mapdnstest.Dig(ns, "172.30.0.1:53", "dev.vm."); status == "NOERROR" && len(addrs) > 0 {
		t.Errorf("dev.vm. answered %v although dns_domain is lab.test", addrs)
	}
	if rules := ns.Exec(t, "nft", "list", "ruleset"); strings.Contains(rules, "banger-dns") {
		t.Errorf("a DNS redirect with DNS on port 53:\n%s", rules)
	}
	// The helper's policy allows only the domains the administrator listed
	// (default "vm"): registering lab.test is refused, and the log says
	// where to allow it.
	if out := logs.String(); !strings.Contains(out, `domain "lab.test" refused`) || !strings.Contains(out, "dns_domains") {
		t.Errorf("registering lab.test with the default helper policy: want the refusal naming dns_domains in the log:\n%s", out)
	}
	if !hostnet.ResolvedRunning() {
		wantCheck(t, dnsChecks(t, d, ns)["vm-names"], api.CheckWarn, "<name>.lab.test does not resolve from the host")
	} else {
		wantCheck(t, dnsChecks(t, d, ns)["vm-names"], api.CheckOK, "dev.lab.test. is "+vm.IP)
	}
	if _, err := d.writeSSHConfig(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(d.Layout.SSHConfig()); err != nil || !strings.Contains(string(b), "dev.lab.test") {
		t.Errorf("the ssh config does not name dev.lab.test (%v):\n%s", err, b)
	}

	// The default domain, which the policy allows: with no systemd-resolved
	// on the host the registration is skipped, and logged as skipped.
	d.stopDNS()
	d.Config.DNSDomain = "vm"
	before := len(logs.String())
	ns.Do(t, func() error { d.startDNS(gw); return nil })
	waitDig(t, guest, "172.30.0.1:53", "dev.vm.", "NOERROR", vm.IP)
	if out := logs.String()[before:]; !hostnet.ResolvedRunning() &&
		(!strings.Contains(out, "systemd-resolved is not running") || !strings.Contains(out, "skipped")) {
		t.Errorf("with no systemd-resolved the registration must be logged as skipped:\n%s", out)
	}
	d.stopDNS()
	ns.Do(t, func() error {
		_, err := d.hostTeardown(ctx, api.HostTeardownParams{Force: true}, nil)
		return err
	})
}
