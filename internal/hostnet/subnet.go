package hostnet

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// hostPrefix is a network the host already uses, with where it comes from.
type hostPrefix struct {
	prefix netip.Prefix
	link   string
	kind   string // "route" or "address"
}

// hostPrefixes lists IPv4 routes (all tables, default routes excluded) and
// interface addresses, skipping the given bridge (ours).
func hostPrefixes(skipLink string) ([]hostPrefix, error) {
	names := map[int]string{}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var out []hostPrefix
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if isDefault(r) || r.Dst == nil {
			continue
		}
		name := names[r.LinkIndex]
		if name == skipLink && skipLink != "" {
			continue
		}
		if p, ok := toPrefix(r.Dst); ok && !p.Addr().IsLoopback() {
			out = append(out, hostPrefix{p, name, "route"})
		}
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		name := names[a.LinkIndex]
		if name == skipLink && skipLink != "" {
			continue
		}
		if p, ok := toPrefix(a.IPNet); ok && !p.Addr().IsLoopback() {
			out = append(out, hostPrefix{p, name, "address"})
		}
	}
	return out, nil
}

func toPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok || n.IP.To4() == nil {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}

// CheckSubnet reports a host route or address that overlaps subnet, other
// than those on our own bridge, with a free subnet to use instead.
func CheckSubnet(subnet netip.Prefix, bridge string) error {
	if err := CheckSubnetShape(subnet); err != nil {
		return err
	}
	used, err := hostPrefixes(bridge)
	if err != nil {
		return err
	}
	for _, u := range used {
		if u.prefix.Overlaps(subnet) {
			fix := "choose a subnet no interface uses and set subnet = \"...\" in config.toml"
			if s, err := suggest(used); err == nil {
				fix = fmt.Sprintf("set subnet = %q in config.toml", s.String())
			}
			return fmt.Errorf("subnet %s overlaps %s (%s on %s): VMs would be unreachable; %s", subnet, u.prefix, u.kind, u.link, fix)
		}
	}
	return nil
}

// SuggestSubnet returns a /24 in 172.30.0.0–172.31.255.0 that no host route
// or address overlaps.
func SuggestSubnet() (netip.Prefix, error) {
	used, err := hostPrefixes("")
	if err != nil {
		return netip.Prefix{}, err
	}
	return suggest(used)
}

func suggest(used []hostPrefix) (netip.Prefix, error) {
	for second := 30; second <= 31; second++ {
	next:
		for third := 0; third < 256; third++ {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(second), byte(third), 0}), 24)
			for _, u := range used {
				if u.prefix.Overlaps(p) {
					continue next
				}
			}
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /24 in 172.30.0.0/15: set a free private subnet in config.toml")
}
