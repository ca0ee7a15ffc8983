package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/config"
	"github.com/banger-dev/banger/internal/doctor"
	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/hostnet/nettest"
	"github.com/banger-dev/banger/internal/mapdns/mapdnstest"
	"github.com/banger-dev/banger/internal/sysexec"
)

// nopRuntime "boots" VMs without doing anything: the VM service's record
// keeping and hooks run as for real ones.
type nopRuntime struct{}

func (nopRuntime) Provision(context.Context, api.VM, func(api.Progress)) error { return nil }
func (nopRuntime) Start(_ context.Context, v api.VM, _ func(api.Progress)) (api.VM, error) {
	now := time.Now().UTC()
	v.State, v.StartedAt = api.VMRunning, &now
	return v, nil
}
func (nopRuntime) Stop(_ context.Context, v api.VM, _ bool) (api.VM, error) {
	v.State = api.VMStopped
	return v, nil
}
func (nopRuntime) Health(context.Context, api.VM) (api.VMHealthResult, error) {
	return api.VMHealthResult{}, nil
}
func (nopRuntime) Destroy(context.Context, api.VM) error { return nil }
func (nopRuntime) Reconcile(context.Context, []api.VM) ([]api.VM, []string, error) {
	return nil, nil, nil
}
func (nopRuntime) ResizeDisk(context.Context, api.VM, int64) error { return nil }
func (nopRuntime) Alive(api.VM) bool                               { return true }
func (nopRuntime) DialAgent(context.Context, api.VM) (net.Conn, error) {
	return nil, errors.New("nopRuntime boots no guest agent")
}

// patience tells "noticed" from "waited": waits end as soon as their
// condition holds and fail only after this long.
const patience = 20 * time.Second

func waitDig(t *testing.T, ns nettest.NS, server, name, wantStatus string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		status, addrs := mapdnstest.Dig(ns, server, name)
		if status == wantStatus && slices.Equal(addrs, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dig @%s %s: %s %v after %s, want %s %v", server, name, status, addrs, patience, wantStatus, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With mapdns configured, bangerd leaves port 53 to it and runs it: dig
// gets a VM's address from mapdns once it is created and started, nothing
// after it is deleted, and the user's own entries stay byte for byte.
// bangerd's own server answers on the fallback port, and a guest asking the
// bridge address's port 53 (as its resolv.conf says) gets bangerd's answer
// through the DNS redirect: the address, then NXDOMAIN.
//
// The order is that of a daemon restarting with the bridge left from its
// last run: DNS on the bridge first (reconciliation), then mapdns.
func TestMapdnsServesVMs(t *testing.T) {
	if _, err := sysexec.LookPath("dig"); err != nil {
		t.Skip("needs dig (apt-get install dnsutils)")
	}
	ns := nettest.New(t)
	ns.Exec(t, "ip", "link", "add", "banger0", "type", "bridge")
	ns.Exec(t, "ip", "addr", "add", "172.30.0.1/24", "dev", "banger0")
	ns.Exec(t, "ip", "link", "set", "banger0", "up")
	guest := nettest.New(t)
	ns.Exec(t, "ip", "link", "add", "gb0", "type", "veth", "peer", "name", "eth0", "netns", guest.Name)
	ns.Exec(t, "ip", "link", "set", "gb0", "master", "banger0", "up")
	guest.Exec(t, "ip", "addr", "add", "172.30.0.2/24", "dev", "eth0")
	guest.Exec(t, "ip", "link", "set", "eth0", "up")

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "mapdns")
	if data, err := os.ReadFile(self); err != nil || os.WriteFile(bin, data, 0o755) != nil {
		t.Fatalf("copy the stand-in: %v", err)
	}
	t.Setenv(mapdnstest.EnvRun, "1")
	t.Setenv(mapdnstest.EnvNetns, ns.Name)
	dataFile := filepath.Join(t.TempDir(), "mapdns.json")
	mine := "{\n\t\"nas.home.\": {\"A\": \"192.168.1.9\"},\n\t\"*.lab.home.\" : {\n\t\t\"A\": \"192.168.1.10\"\n\t}\n}\n"
	if err := os.WriteFile(dataFile, []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}

	d := newTestDaemon(t, func(c *config.Config) {
		c.MapDNSBin, c.MapDNSDataFile = bin, dataFile
		c.DNSPort, c.DNSFallbackPort = 53, 10053
		c.Subnet = netip.MustParsePrefix("172.30.0.0/24")
	})
	d.VMs.Runtime, d.VMs.Preflight = nopRuntime{}, nil
	d.Helper = &testHelper{fw: &hostnet.Firewall{Run: ns.Runner()}, subnet: d.Config.Subnet}
	seedImage(t, d)
	gw := netip.MustParseAddr("172.30.0.1")
	ns.Do(t, func() error { d.startDNS(gw); return nil })
	ctx := context.Background()
	d.startMapDNS(ctx)

	if port := d.dnsPort(); port != 10053 {
		t.Fatalf("bangerd serves DNS on port %d, want the fallback 10053 (53 is mapdns's)", port)
	}
	const mapdnsAddr, bangerdAddr, guestResolver = "127.0.0.1:53", "172.30.0.1:10053", "172.30.0.1:53"
	waitDig(t, ns, mapdnsAddr, "nas.home.", "NOERROR", "192.168.1.9")

	vm, err := d.VMs.Create(ctx, api.VMCreateParams{Name: "dev"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitDig(t, ns, mapdnsAddr, "dev.vm.", "NOERROR", vm.IP)
	waitDig(t, ns, "172.30.0.1:53", "dev.vm.", "NOERROR", vm.IP) // mapdns holds 53 on every address
	waitDig(t, ns, bangerdAddr, "dev.vm.", "NOERROR", vm.IP)
	waitDig(t, guest, guestResolver, "dev.vm.", "NOERROR", vm.IP)
	if st := d.mapdns.Status(); st.PID == 0 || len(st.Foreign) != 0 {
		t.Errorf("mapdns status %+v", st)
	}
	pid := d.mapdns.Status().PID
	checks := dnsChecks(t, d, ns)
	wantCheck(t, checks["vm-names"], api.CheckOK, fmt.Sprintf("answered by mapdns (pid %d, run by bangerd) on port 53: dev.vm. is %s, as recorded", pid, vm.IP))
	wantCheck(t, checks["mapdns"], api.CheckOK, fmt.Sprintf("bangerd runs mapdns %s (pid %d)", bin, pid))

	if err := d.VMs.Delete(ctx, "dev", true); err != nil {
		t.Fatal(err)
	}
	// mapdns has no NXDOMAIN: an unknown name gets an empty answer.
	waitDig(t, ns, mapdnsAddr, "dev.vm.", "NOERROR")
	waitDig(t, ns, bangerdAddr, "dev.vm.", "NXDOMAIN")
	waitDig(t, guest, guestResolver, "dev.vm.", "NXDOMAIN")
	waitDig(t, ns, mapdnsAddr, "x.lab.home.", "NOERROR", "192.168.1.10")
	if data, _ := os.ReadFile(dataFile); string(data) != mine {
		t.Errorf("the data file is\n%q\nwant the user's, byte for byte\n%q", data, mine)
	}

	wantCheck(t, dnsChecks(t, d, ns)["vm-names"], api.CheckOK, "it answers (no VM to ask for yet)")
	pid = d.mapdns.Status().PID
	d.stopMapDNS()
	if processAlive(pid) {
		t.Errorf("mapdns (pid %d) still runs after the daemon stopped it", pid)
	}
	if status, _ := mapdnstest.Dig(ns, mapdnsAddr, "nas.home."); status != "" {
		t.Errorf("something still answers on port 53 after stop: %s", status)
	}
	checks = dnsChecks(t, d, ns)
	wantCheck(t, checks["vm-names"], api.CheckFail, "nothing answers")
	wantCheck(t, checks["mapdns"], api.CheckFail, "bangerd's mapdns is not running")

	// Without mapdns, a restarted bangerd has port 53 again: the redirect
	// of the earlier run goes, and guests reach bangerd on 53 itself.
	d.stopDNS()
	d.Config.MapDNSBin, d.Config.MapDNSDataFile = "", ""
	ns.Do(t, func() error { d.startDNS(gw); return nil })
	if port := d.dnsPort(); port != 53 {
		t.Fatalf("without mapdns bangerd serves on port %d, want 53", port)
	}
	if rules := ns.Exec(t, "nft", "list", "ruleset"); strings.Contains(rules, "banger-dns") {
		t.Errorf("the DNS redirect outlived its need:\n%s", rules)
	}
	waitDig(t, guest, guestResolver, "dev.vm.", "NXDOMAIN")
}

// dnsChecks runs doctor's dns scope from this daemon, asking name servers
// inside ns with dig.
func dnsChecks(t *testing.T, d *Daemon, ns nettest.NS) map[string]api.CheckResult {
	t.Helper()
	env := d.doctorEnv()
	env.ResolveAt = func(_ context.Context, server, name string) ([]string, error) {
		status, addrs := mapdnstest.Dig(ns, server, name)
		switch {
		case status == "":
			return nil, errors.New("no answer")
		case len(addrs) == 0:
			return nil, &net.DNSError{Err: "no such host", Name: name, Server: server, IsNotFound: true}
		}
		return addrs, nil
	}
	out := map[string]api.CheckResult{}
	for _, r := range doctor.Run(context.Background(), env, []string{doctor.ScopeDNS}) {
		out[r.Name] = r
	}
	return out
}

func wantCheck(t *testing.T, r api.CheckResult, status api.CheckStatus, detail string) {
	t.Helper()
	if r.Status != status || !strings.Contains(r.Detail, detail) {
		t.Errorf("check %s: %s %q (fix %q), want %s with %q", r.Name, r.Status, r.Detail, r.Fix, status, detail)
	}
}

// processAlive: the process exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return !(i >= 0 && i+2 < len(b) && b[i+2] == 'Z')
}
