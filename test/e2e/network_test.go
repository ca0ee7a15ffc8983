package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/e2etest"
	"github.com/banger-dev/banger/internal/sysexec"
)

// TestTwoVMsNetwork boots two guests at once on one bridge and checks what
// users rely on: distinct addresses, <name>.vm from the host and from the
// guests, guest-to-guest traffic, outbound NAT (seen from an "internet"
// namespace behind the environment's uplink), then that deleting a running
// VM removes its process, tap, DNS name, files and record while the NAT
// state stays, and that `host teardown` finally removes bridge, taps and NAT.
func TestTwoVMsNetwork(t *testing.T) {
	env := e2etest.New(t, e2etest.Options{Subnet: "172.30.82.0/24", Bridge: "bangernet"})
	inet := env.ConnectInternet()
	port := inet.ServeHTTP()
	gw := env.Gateway()
	dnsAddr := netip.AddrPortFrom(gw, 53)

	for _, name := range []string{"a", "b"} {
		tm := e2etest.StartTimer(t)
		env.MustBanger("vm", "create", "--name", name)
		tm.Mark("create to healthy: " + name)
	}
	a, b := env.VM("a"), env.VM("b")
	subnet := netip.MustParsePrefix(env.Subnet)
	for _, v := range []api.VM{a, b} {
		ip, err := netip.ParseAddr(v.IP)
		if err != nil || !subnet.Contains(ip) || ip == gw {
			t.Fatalf("VM %s has address %q: want a host address of %s other than the gateway", v.Name, v.IP, subnet)
		}
		b4 := ip.As4()
		if want := fmt.Sprintf("06:00:%02x:%02x:%02x:%02x", b4[0], b4[1], b4[2], b4[3]); v.MAC != want {
			t.Errorf("VM %s: MAC %s, want %s (derived from %s)", v.Name, v.MAC, want, v.IP)
		}
		if !env.HasLink("bg-" + v.ID) {
			t.Errorf("VM %s running but tap bg-%s is missing: %v", v.Name, v.ID, env.Links())
		}
	}
	if a.IP == b.IP {
		t.Fatalf("both VMs got %s", a.IP)
	}

	// Host side: banger's DNS on the bridge answers <name>.vm, and ssh to the
	// resolved address reaches that very guest.
	for _, v := range []api.VM{a, b} {
		ans := env.Resolve(dnsAddr, v.Name+".vm")
		if ans.Rcode != "NOERROR" || !slices.Equal(ans.Addrs, []string{v.IP}) {
			t.Fatalf("DNS %s.vm at %s: %s %v, want NOERROR [%s]", v.Name, dnsAddr, ans.Rcode, ans.Addrs, v.IP)
		}
		if got := sshByAddress(t, env, ans.Addrs[0], "hostname"); got != v.Name {
			t.Errorf("ssh root@%s (%s.vm) hostname = %q, want %s", ans.Addrs[0], v.Name, got, v.Name)
		}
	}
	if ans := env.Resolve(dnsAddr, "nosuchvm.vm"); ans.Rcode != "NXDOMAIN" {
		t.Errorf("DNS nosuchvm.vm: %s %v, want NXDOMAIN", ans.Rcode, ans.Addrs)
	}

	// Guest side: b is reachable from a over the bridge, by address and by
	// name (the guest's resolver is the gateway).
	if out, errOut, code := env.SSH("a", "ping", "-c", "1", "-W", "5", b.IP); code != 0 {
		t.Errorf("ping b (%s) from a: exit %d\n%s%s", b.IP, code, out, errOut)
	}
	if out := env.MustSSH("a", "getent", "hosts", "b.vm"); !strings.HasPrefix(out, b.IP+" ") {
		t.Errorf("getent hosts b.vm in a = %q, want %s ...", out, b.IP)
	}

	// Outbound NAT: the listener beyond the uplink sees the uplink address,
	// not the guest's.
	url := fmt.Sprintf("http://%s:%d/", inet.Addr, port)
	if out, errOut, code := env.SSH("b", "curl", "-sS", "-m", "20", url); code != 0 || out != inet.Uplink.String() {
		t.Errorf("curl %s from b: exit %d, body %q (stderr %q); want the masqueraded source %s", url, code, out, errOut, inet.Uplink)
	}
	nftWithVMs := env.NFTRuleset()
	if nftWithVMs != "" && !strings.Contains(nftWithVMs, "table ip banger") {
		t.Errorf("NAT is on but there is no banger nftables table:\n%s", nftWithVMs)
	}

	// Deleting a running VM (--force stops it) removes all of it; the other
	// VM, the bridge and the NAT state are untouched.
	env.MustBanger("vm", "delete", "--force", "a")
	assertGone(t, env, a)
	if ans := env.Resolve(dnsAddr, "a.vm"); ans.Rcode != "NXDOMAIN" {
		t.Errorf("DNS a.vm after delete: %s %v, want NXDOMAIN", ans.Rcode, ans.Addrs)
	}
	if ans := env.Resolve(dnsAddr, "b.vm"); !slices.Equal(ans.Addrs, []string{b.IP}) {
		t.Errorf("DNS b.vm after deleting a: %s %v, want [%s]", ans.Rcode, ans.Addrs, b.IP)
	}
	if got := env.NFTRuleset(); got != nftWithVMs {
		t.Errorf("nftables changed by deleting a VM:\nbefore:\n%s\nafter:\n%s", nftWithVMs, got)
	}
	if !env.HasLink(env.Bridge) {
		t.Errorf("bridge %s gone after deleting one VM", env.Bridge)
	}
	if h := env.VM("b"); h.State != api.VMRunning {
		t.Errorf("b is %s after deleting a", h.State)
	}
	if got := strings.TrimSpace(env.MustSSH("b", "hostname")); got != "b" {
		t.Errorf("b after deleting a: hostname %q", got)
	}

	// Teardown refuses while b runs; with b deleted it removes the bridge,
	// every banger tap and the NAT table.
	if out, errOut, code := env.Banger("host", "teardown"); code == 0 {
		t.Errorf("host teardown with a running VM succeeded:\n%s%s", out, errOut)
	}
	env.MustBanger("vm", "delete", "--force", "b")
	assertGone(t, env, b)
	env.MustBanger("host", "teardown")
	for _, l := range env.Links() {
		if l == env.Bridge || strings.HasPrefix(l, "bg-") {
			t.Errorf("after host teardown, %s still exists", l)
		}
	}
	if nft := env.NFTRuleset(); strings.Contains(nft, "banger") {
		t.Errorf("after host teardown, nftables still has banger's rules:\n%s", nft)
	}
	if out, err := env.InNS("iptables-save"); err == nil && strings.Contains(out, "BANGER-") {
		t.Errorf("after host teardown, iptables still has banger's chains:\n%s", out)
	}
	if ans, err := env.TryResolve(dnsAddr, "b.vm"); err == nil {
		t.Errorf("DNS on %s still answers after teardown: %s %v", dnsAddr, ans.Rcode, ans.Addrs)
	}
}

// sshByAddress runs a command over the system ssh straight to an address
// (not through banger), with the bundle's key, from inside the namespace.
func sshByAddress(t *testing.T, env *e2etest.Env, addr, command string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := sysexec.Run(ctx, "ip", "netns", "exec", env.NS, "ssh",
		"-i", filepath.Join(env.DataDir, "bundle", "id_ed25519"),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
		"root@"+addr, command)
	if err != nil {
		t.Fatalf("ssh root@%s %s: %v", addr, command, err)
	}
	return strings.TrimSpace(string(out))
}
