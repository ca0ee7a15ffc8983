package guestinit

import (
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestSetupNetwork applies an ip= configuration over netlink in a fresh
// network and UTS namespace (one locked thread's, gone with it) on a veth
// named eth0: lo and eth0 up, the address, the default route, the
// hostname and the /etc files. Needs root.
func TestSetupNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("host integration test (root, namespaces)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	etc := t.TempDir()
	os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1\tlocalhost\n127.0.1.1\told # banger\n"), 0o644)
	cfg := IPConfig{Client: netip.MustParseAddr("10.77.0.5"), Prefix: 24, Gateway: netip.MustParseAddr("10.77.0.1"),
		Hostname: "tvm", Device: "eth0", DNS: netip.MustParseAddr("10.77.0.1")}
	errs := make(chan string, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with its namespaces
		errs <- func() string {
			if err := unix.Unshare(unix.CLONE_NEWNET | unix.CLONE_NEWUTS); err != nil {
				return "unshare: " + err.Error()
			}
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"}); err != nil {
				return "veth: " + err.Error()
			}
			if err := setupNetwork(cfg, etc, t.Logf); err != nil {
				return err.Error()
			}
			link, err := netlink.LinkByName("eth0")
			if err != nil {
				return err.Error()
			}
			if link.Attrs().Flags&(1<<0) == 0 {
				return "eth0 is not up"
			}
			addrs, _ := netlink.AddrList(link, netlink.FAMILY_V4)
			if len(addrs) != 1 || addrs[0].IPNet.String() != "10.77.0.5/24" {
				return "eth0 addresses: " + addrsString(addrs)
			}
			routes, _ := netlink.RouteList(link, netlink.FAMILY_V4)
			gw := false
			for _, r := range routes {
				if r.Gw != nil && r.Gw.String() == "10.77.0.1" && (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") {
					gw = true
				}
			}
			if !gw {
				return "no default route via 10.77.0.1"
			}
			lo, _ := netlink.LinkByName("lo")
			if lo == nil || lo.Attrs().Flags&(1<<0) == 0 {
				return "lo is not up"
			}
			var uts unix.Utsname
			unix.Uname(&uts)
			if h := unix.ByteSliceToString(uts.Nodename[:]); h != "tvm" {
				return "hostname " + h
			}
			// Applied twice (a restarted agent): still one address.
			if err := setupNetwork(cfg, etc, t.Logf); err != nil {
				return "second run: " + err.Error()
			}
			return ""
		}()
	}()
	if msg := <-errs; msg != "" {
		t.Fatal(msg)
	}
	hosts, _ := os.ReadFile(filepath.Join(etc, "hosts"))
	if string(hosts) != "127.0.0.1\tlocalhost\n127.0.1.1\ttvm.vm tvm # banger\n" {
		t.Errorf("/etc/hosts:\n%s", hosts)
	}
	if r, _ := os.ReadFile(filepath.Join(etc, "resolv.conf")); !strings.Contains(string(r), "nameserver 10.77.0.1\n") {
		t.Errorf("/etc/resolv.conf:\n%s", r)
	}
	if h, _ := os.ReadFile(filepath.Join(etc, "hostname")); string(h) != "tvm\n" {
		t.Errorf("/etc/hostname %q", h)
	}
}

func addrsString(addrs []netlink.Addr) string {
	var s []string
	for _, a := range addrs {
		s = append(s, a.IPNet.String())
	}
	return strings.Join(s, " ")
}
