package hostnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// EnsureBridge creates the bridge if missing, gives it the subnet's gateway
// address and brings it up. It is idempotent; when it creates the bridge and
// a later step fails, it deletes the bridge again.
func EnsureBridge(name string, subnet netip.Prefix) error {
	if err := CheckBridgeName(name); err != nil {
		return err
	}
	if err := CheckSubnetShape(subnet); err != nil {
		return err
	}
	created := false
	link, err := netlink.LinkByName(name)
	switch {
	case err == nil:
		if link.Type() != "bridge" {
			return fmt.Errorf("interface %s exists but is a %s, not a bridge: delete it (ip link del %s) or choose another bridge name", name, link.Type(), name)
		}
	case isNotFound(err):
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("create bridge %s: %w", name, err)
		}
		created = true
		if link, err = netlink.LinkByName(name); err != nil {
			_ = netlink.LinkDel(br)
			return fmt.Errorf("look up new bridge %s: %w", name, err)
		}
	default:
		return fmt.Errorf("look up bridge %s: %w", name, err)
	}
	undo := func(err error) error {
		if created {
			_ = netlink.LinkDel(link)
		}
		return err
	}
	gw := Gateway(subnet)
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)}}
	// Drop stale IPv4 addresses (a changed subnet) before adding the current one.
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return undo(fmt.Errorf("list addresses of %s: %w", name, err))
	}
	for _, a := range addrs {
		if !a.IPNet.IP.Equal(addr.IP) || a.IPNet.Mask.String() != addr.Mask.String() {
			if err := netlink.AddrDel(link, &a); err != nil {
				return undo(fmt.Errorf("remove stale address %s from %s: %w", a.IPNet, name, err))
			}
		}
	}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return undo(fmt.Errorf("assign %s/%d to bridge %s: %w", gw, subnet.Bits(), name, err))
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return undo(fmt.Errorf("bring bridge %s up: %w", name, err))
	}
	return nil
}

// DeleteBridge removes the bridge; a missing bridge is not an error.
func DeleteBridge(name string) error {
	if err := CheckBridgeName(name); err != nil {
		return err
	}
	return deleteLink(name, "bridge")
}

// AddTap creates a persistent tap owned by uid (so a VMM running as that user
// can open it), attaches it to the bridge and brings it up. The tap is created
// with IFF_NO_PI|IFF_VNET_HDR and a single queue: Firecracker opens it with
// exactly those flags, and QEMU's -netdev tap (no queues=) opens a
// single-queue tap too; the kernel only refuses re-opening a persistent tap
// whose multi-queue setting differs.
func AddTap(name, bridge string, uid int) error {
	if err := CheckTapName(name); err != nil {
		return err
	}
	if err := CheckBridgeName(bridge); err != nil {
		return err
	}
	if uid < 0 {
		return fmt.Errorf("tap %s: uid %d is not a valid user id", name, uid)
	}
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("tap %s: bridge %s is missing (%v): ensure the bridge first", name, bridge, err)
	}
	// An existing tap that is already right is kept (a running VMM may hold
	// it); anything else under that name is replaced.
	if l, err := netlink.LinkByName(name); err == nil {
		if t, ok := l.(*netlink.Tuntap); ok && t.Mode == netlink.TUNTAP_MODE_TAP && int(t.Owner) == uid &&
			t.Attrs().MasterIndex == br.Attrs().Index {
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("bring tap %s up: %w", name, err)
			}
			return nil
		}
	}
	if err := deleteLink(name, "tuntap"); err != nil {
		return err
	}
	if err := createPersistentTap(name, uid); err != nil {
		return fmt.Errorf("create tap %s: %w", name, err)
	}
	undo := func(err error) error {
		_ = deleteLink(name, "tuntap")
		return err
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return undo(fmt.Errorf("look up new tap %s: %w", name, err))
	}
	if err := netlink.LinkSetMaster(link, br); err != nil {
		return undo(fmt.Errorf("attach tap %s to bridge %s: %w", name, bridge, err))
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return undo(fmt.Errorf("bring tap %s up: %w", name, err))
	}
	return nil
}

// createPersistentTap does what `ip tuntap add NAME mode tap user UID` does:
// it sets the owner but no group. (netlink.Tuntap always sets a group, gid 0
// by default, and the kernel then also requires membership of that group, so
// the owner alone could not open the tap.)
func createPersistentTap(name string, uid int) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/net/tun (is the tun module loaded?): %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_TUN_EXCL)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("TUNSETIFF: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, uid); err != nil {
		return fmt.Errorf("TUNSETOWNER %d: %w", uid, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		return fmt.Errorf("TUNSETPERSIST: %w", err)
	}
	return nil
}

// DeleteTap removes a tap; a missing tap is not an error.
func DeleteTap(name string) error {
	if err := CheckTapName(name); err != nil {
		return err
	}
	return deleteLink(name, "tuntap")
}

func deleteLink(name, wantType string) error {
	link, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if link.Type() != wantType {
		return fmt.Errorf("interface %s is a %s, not a %s: refusing to delete it", name, link.Type(), wantType)
	}
	if err := netlink.LinkDel(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s %s: %w", wantType, name, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// StrayTaps lists banger taps (bg-XXXXXXXX) attached to bridge, or attached
// to nothing, whose names are not in known: taps left behind by VMs that no
// longer exist.
func StrayTaps(bridge string, known map[string]bool) ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	brIndex := -1
	if br, err := netlink.LinkByName(bridge); err == nil {
		brIndex = br.Attrs().Index
	}
	var stray []string
	for _, l := range links {
		a := l.Attrs()
		if CheckTapName(a.Name) != nil || known[a.Name] {
			continue
		}
		if a.MasterIndex != 0 && a.MasterIndex != brIndex {
			continue // someone else's bridge: not ours to judge
		}
		stray = append(stray, a.Name)
	}
	return stray, nil
}

// EnableIPForward turns on IPv4 forwarding (needed for NAT).
func EnableIPForward() error {
	const p = "/proc/sys/net/ipv4/ip_forward"
	cur, err := os.ReadFile(p)
	if err == nil && strings.TrimSpace(string(cur)) == "1" {
		return nil
	}
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding (%s): %w", p, err)
	}
	return nil
}

// Uplinks names the interfaces of the IPv4 default routes in the main table,
// lowest metric first, or none when the host has no default route.
func Uplinks() ([]string, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	slices.SortStableFunc(routes, func(a, b netlink.Route) int { return a.Priority - b.Priority })
	var names []string
	for _, r := range routes {
		if !isDefault(r) || r.LinkIndex == 0 {
			continue
		}
		l, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			continue
		}
		if n := l.Attrs().Name; !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names, nil
}

func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// Link is what the privileged helper needs to know about an interface to
// decide whose it is.
type Link struct {
	Name     string
	Exists   bool
	Type     string // "bridge", "tuntap", "veth", ...
	TapOwner int    // owner uid of a tap (TUNSETOWNER), -1 when none or not a tap
	Master   string // the bridge it is attached to, "" when none
}

// LookupLink describes the interface name; a missing one has Exists false.
func LookupLink(name string) (Link, error) {
	l, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return Link{Name: name, TapOwner: -1}, nil
	}
	if err != nil {
		return Link{}, fmt.Errorf("look up %s: %w", name, err)
	}
	return describe(l), nil
}

func describe(l netlink.Link) Link {
	out := Link{Name: l.Attrs().Name, Exists: true, Type: l.Type(), TapOwner: -1}
	if t, ok := l.(*netlink.Tuntap); ok && t.Mode == netlink.TUNTAP_MODE_TAP && t.Owner != ^uint32(0) {
		out.TapOwner = int(t.Owner)
	}
	if m := l.Attrs().MasterIndex; m != 0 {
		if ml, err := netlink.LinkByIndex(m); err == nil {
			out.Master = ml.Attrs().Name
		}
	}
	return out
}

// BridgePorts lists the interfaces attached to bridge.
func BridgePorts(bridge string) ([]Link, error) {
	br, err := netlink.LinkByName(bridge)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", bridge, err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []Link
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			out = append(out, describe(l))
		}
	}
	return out, nil
}

// LinkNames lists every interface name in this network namespace.
func LinkNames() (map[string]bool, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	out := make(map[string]bool, len(links))
	for _, l := range links {
		out[l.Attrs().Name] = true
	}
	return out, nil
}

// BridgeHasAddress reports whether addr is assigned to the bridge.
func BridgeHasAddress(bridge string, addr netip.Addr) (bool, error) {
	l, err := netlink.LinkByName(bridge)
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", bridge, err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return false, fmt.Errorf("list addresses of %s: %w", bridge, err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IPNet.IP.To4()); ok && got == addr {
			return true, nil
		}
	}
	return false, nil
}
