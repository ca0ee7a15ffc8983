package hostnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/hostnet/nettest"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/testneed"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestMain lets the test binary act as a VMM opening a tap for
// TestTapOpenableByOwnerOnly, in two stages: as root in a private mount
// namespace it gives itself a world-usable tun node, then opens the tap as
// the throwaway user named in the environment.
func TestMain(m *testing.M) {
	if name := envknob.OpenTap.Value(); name != "" {
		if err := tapOpener(name, envknob.OpenTapAs.Value()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tapOpener opens the tap name. With as ("uid:gid", stage one, root, run in
// a private mount namespace by unshare) it first mounts a tmpfs over
// /dev/net holding a tun node (the same char device 10:200) every user may
// open, as distributions ship it, so only the tap's owner check is left to
// decide; then it runs itself again as that user through setpriv.
func tapOpener(name, as string) error {
	if as == "" {
		return openTap(name, unix.IFF_TAP|unix.IFF_NO_PI|unix.IFF_VNET_HDR)
	}
	uid, gid, ok := strings.Cut(as, ":")
	if !ok {
		return fmt.Errorf("%s=%q: want uid:gid", envknob.OpenTapAs, as)
	}
	if err := unix.Mount("banger-tun", "/dev/net", "tmpfs", unix.MS_NOSUID, "mode=0755"); err != nil {
		return fmt.Errorf("mount a private /dev/net: %w", err)
	}
	if err := unix.Mknod("/dev/net/tun", unix.S_IFCHR|0o666, int(unix.Mkdev(10, 200))); err != nil {
		return fmt.Errorf("mknod /dev/net/tun: %w", err)
	}
	if err := os.Chmod("/dev/net/tun", 0o666); err != nil { // mknod applies the umask
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	_, err = sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{
		Argv: []string{"setpriv", "--reuid=" + uid, "--regid=" + gid, "--clear-groups", self},
		Env:  []string{string(envknob.OpenTap) + "=" + name, string(envknob.OpenTapAs) + "="},
	})
	return err
}

// openTap opens a persistent tap the way Firecracker does (and QEMU with
// vnet_hdr): TUNSETIFF with the given flags on /dev/net/tun.
func openTap(name string, flags uint16) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/net/tun: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	return nil
}

var subnet24 = netip.MustParsePrefix("172.30.0.0/24")

func bridgeAddrs(name string) ([]string, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IPNet.String())
	}
	return out, nil
}

func TestBridgeAndTapLifecycle(t *testing.T) {
	ns := nettest.New(t)
	ns.Do(t, func() error {
		for range 2 { // idempotent
			if err := EnsureBridge("banger0", subnet24); err != nil {
				return err
			}
		}
		br, err := netlink.LinkByName("banger0")
		if err != nil {
			return err
		}
		if br.Type() != "bridge" || br.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("banger0 is %s, flags %v; want an up bridge", br.Type(), br.Attrs().Flags)
		}
		if got, err := bridgeAddrs("banger0"); err != nil || !slices.Equal(got, []string{"172.30.0.1/24"}) {
			return fmt.Errorf("bridge addresses %v (%v), want [172.30.0.1/24]", got, err)
		}
		// A changed subnet replaces the old gateway address.
		if err := EnsureBridge("banger0", netip.MustParsePrefix("172.30.4.0/23")); err != nil {
			return err
		}
		if got, _ := bridgeAddrs("banger0"); !slices.Equal(got, []string{"172.30.4.1/23"}) {
			return fmt.Errorf("after subnet change addresses are %v, want [172.30.4.1/23]", got)
		}

		if err := AddTap("bg-1a2b3c4d", "banger1", 1000); err == nil || !strings.Contains(err.Error(), "ensure the bridge first") {
			return fmt.Errorf("AddTap on a missing bridge: %v", err)
		}
		// Re-adding with another owner replaces the tap; with the same one
		// it is kept as is.
		if err := AddTap("bg-1a2b3c4d", "banger0", 999); err != nil {
			return err
		}
		for range 2 {
			if err := AddTap("bg-1a2b3c4d", "banger0", 1234); err != nil {
				return err
			}
		}
		l, err := netlink.LinkByName("bg-1a2b3c4d")
		if err != nil {
			return err
		}
		tap, ok := l.(*netlink.Tuntap)
		if !ok || tap.Mode != netlink.TUNTAP_MODE_TAP {
			return fmt.Errorf("bg-1a2b3c4d is %T, want a tap", l)
		}
		if tap.Owner != 1234 || tap.NonPersist || tap.Attrs().MasterIndex != br.Attrs().Index || tap.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("tap owner %d nonpersist %v master %d (bridge %d) flags %v", tap.Owner, tap.NonPersist, tap.Attrs().MasterIndex, br.Attrs().Index, tap.Attrs().Flags)
		}
		// Both VMMs' open flags are accepted for the persistent tap.
		for _, fl := range []uint16{unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR, unix.IFF_TAP | unix.IFF_NO_PI} {
			if err := openTap("bg-1a2b3c4d", fl); err != nil {
				return err
			}
		}

		stray, err := StrayTaps("banger0", nil)
		if err != nil || !slices.Equal(stray, []string{"bg-1a2b3c4d"}) {
			return fmt.Errorf("StrayTaps = %v, %v", stray, err)
		}
		if stray, _ := StrayTaps("banger0", map[string]bool{"bg-1a2b3c4d": true}); len(stray) != 0 {
			return fmt.Errorf("StrayTaps with the tap known = %v", stray)
		}

		// Names of the right shape but the wrong kind are not deleted.
		// (veth, not dummy: the dummy module is not everywhere)
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "banger9"}, PeerName: "peer9"}); err != nil {
			return err
		}
		if err := DeleteBridge("banger9"); err == nil || !strings.Contains(err.Error(), "not a bridge") {
			return fmt.Errorf("DeleteBridge on a veth: %v", err)
		}
		if err := EnsureBridge("banger9", subnet24); err == nil {
			return errors.New("EnsureBridge adopted a veth interface")
		}

		for range 2 { // deletes are idempotent
			if err := DeleteTap("bg-1a2b3c4d"); err != nil {
				return err
			}
			if err := DeleteBridge("banger0"); err != nil {
				return err
			}
		}
		links, _ := netlink.LinkList()
		for _, l := range links {
			if n := l.Attrs().Name; n != "lo" && n != "banger9" && n != "peer9" {
				return fmt.Errorf("left behind: %s", n)
			}
		}
		return nil
	})
}

// TestTapOpenableByOwnerOnly proves a VMM running as the tap's owner (not
// root) can open it, and another user cannot. Both are real users the test
// creates and removes; the opener runs with a private tun node (see
// tapOpener), so the host's /dev/net/tun mode does not decide the outcome.
func TestTapOpenableByOwnerOnly(t *testing.T) {
	ns := nettest.New(t)
	for _, tool := range []string{"setpriv", "unshare", "useradd", "userdel"} {
		if _, err := sysexec.LookPath(tool); err != nil {
			testneed.Skip(t, "%v (apt-get install util-linux passwd)", err)
		}
	}
	owner, other := throwawayUser(t, "bgto"), throwawayUser(t, "bgtx")
	// Copy the test binary where an unprivileged user can execute it.
	dir, err := os.MkdirTemp("", "banger-taptest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "opener")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ns.Do(t, func() error {
		if err := EnsureBridge("banger0", subnet24); err != nil {
			return err
		}
		return AddTap("bg-00c0ffee", "banger0", owner.uid)
	})
	open := func(u user) error {
		_, err := ns.Runner().Run(context.Background(), sysexec.Cmd{
			Argv: []string{"unshare", "--mount", "--propagation", "private", "--", bin},
			Env:  []string{string(envknob.OpenTap) + "=bg-00c0ffee", fmt.Sprintf("%s=%d:%d", envknob.OpenTapAs, u.uid, u.gid)},
		})
		return err
	}
	if err := open(owner); err != nil {
		t.Errorf("owner %s could not open its tap: %v", owner.name, err)
	}
	err = open(other)
	if err == nil {
		t.Fatalf("user %s opened a tap owned by %s", other.name, owner.name)
	}
	// Refused by the tap's owner check, not by anything on the way there.
	if !strings.Contains(err.Error(), "TUNSETIFF bg-00c0ffee: operation not permitted") {
		t.Errorf("another user's open failed for the wrong reason: %v", err)
	}
}

type user struct {
	name     string
	uid, gid int
}

// throwawayUser creates a home-less, login-less user and removes it when the
// test ends.
func throwawayUser(t *testing.T, prefix string) user {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	u := user{name: prefix + hex.EncodeToString(b)}
	ctx := context.Background()
	if _, err := sysexec.Run(ctx, "useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", u.name); err != nil {
		t.Fatalf("useradd: %v", err)
	}
	t.Cleanup(func() {
		if _, err := sysexec.Run(context.Background(), "userdel", u.name); err != nil {
			t.Errorf("userdel %s: %v", u.name, err)
		}
	})
	for _, f := range []struct {
		flag string
		dst  *int
	}{{"-u", &u.uid}, {"-g", &u.gid}} {
		out, err := sysexec.Output(ctx, "id", f.flag, u.name)
		if err != nil {
			t.Fatal(err)
		}
		if *f.dst, err = strconv.Atoi(out); err != nil || *f.dst == 0 {
			t.Fatalf("id %s %s = %q (%v)", f.flag, u.name, out, err)
		}
	}
	return u
}

func TestCheckSubnetAndUplink(t *testing.T) {
	ns := nettest.New(t)
	ns.Exec(t, "ip", "link", "add", "dummy0", "type", "veth", "peer", "name", "dummy0p")
	ns.Exec(t, "ip", "addr", "add", "10.99.0.1/16", "dev", "dummy0")
	ns.Exec(t, "ip", "link", "set", "dummy0", "up")
	ns.Exec(t, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
	ns.Exec(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "up0")
	ns.Exec(t, "ip", "link", "set", "up0", "up")
	ns.Exec(t, "ip", "link", "set", "up0p", "up")
	ns.Exec(t, "ip", "route", "add", "default", "via", "192.0.2.254", "dev", "up0")
	ns.Do(t, func() error {
		if up, err := Uplinks(); err != nil || !slices.Equal(up, []string{"up0"}) {
			return fmt.Errorf("Uplinks = %q, %v; want [up0]", up, err)
		}
		err := CheckSubnet(netip.MustParsePrefix("10.99.3.0/24"), "banger0")
		if err == nil || !strings.Contains(err.Error(), "10.99.0.0/16") || !strings.Contains(err.Error(), "dummy0") ||
			!strings.Contains(err.Error(), `subnet = "172.30.0.0/24"`) {
			return fmt.Errorf("CheckSubnet on a clash: %v", err)
		}
		if err := EnsureBridge("banger0", subnet24); err != nil {
			return err
		}
		if err := CheckSubnet(subnet24, "banger0"); err != nil {
			return fmt.Errorf("our own bridge counted as a clash: %v", err)
		}
		if err := CheckSubnet(subnet24, "banger1"); err == nil || !strings.Contains(err.Error(), `"172.30.1.0/24"`) {
			return fmt.Errorf("clash with another bridge: %v", err)
		}
		if s, err := SuggestSubnet(); err != nil || s.String() != "172.30.1.0/24" {
			return fmt.Errorf("SuggestSubnet = %v, %v", s, err)
		}
		return nil
	})
}

// natTopology builds: guest ns --veth--> bridge banger0 in host ns --veth
// (up0, 192.0.2.1)--> "internet" ns (192.0.2.2) with a TCP server that
// replies with the source address it sees.
type natTopology struct {
	host, inet, guest nettest.NS
	server            string
}

func newNATTopology(t *testing.T) *natTopology {
	tp := &natTopology{host: nettest.New(t), inet: nettest.New(t), guest: nettest.New(t)}
	tp.host.Do(t, func() error { return EnsureBridge("banger0", subnet24) })
	h, i, g := tp.host, tp.inet, tp.guest
	h.Exec(t, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "wan0", "netns", i.Name)
	h.Exec(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "up0")
	h.Exec(t, "ip", "link", "set", "up0", "up")
	h.Exec(t, "ip", "route", "add", "default", "via", "192.0.2.2")
	i.Exec(t, "ip", "addr", "add", "192.0.2.2/24", "dev", "wan0")
	i.Exec(t, "ip", "link", "set", "wan0", "up")
	h.Exec(t, "ip", "link", "add", "gb0", "type", "veth", "peer", "name", "eth0", "netns", g.Name)
	h.Exec(t, "ip", "link", "set", "gb0", "master", "banger0", "up")
	g.Exec(t, "ip", "addr", "add", "172.30.0.2/24", "dev", "eth0")
	g.Exec(t, "ip", "link", "set", "eth0", "up")
	g.Exec(t, "ip", "route", "add", "default", "via", "172.30.0.1")

	tp.server = serve(t, i, "192.0.2.2:0", func(remote string) string {
		host, _, _ := net.SplitHostPort(remote)
		return host
	})
	return tp
}

// dial connects from the guest and returns the source address the server saw.
func (tp *natTopology) dial(t *testing.T) (string, error) {
	var seen string
	var dialErr error
	tp.guest.Do(t, func() error {
		c, err := (&net.Dialer{Timeout: time.Second}).Dial("tcp", tp.server)
		if err != nil {
			dialErr = err
			return nil
		}
		defer c.Close()
		b, err := io.ReadAll(c)
		seen, dialErr = string(b), err
		return nil
	})
	return seen, dialErr
}

// counters matches packet counters in nft and iptables-save output.
var counters = regexp.MustCompile(`counter packets \d+ bytes \d+|\[\d+:\d+\]`)

func TestNATEndToEnd(t *testing.T) {
	nettest.RequireRoot(t)
	for _, tc := range []struct {
		name        string
		hideNFT     bool
		forwardDrop bool
	}{
		{name: "nft"},
		{name: "iptables", hideNFT: true},
		{name: "nft-with-forward-policy-drop", forwardDrop: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newNATTopology(t)
			if tc.forwardDrop {
				tp.host.Exec(t, "iptables", "-w", "-P", "FORWARD", "DROP")
			}
			// The administrator's own rule, there before banger.
			tp.host.Exec(t, "iptables", "-w", "-A", "FORWARD", "-i", "admin0", "-j", "DROP")
			tp.host.Exec(t, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/16", "-o", "up0", "-j", "MASQUERADE")
			tp.host.Exec(t, "nft", "add", "table", "inet", "admin")
			tp.host.Exec(t, "nft", "add", "chain", "inet", "admin", "adminin", "{ type filter hook input priority 0; policy accept; }")
			tp.host.Exec(t, "nft", "add", "rule", "inet", "admin", "adminin", "tcp", "dport", "22", "accept")
			// The whole rulesets, before banger's NAT and after its removal.
			rulesets := func() string {
				var keep []string
				for _, l := range strings.Split(tp.host.Exec(t, "iptables-save"), "\n") {
					if !strings.HasPrefix(l, "#") { // comments carry the time
						keep = append(keep, l)
					}
				}
				// Packet counters move with traffic (the dials); rules do not.
				return counters.ReplaceAllString(tp.host.Exec(t, "nft", "list", "ruleset")+"\n---\n"+strings.Join(keep, "\n"), "[counters]")
			}
			before := rulesets()
			if seen, err := tp.dial(t); err == nil {
				t.Fatalf("guest reached the internet before NAT (seen %s)", seen)
			}
			fw := Firewall{Run: tp.host.Runner(), LookPath: func(name string) (string, error) {
				if tc.hideNFT && name == "nft" {
					return "", errors.New("nft hidden by the test")
				}
				return sysexec.LookPath(name)
			}}
			ctx := context.Background()
			for range 2 { // idempotent
				tp.host.Do(t, func() error {
					return fw.EnsureNAT(ctx, NATRule{Subnet: subnet24, Bridge: "banger0", Uplinks: []string{"up0"}})
				})
			}
			if v := tp.host.Exec(t, "cat", "/proc/sys/net/ipv4/ip_forward"); v != "1" {
				t.Errorf("ip_forward in the host namespace = %s", v)
			}
			if tc.hideNFT || tc.forwardDrop {
				fwd := strings.Split(tp.host.Exec(t, "iptables", "-w", "-S", "FORWARD"), "\n")
				if last := fwd[len(fwd)-1]; last != "-A FORWARD -j BANGER-FWD-banger0" || !strings.Contains(strings.Join(fwd, "\n"), "-A FORWARD -i admin0 -j DROP") {
					t.Errorf("banger's jump must come after the administrator's rules:\n%s", strings.Join(fwd, "\n"))
				}
			}
			if tc.hideNFT {
				if n := strings.Count(tp.host.Exec(t, "iptables", "-w", "-t", "nat", "-S", "POSTROUTING"), "-j BANGER-NAT-banger0"); n != 1 {
					t.Errorf("%d jumps to BANGER-NAT-banger0 after two ensures, want 1", n)
				}
			} else if n := strings.Count(tp.host.Exec(t, "nft", "list", "ruleset"), "table ip banger-banger0"); n != 1 {
				t.Errorf("%d banger tables after two ensures, want 1", n)
			}
			seen, err := tp.dial(t)
			if err != nil {
				t.Fatalf("guest could not reach the internet through NAT: %v\n%s", err, tp.host.Exec(t, "nft", "list", "ruleset"))
			}
			if seen != "192.0.2.1" {
				t.Errorf("internet saw %s, want the uplink address 192.0.2.1 (masquerade)", seen)
			}

			tp.host.Do(t, func() error { return fw.RemoveNAT(ctx, "banger0") })
			rules := tp.host.Exec(t, "nft", "list", "ruleset")
			if strings.Contains(rules, "banger") || strings.Contains(rules, "BANGER") {
				t.Errorf("banger rules left after RemoveNAT:\n%s", rules)
			}
			if tc.forwardDrop && !strings.Contains(tp.host.Exec(t, "iptables", "-w", "-S", "FORWARD"), "-P FORWARD DROP") {
				t.Error("RemoveNAT changed someone else's FORWARD policy")
			}
			if after := rulesets(); after != before {
				t.Errorf("RemoveNAT did not restore the rulesets (someone else's nft table and iptables rules among them):\n%s\nwant\n%s", after, before)
			}
			if _, err := tp.dial(t); err == nil {
				t.Error("guest still reaches the internet after RemoveNAT")
			}
		})
	}
}

// serve answers each TCP connection to addr inside ns with reply(remote
// address) until the test ends, and returns the address it listens on.
func serve(t *testing.T, ns nettest.NS, addr string, reply func(remote string) string) string {
	t.Helper()
	var ln net.Listener
	ns.Do(t, func() (err error) { ln, err = net.Listen("tcp", addr); return err })
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, reply(c.RemoteAddr().String()))
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func sayHi(string) string { return "hi" }

// reaches reports whether a TCP connection from ns to addr gets "hi".
func reaches(t *testing.T, ns nettest.NS, addr string) bool {
	t.Helper()
	got := false
	ns.Do(t, func() error {
		c, err := (&net.Dialer{Timeout: 700 * time.Millisecond}).Dial("tcp", addr)
		if err != nil {
			return nil
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
		b, _ := io.ReadAll(c)
		got = string(b) == "hi"
		return nil
	})
	return got
}

// TestNATIsolatesBridges: with NAT on for two bridges (two users' VMs), the
// host forwards each bridge's traffic to the uplink only: one bridge's VMs
// cannot reach the other's, and the outside cannot reach the VMs, even though
// forwarding is on and the host has no firewall of its own. Without banger's
// NAT both were reachable, which the test checks first.
func TestNATIsolatesBridges(t *testing.T) {
	tp := newNATTopology(t)
	subnet1 := netip.MustParsePrefix("172.30.1.0/24")
	other := nettest.New(t)
	h := tp.host
	h.Do(t, func() error { return EnsureBridge("banger1", subnet1) })
	h.Exec(t, "ip", "link", "add", "gb1", "type", "veth", "peer", "name", "eth0", "netns", other.Name)
	h.Exec(t, "ip", "link", "set", "gb1", "master", "banger1", "up")
	other.Exec(t, "ip", "addr", "add", "172.30.1.2/24", "dev", "eth0")
	other.Exec(t, "ip", "link", "set", "eth0", "up")
	other.Exec(t, "ip", "route", "add", "default", "via", "172.30.1.1")
	tp.inet.Exec(t, "ip", "route", "add", "172.30.0.0/16", "via", "192.0.2.1")
	h.Exec(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")

	guest0 := serve(t, tp.guest, "172.30.0.2:0", sayHi)
	guest1 := serve(t, other, "172.30.1.2:0", sayHi)
	if !reaches(t, tp.guest, guest1) || !reaches(t, tp.inet, guest0) {
		t.Fatal("the topology does not forward without banger's rules; the isolation check would prove nothing")
	}

	fw := Firewall{Run: h.Runner()}
	ctx := context.Background()
	h.Do(t, func() error {
		if err := fw.EnsureNAT(ctx, NATRule{Subnet: subnet24, Bridge: "banger0", Uplinks: []string{"up0"}}); err != nil {
			return err
		}
		return fw.EnsureNAT(ctx, NATRule{Subnet: subnet1, Bridge: "banger1", Uplinks: []string{"up0"}})
	})
	if seen, err := tp.dial(t); err != nil || seen != "192.0.2.1" {
		t.Errorf("guest of banger0 to the internet: %q, %v", seen, err)
	}
	for _, c := range []struct {
		name string
		from nettest.NS
		to   string
	}{
		{"banger0 guest to banger1 guest", tp.guest, guest1},
		{"banger1 guest to banger0 guest", other, guest0},
		{"outside to banger0 guest", tp.inet, guest0},
		{"outside to banger1 guest", tp.inet, guest1},
	} {
		if reaches(t, c.from, c.to) {
			t.Errorf("%s: reachable through the host with NAT on", c.name)
		}
	}
	// Removing one bridge's NAT leaves the other's in place.
	h.Do(t, func() error { return fw.RemoveNAT(ctx, "banger0") })
	rules := h.Exec(t, "nft", "list", "ruleset")
	if strings.Contains(rules, "banger-banger0") || !strings.Contains(rules, "table ip banger-banger1") {
		t.Errorf("after removing banger0's NAT:\n%s", rules)
	}
}
