package privhelper

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/hostnet/nettest"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/vishvananda/netlink"
)

// testEnv is an in-process helper acting for caller, with its registry in a
// temporary directory and programs run by run.
func testEnv(t *testing.T, run sysexec.Runner, caller int) *env {
	return &env{run: run, look: sysexec.LookPath, caller: caller, tmpRoot: t.TempDir(),
		policy: DefaultPolicy(), stateDir: t.TempDir()}
}

// inSandbox runs fn inside a fresh network namespace when root, so a
// validation bug can never touch the host's interfaces; without root the
// verbs cannot change anything anyway.
func inSandbox(t *testing.T, fn func(e *env) error) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := fn(testEnv(t, sysexec.Exec{}, 0)); err != nil {
			t.Fatal(err)
		}
		return
	}
	ns := nettest.New(t)
	e := testEnv(t, ns.Runner(), 0)
	ns.Do(t, func() error { return fn(e) })
	if links := ns.Exec(t, "ip", "-o", "link", "show"); strings.Count(links, "\n") != 0 {
		t.Errorf("refused verbs changed the namespace:\n%s", links)
	}
	if rules := ns.Exec(t, "nft", "list", "ruleset"); rules != "" {
		t.Errorf("refused verbs added rules:\n%s", rules)
	}
}

func TestVerbsRefuseHostileArguments(t *testing.T) {
	long := strings.Repeat("a", 40)
	cases := []struct {
		verb string
		args []string
		want string
	}{
		{"rm", []string{"-rf", "/"}, "unknown helper verb"},
		{"tap-del bg-1a2b3c4d", nil, "unknown helper verb"}, // sudo's joined-argument match
		{"install", []string{"--user", "root"}, "unknown helper verb"},
		{"bridge-ensure", []string{"banger0"}, "usage: banger-helper bridge-ensure NAME CIDR"},
		{"bridge-ensure", []string{"banger0", "172.30.0.0/24", "x"}, "usage"},
		{"bridge-ensure", []string{"eth0", "172.30.0.0/24"}, "bridge name \"eth0\" refused"},
		{"bridge-ensure", []string{"docker0", "172.30.0.0/24"}, "refused"},
		{"bridge-ensure", []string{"banger0 x", "172.30.0.0/24"}, "refused"},
		{"bridge-ensure", []string{long, "172.30.0.0/24"}, "refused"},
		{"bridge-ensure", []string{"../banger0", "172.30.0.0/24"}, "refused"},
		{"bridge-ensure", []string{"banger0", "8.8.8.0/24"}, "not a private range"},
		{"bridge-ensure", []string{"banger0", "10.0.0.0/8"}, "between /16 and /29"},
		{"bridge-ensure", []string{"banger0", "fd00::/64"}, "private IPv4"},
		{"bridge-ensure", []string{"banger0", "172.30.0.0/24; reboot"}, "not a CIDR"},
		{"bridge-ensure", []string{"banger0", "192.168.1.0/24"}, "allows VM subnets only inside [172.30.0.0/15]"},
		{"bridge-delete", []string{"eth0"}, "refused"},
		{"bridge-delete", []string{"docker0"}, "refused"},
		{"tap-add", []string{"eth0", "banger0", "1000"}, "tap name \"eth0\" refused"},
		{"tap-add", []string{"bg-" + long, "banger0", "1000"}, "refused"},
		{"tap-add", []string{"bg-1a2b3c4d", "docker0", "1000"}, "refused"},
		{"tap-add", []string{"bg-1a2b3c4d", "banger0", "abc"}, "numeric user id"},
		{"tap-add", []string{"bg-1a2b3c4d", "banger0", "-1"}, "numeric user id"},
		{"tap-add", []string{"bg-1a2b3c4d", "banger0", "1000 "}, "numeric user id"},
		{"tap-add", []string{"bg-1a2b3c4d", "banger0", "99999999999"}, "numeric user id"},
		{"tap-add", []string{"bg-1a2b3c4d", "banger0", "4294967295"}, "out of range"},
		{"tap-add", []string{"bg-1a2b3c4d", "banger0", "1000"}, "bridge banger0 is not set up: bridge-ensure it first"},
		{"tap-del", []string{"../bg-1a2b3c4d"}, "refused"},
		{"tap-del", []string{"eth0"}, "refused"},
		{"nat-ensure", []string{"8.8.8.0/24", "banger0"}, "not a private range"},
		{"nat-ensure", []string{"172.30.0.0/24", "docker0"}, "refused"},
		{"nat-ensure", []string{"172.30.0.0/24", "banger0", "eth0"}, "usage"},
		{"nat-ensure", []string{"172.30.0.0/24", "banger0"}, "bridge banger0 is not set up"},
		{"nat-remove", nil, "usage"},
		{"nat-remove", []string{"all"}, "refused"},
		{"socket-reclaim", []string{"run/banger/x.sock", "1000"}, "absolute, clean"},
		{"socket-reclaim", []string{"/run/user/1000/banger/../../../../etc/shadow", "1000"}, "absolute, clean"},
		{"socket-reclaim", []string{"/etc/shadow", "1000"}, "outside banger's directories"},
		{"socket-reclaim", []string{"/etc/shadow", "root"}, "numeric user id"},
		{"dns-register", []string{"eth0", "172.30.0.1", "vm"}, "refused"},
		{"dns-register", []string{"banger0", "::1", "vm"}, "IPv4"},
		{"dns-register", []string{"banger0", "172.30.0.1", "~vm"}, "domain"},
		{"dns-register", []string{"banger0", "172.30.0.1", "com"}, `allows only ["vm"]`},
		{"dns-unregister", []string{"wlan0"}, "refused"},
		{"dns-redirect", []string{"eth0", "10053"}, "refused"},
		{"dns-redirect", []string{"banger0"}, "usage"},
		{"dns-redirect", []string{"banger0", "22"}, "port \"22\" refused"},
		{"dns-redirect", []string{"banger0", "010053"}, "refused"},
		{"dns-redirect", []string{"banger0", "70000"}, "refused"},
		{"dns-redirect", []string{"banger0", "10053"}, "bridge banger0 is not set up"},
		{"dns-redirect-remove", []string{"wlan0"}, "refused"},
	}
	inSandbox(t, func(e *env) error {
		for _, c := range cases {
			err := dispatch(context.Background(), e, c.verb, c.args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s %q: got %v, want an error containing %q", c.verb, c.args, err, c.want)
			}
		}
		return nil
	})
}

func TestSudoCallerMayOnlyActForItself(t *testing.T) {
	inSandbox(t, func(e *env) error {
		e.caller = 1000
		for _, c := range [][]string{
			{"tap-add", "bg-1a2b3c4d", "banger0", "0"},
			{"socket-reclaim", "/run/user/1001/banger/api.sock", "1001"},
		} {
			err := dispatch(context.Background(), e, c[0], c[1:])
			if err == nil || !strings.Contains(err.Error(), "may only act for it") {
				t.Errorf("%q as uid 1000: %v", c, err)
			}
		}
		return nil
	})
}

// TestOwnership plays two users against one helper registry in a network
// namespace: everything mallory tries on alice's objects is refused and
// leaves them as they were.
func TestOwnership(t *testing.T) {
	ns := nettest.New(t)
	state, tmp := t.TempDir(), t.TempDir()
	as := func(uid int) *env {
		return &env{run: ns.Runner(), look: sysexec.LookPath, caller: uid, tmpRoot: tmp, policy: DefaultPolicy(), stateDir: state}
	}
	alice, mallory := as(1000), as(1001)
	ctx := context.Background()
	ok := func(e *env, verb string, args ...string) {
		t.Helper()
		if err := dispatch(ctx, e, verb, args); err != nil && !errors.Is(err, hostnet.ErrResolvedAbsent) {
			t.Errorf("uid %d %s %q: %v", e.caller, verb, args, err)
		}
	}
	refused := func(e *env, want, verb string, args ...string) {
		t.Helper()
		if err := dispatch(ctx, e, verb, args); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("uid %d %s %q: %v, want refusal containing %q", e.caller, verb, args, err, want)
		}
	}
	addUplink(t, ns)
	ns.Do(t, func() error {
		// The LAN: an address and a route the host already uses.
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0"}, PeerName: "lan0p"}); err != nil {
			return err
		}
		lan, _ := netlink.LinkByName("lan0")
		peer, _ := netlink.LinkByName("lan0p")
		_ = netlink.AddrAdd(lan, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(172, 31, 9, 5), Mask: net.CIDRMask(24, 32)}})
		_ = netlink.LinkSetUp(lan)
		_ = netlink.LinkSetUp(peer)

		ok(alice, "bridge-ensure", "banger0", "172.30.0.0/24")
		ok(alice, "tap-add", "bg-0000a11c", "banger0", "1000")
		ok(alice, "nat-ensure", "172.30.0.0/24", "banger0")
		ok(alice, "dns-redirect", "banger0", "10053")

		refused(mallory, "overlaps 172.31.9.0/24", "bridge-ensure", "banger1", "172.31.9.0/24") // route hijack
		refused(mallory, "overlaps 172.30.0.0/24 of bridge banger0", "bridge-ensure", "banger1", "172.30.0.0/16")
		refused(mallory, "belongs to uid 1000", "bridge-ensure", "banger0", "172.30.5.0/24")
		refused(mallory, "belongs to uid 1000", "bridge-delete", "banger0")
		refused(mallory, "belongs to uid 1000", "tap-add", "bg-0000bad0", "banger0", "1001")
		refused(mallory, "belongs to uid 1000", "tap-del", "bg-0000a11c")
		refused(mallory, "belongs to uid 1000", "nat-ensure", "172.30.0.0/24", "banger0")
		refused(mallory, "belongs to uid 1000", "nat-remove", "banger0")
		refused(mallory, "belongs to uid 1000", "dns-register", "banger0", "172.30.0.1", "vm")
		refused(mallory, "belongs to uid 1000", "dns-unregister", "banger0")
		refused(mallory, "belongs to uid 1000", "dns-redirect", "banger0", "10054")
		refused(mallory, "belongs to uid 1000", "dns-redirect-remove", "banger0")

		ok(mallory, "bridge-ensure", "banger1", "172.30.1.0/24")
		// A tap name alice holds, on mallory's own bridge.
		refused(mallory, "belongs to uid 1000", "tap-add", "bg-0000a11c", "banger1", "1001")
		refused(alice, "belongs to uid 1001", "nat-ensure", "172.30.1.0/24", "banger1")
		refused(mallory, "bridge banger1 serves 172.30.1.0/24", "nat-ensure", "172.30.0.0/24", "banger1")
		refused(mallory, "own address is 172.30.1.1", "dns-register", "banger1", "172.30.1.7", "vm")
		ok(mallory, "bridge-ensure", "banger2", "172.30.2.0/24")
		refused(mallory, "max_bridges_per_user", "bridge-ensure", "banger3", "172.30.3.0/24")

		// Alice's objects are as she left them.
		tap, err := hostnet.LookupLink("bg-0000a11c")
		if err != nil || !tap.Exists || tap.Master != "banger0" || tap.TapOwner != 1000 {
			t.Errorf("alice's tap after the attacks: %+v, %v", tap, err)
		}
		if has, err := hostnet.BridgeHasAddress("banger0", netip.MustParseAddr("172.30.0.1")); !has || err != nil {
			t.Errorf("alice's bridge lost its address: %v", err)
		}
		ports, _ := hostnet.BridgePorts("banger0")
		if len(ports) != 1 {
			t.Errorf("alice's bridge has %d ports, want only her tap", len(ports))
		}
		return nil
	})
	rules := ns.Exec(t, "nft", "list", "ruleset")
	if !strings.Contains(rules, "table ip banger-banger0") {
		t.Errorf("alice's NAT is gone:\n%s", rules)
	}
	if !strings.Contains(rules, "dnat to 172.30.0.1:10053") {
		t.Errorf("alice's DNS redirect is gone or changed:\n%s", rules)
	}
	// A tap created outside banger (no registry entry) is claimed only by
	// its owner.
	ns.Exec(t, "ip", "tuntap", "add", "bg-0000c0de", "mode", "tap", "user", "1000")
	ns.Do(t, func() error {
		refused(mallory, "belongs to uid 1000", "tap-del", "bg-0000c0de")
		ok(alice, "tap-del", "bg-0000c0de")
		ok(alice, "nat-remove", "banger0")
		ok(alice, "dns-redirect-remove", "banger0")
		ok(alice, "tap-del", "bg-0000a11c")
		ok(alice, "bridge-delete", "banger0")
		ok(mallory, "bridge-delete", "banger1")
		ok(mallory, "bridge-delete", "banger2")
		return nil
	})
	if rules := ns.Exec(t, "nft", "list", "ruleset"); rules != "" {
		t.Errorf("rules left:\n%s", rules)
	}
}

// addUplink gives ns an uplink, up0 (a veth), with the default route.
func addUplink(t *testing.T, ns nettest.NS) {
	t.Helper()
	ns.Exec(t, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
	ns.Exec(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "up0")
	ns.Exec(t, "ip", "link", "set", "up0", "up")
	ns.Exec(t, "ip", "link", "set", "up0p", "up")
	ns.Exec(t, "ip", "route", "add", "default", "via", "192.0.2.254")
}

func TestTapCap(t *testing.T) {
	ns := nettest.New(t)
	e := testEnv(t, ns.Runner(), 1000)
	e.policy.MaxTapsPerUser = 1
	ns.Do(t, func() error {
		for _, c := range [][]string{{"bridge-ensure", "banger0", "172.30.0.0/24"}, {"tap-add", "bg-00000001", "banger0", "1000"}} {
			if err := dispatch(context.Background(), e, c[0], c[1:]); err != nil {
				return err
			}
		}
		err := dispatch(context.Background(), e, "tap-add", []string{"bg-00000002", "banger0", "1000"})
		if err == nil || !strings.Contains(err.Error(), "max_taps_per_user") {
			t.Errorf("second tap over a cap of 1: %v", err)
		}
		// Re-adding the tap already held is not a new tap.
		return dispatch(context.Background(), e, "tap-add", []string{"bg-00000001", "banger0", "1000"})
	})
}

func listenUnix(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
}

func TestSocketReclaim(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("socket-reclaim test needs root to chown")
	}
	const uid = 12345
	tmp := t.TempDir()
	base := filepath.Join(tmp, "banger-12345")
	for _, d := range []string{filepath.Join(base, "1a2b3c4d"), filepath.Join(tmp, "outside"), filepath.Join(tmp, "rootdir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(base, uid, uid); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(base, "1a2b3c4d", "api.sock")
	listenUnix(t, sock)
	outside := filepath.Join(tmp, "outside", "o.sock")
	listenUnix(t, outside)
	must(t, os.Symlink(outside, filepath.Join(base, "escape.sock")))
	must(t, os.WriteFile(filepath.Join(base, "plain"), nil, 0o600))
	// banger-777 is a symlink to a root-owned directory holding a socket.
	listenUnix(t, filepath.Join(tmp, "rootdir", "r.sock"))
	must(t, os.Symlink(filepath.Join(tmp, "rootdir"), filepath.Join(tmp, "banger-777")))
	// Another user's socket, and a hard link to a root socket elsewhere,
	// placed in the caller's directory.
	victim := filepath.Join(base, "victim.sock")
	listenUnix(t, victim)
	must(t, os.Chown(victim, 4242, 4242))
	must(t, os.Link(outside, filepath.Join(base, "linked.sock")))

	e := &env{run: sysexec.Exec{}, tmpRoot: tmp, caller: 0, policy: DefaultPolicy(), stateDir: t.TempDir()}
	ctx := context.Background()
	if err := dispatch(ctx, e, "socket-reclaim", []string{sock, "12345"}); err != nil {
		t.Fatalf("reclaim: %v", err)
	}
	if st, _ := os.Stat(sock); st == nil || ownerOf(st) != uid {
		t.Errorf("socket owner after reclaim = %v, want %d", st, uid)
	}
	for path, want := range map[string]string{
		filepath.Join(base, "escape.sock"):         "outside banger's directories",
		filepath.Join(base, "plain"):               "not a Unix socket",
		filepath.Join(tmp, "banger-777", "r.sock"): "not a directory owned by uid 777",
		filepath.Join(base, "missing.sock"):        "no such file",
		base + "/../outside/o.sock":                "absolute, clean",
		victim:                                     "belongs to uid 4242",
		filepath.Join(base, "linked.sock"):         "has 2 links",
	} {
		u := "12345"
		if strings.Contains(path, "banger-777") {
			u = "777"
		}
		err := dispatch(ctx, e, "socket-reclaim", []string{path, u})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("socket-reclaim %s: %v, want %q", path, err, want)
		}
	}
	for p, want := range map[string]int{outside: 0, filepath.Join(tmp, "rootdir", "r.sock"): 0, victim: 4242} {
		if st, _ := os.Stat(p); ownerOf(st) != want {
			t.Errorf("%s was chowned through an escape", p)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSudoersLine(t *testing.T) {
	got := SudoersLine(4242424, "/usr/local/libexec/banger/banger-helper", true)
	const h = "/usr/local/libexec/banger/banger-helper"
	want := "#4242424 ALL=(root) NOPASSWD: " +
		h + " ^bridge-ensure banger[a-z0-9]{0,9} [0-9]{1,3}([.][0-9]{1,3}){3}/[0-9]{1,2}$, " +
		h + " ^bridge-delete banger[a-z0-9]{0,9}$, " +
		h + " ^tap-add bg-[0-9a-f]{8} banger[a-z0-9]{0,9} [0-9]{1,10}$, " +
		h + " ^tap-del bg-[0-9a-f]{8}$, " +
		h + " ^nat-ensure [0-9]{1,3}([.][0-9]{1,3}){3}/[0-9]{1,2} banger[a-z0-9]{0,9}$, " +
		h + " ^nat-remove banger[a-z0-9]{0,9}$, " +
		h + " ^socket-reclaim /[A-Za-z0-9._/-]{1,107} [0-9]{1,10}$, " +
		h + " ^dns-register banger[a-z0-9]{0,9} [0-9]{1,3}([.][0-9]{1,3}){3} [a-z0-9.-]{1,253}$, " +
		h + " ^dns-unregister banger[a-z0-9]{0,9}$, " +
		h + " ^dns-redirect banger[a-z0-9]{0,9} [0-9]{4,5}$, " +
		h + " ^dns-redirect-remove banger[a-z0-9]{0,9}$, " +
		h + " ^image-build [a-z][a-z0-9-]{1,30} https?://[A-Za-z0-9.:/_~-]{1,200} [0-9]{3,7} (-|[a-z0-9][a-z0-9+.,-]{0,254}) /[A-Za-z0-9._/-]{1,255}$"
	if got != want {
		t.Errorf("SudoersLine =\n%s\nwant\n%s", got, want)
	}
	if got := SudoersLine(0, "/opt/my apps/banger-helper", false); !strings.HasPrefix(got, `root ALL=(root) NOPASSWD: /opt/my\ apps/banger-helper bridge-ensure *,`) {
		t.Errorf("special characters not escaped: %s", got)
	}
	// The user is named by uid, never by anything in the environment.
	t.Setenv("SUDO_USER", "ALL")
	t.Setenv("USER", "ALL")
	if got := SudoersLine(4242424, "/x", true); !strings.HasPrefix(got, "#4242424 ") {
		t.Errorf("user spec taken from the environment: %s", got)
	}
	visudo, err := sysexec.LookPath("visudo")
	if err != nil {
		t.Skip("visudo not installed (apt-get install sudo)")
	}
	for _, regex := range []bool{true, false} {
		f := filepath.Join(t.TempDir(), "banger")
		must(t, os.WriteFile(f, []byte(SudoersLine(4242424, "/usr/local/libexec/banger/banger-helper", regex)+"\n"), 0o440))
		if _, err := sysexec.Run(context.Background(), visudo, "-cf", f); err != nil {
			t.Errorf("visudo refuses the line (regex %v): %v", regex, err)
		}
	}
}

func TestPolicy(t *testing.T) {
	p, err := ParsePolicy([]byte("subnets = [\"10.77.0.0/16\"]\ndns_domains = [\"vm\", \"dev.internal\"]\nmax_taps_per_user = 8\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.allowsSubnet(netip.MustParsePrefix("10.77.3.0/24")); err != nil {
		t.Error(err)
	}
	if err := p.allowsSubnet(netip.MustParsePrefix("172.30.0.0/24")); err == nil {
		t.Error("a subnet outside the policy was allowed")
	}
	if err := p.allowsSubnet(netip.MustParsePrefix("10.76.0.0/15")); err == nil {
		t.Error("a subnet larger than the allowed range was allowed")
	}
	if p.MaxTapsPerUser != 8 || p.MaxBridgesPerUser != DefaultPolicy().MaxBridgesPerUser || p.allowsDomain("dev.internal") != nil {
		t.Errorf("policy = %+v", p)
	}
	for _, bad := range []string{"subnets = [\"10.77.0.1/16\"]", "dns_domains = [\"~com\"]", "max_taps_per_user = -1", "typo = 1"} {
		if _, err := ParsePolicy([]byte(bad)); err == nil {
			t.Errorf("policy %q accepted", bad)
		}
	}
	// A policy file a user could have written is refused.
	f := filepath.Join(t.TempDir(), "helper.toml")
	must(t, os.WriteFile(f, []byte("subnets = [\"10.0.0.0/8\"]\n"), 0o666))
	if _, err := LoadPolicy(f); err == nil {
		t.Error("a world-writable policy file was trusted")
	}
	if p, err := LoadPolicy(filepath.Join(t.TempDir(), "absent.toml")); err != nil || len(p.Subnets) != 1 {
		t.Errorf("absent policy: %+v %v", p, err)
	}
}

func TestMainExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	if c := Main(nil, &out, &errb); c != exitUsage || !strings.Contains(errb.String(), "usage") {
		t.Errorf("no args: %d %q", c, errb.String())
	}
	errb.Reset()
	if c := Main([]string{"shell"}, &out, &errb); c != exitUsage || !strings.Contains(errb.String(), "unknown helper verb") {
		t.Errorf("unknown verb: %d %q", c, errb.String())
	}
	if os.Geteuid() != 0 {
		if c := Main([]string{"nat-remove", "banger0"}, &out, &errb); c != exitFailed || !strings.Contains(errb.String(), "must run as root") {
			t.Errorf("non-root: %d %q", c, errb.String())
		}
	}
}

func TestTeardownRemovesEverything(t *testing.T) {
	ns := nettest.New(t)
	h := &caller{call: localCall(testEnv(t, ns.Runner(), 0))}
	ctx := context.Background()
	subnet := netip.MustParsePrefix("172.30.0.0/24")
	taps := []string{"bg-00000001", "bg-00000002"}
	addUplink(t, ns)
	ns.Do(t, func() error {
		if err := h.BridgeEnsure(ctx, "banger0", subnet); err != nil {
			return err
		}
		for _, tap := range taps {
			if err := h.TapAdd(ctx, tap, "banger0", 1000); err != nil {
				return err
			}
		}
		if err := h.NATEnsure(ctx, subnet, "banger0"); err != nil {
			return err
		}
		if err := h.DNSRedirect(ctx, "banger0", 10053); err != nil {
			return err
		}
		stray, err := hostnet.StrayTaps("banger0", map[string]bool{"bg-00000001": true})
		if err != nil || !slices.Equal(stray, []string{"bg-00000002"}) {
			t.Errorf("StrayTaps = %v, %v", stray, err)
		}
		removed, err := hostnet.Teardown(ctx, h, "banger0", taps)
		if err != nil {
			return err
		}
		want := []string{"tap bg-00000001", "tap bg-00000002", "nat", "dns redirect", "bridge banger0"}
		if hostnet.ResolvedRunning() {
			want = []string{"tap bg-00000001", "tap bg-00000002", "nat", "dns redirect", "dns banger0", "bridge banger0"}
		}
		if !slices.Equal(removed, want) {
			t.Errorf("Teardown removed %v, want %v", removed, want)
		}
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		if len(links) != 3 {
			t.Errorf("%d interfaces left, want only lo and the up0 pair", len(links))
		}
		return nil
	})
	if rules := ns.Exec(t, "nft", "list", "ruleset"); rules != "" {
		t.Errorf("rules left after teardown:\n%s", rules)
	}
}

func TestImageBuildArgs(t *testing.T) {
	args := ImageBuildArgs("bookworm", "http://deb.debian.org/debian", 4<<30, []string{"vim", "g++"}, "/home/a/.cache/banger/.image-x.ext4")
	if strings.Join(args, " ") != "image-build bookworm http://deb.debian.org/debian 4096 vim,g++ /home/a/.cache/banger/.image-x.ext4" {
		t.Errorf("args: %q", args)
	}
	if err := CheckImageBuildArgs(args); err != nil {
		t.Error(err)
	}
	if got := ImageBuildArgs("bookworm", "http://x/debian", 1<<30, nil, "/o"); got[4] != "-" {
		t.Errorf("no extra packages: %q", got)
	}
	for _, bad := range [][]string{
		{"image-build", "Bookworm", "http://x/d", "1024", "-", "/o"},
		{"image-build", "bookworm", "file:///etc", "1024", "-", "/o"},
		{"image-build", "bookworm", "http://x/../d", "1024", "-", "/o"},
		{"image-build", "bookworm", "http://x/d", "100", "-", "/o"},
		{"image-build", "bookworm", "http://x/d", "1024", "vim;id", "/o"},
		{"image-build", "bookworm", "http://x/d", "1024", ",vim", "/o"},
		{"image-build", "bookworm", "http://x/d", "1024", "-", "relative"},
		{"image-build", "bookworm", "http://x/d", "1024", "-", "/a/../etc/passwd"},
		{"image-build", "bookworm", "http://x/d", "1024", "-"},
	} {
		if err := CheckImageBuildArgs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// Every argument shape of the sudoers line accepts what the parser does.
	for i, shape := range verbs["image-build"].shapes {
		if !regexp.MustCompile("^" + shape + "$").MatchString(args[i+1]) {
			t.Errorf("shape %s refuses %q", shape, args[i+1])
		}
	}
}
