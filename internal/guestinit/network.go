package guestinit

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// setupNetwork brings up lo and the ip= device over netlink (the image has
// no `ip`), and sets the hostname, /etc/hosts and /etc/resolv.conf as
// banger-net does on the systemd images.
func setupNetwork(cfg IPConfig, etc string, logf func(string, ...any)) error {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		if err := netlink.LinkSetUp(lo); err != nil {
			logf("network: lo up: %v", err)
		}
	}
	var link netlink.Link
	var err error
	// The NIC driver may still be probing.
	for i := 0; i < 100; i++ {
		if link, err = netlink.LinkByName(cfg.Device); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("network: device %s did not appear: %w", cfg.Device, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("network: %s up: %w", cfg.Device, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(cfg.Client.AsSlice()), Mask: net.CIDRMask(cfg.Prefix, 32)}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("network: address %s/%d on %s: %w", cfg.Client, cfg.Prefix, cfg.Device, err)
	}
	logf("network: %s %s/%d", cfg.Device, cfg.Client, cfg.Prefix)
	if cfg.Gateway.IsValid() {
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.IP(cfg.Gateway.AsSlice()),
			Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}
		if err := netlink.RouteReplace(route); err != nil {
			return fmt.Errorf("network: default route via %s: %w", cfg.Gateway, err)
		}
		logf("network: default route via %s", cfg.Gateway)
	}
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			logf("hostname: %v", err)
		}
		_ = os.WriteFile(etc+"/hostname", []byte(cfg.Hostname+"\n"), 0o644)
		_ = writeHosts(etc+"/hosts", cfg.Hostname)
		logf("hostname: %s", cfg.Hostname)
	}
	if cfg.DNS.IsValid() {
		_ = os.Remove(etc + "/resolv.conf")
		_ = os.WriteFile(etc+"/resolv.conf", []byte("# written by banger-agent (PID 1) from the kernel command line\nnameserver "+cfg.DNS.String()+"\nsearch vm\n"), 0o644)
	}
	return nil
}

// writeHosts keeps localhost and the VM's name resolvable.
func writeHosts(path, host string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		old = []byte("127.0.0.1\tlocalhost\n")
	}
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		if !strings.HasSuffix(l, "# banger") {
			keep = append(keep, l)
		}
	}
	keep = append(keep, "127.0.1.1\t"+host+".vm "+host+" # banger")
	return os.WriteFile(path, []byte(strings.Join(keep, "\n")+"\n"), 0o644)
}
