// Package hostnet sets up the host side of banger's VM network: the bridge,
// one tap per VM, NAT in banger-owned nftables/iptables objects, subnet clash
// detection and systemd-resolved registration. Everything here needs root
// except the pure helpers; the daemon reaches it through internal/privhelper.
package hostnet

import (
	"fmt"
	"net/netip"
	"regexp"
)

// Defaults fixed for the whole project.
const (
	DefaultBridge = "banger0"
	DefaultSubnet = "172.30.0.0/24"
	DNSDomain     = "vm"
	TapPrefix     = "bg-"
)

var (
	tapNameRE    = regexp.MustCompile(`^bg-[0-9a-f]{8}$`)
	bridgeNameRE = regexp.MustCompile(`^banger[a-z0-9]{0,9}$`)
	vmIDRE       = regexp.MustCompile(`^[0-9a-f]{8}$`)
)

// TapName is the tap device of a VM: "bg-" + its 8-hex-char id.
func TapName(vmID string) string { return TapPrefix + vmID }

// ValidVMID reports whether id is a banger VM id (8 lowercase hex chars).
func ValidVMID(id string) bool { return vmIDRE.MatchString(id) }

// MACForIP derives the guest MAC from its IPv4 address: 06:00 followed by the
// four address bytes, so the guest can tell its address from its MAC.
func MACForIP(ip netip.Addr) string {
	b := ip.Unmap().As4()
	return fmt.Sprintf("06:00:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// Gateway is the bridge address of a subnet: its first host address.
func Gateway(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// Netmask renders the prefix length as a dotted mask (for the kernel ip= arg).
func Netmask(p netip.Prefix) string {
	bits := p.Bits()
	var m [4]byte
	for i := range 4 {
		n := min(max(bits-8*i, 0), 8)
		m[i] = byte(0xff << (8 - n))
	}
	return netip.AddrFrom4(m).String()
}

// CheckTapName refuses anything but a banger tap name.
func CheckTapName(name string) error {
	if !tapNameRE.MatchString(name) {
		return fmt.Errorf("tap name %q refused: banger taps are named bg- followed by 8 lowercase hex chars (e.g. bg-1a2b3c4d)", name)
	}
	return nil
}

// CheckBridgeName refuses anything but a banger bridge name (< 16 bytes).
func CheckBridgeName(name string) error {
	if !bridgeNameRE.MatchString(name) {
		return fmt.Errorf("bridge name %q refused: banger bridges are named banger followed by up to 9 lowercase letters or digits (e.g. %s)", name, DefaultBridge)
	}
	return nil
}

var privateV4 = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

// CheckSubnetShape refuses a VM subnet that is not a private IPv4 range of /16 to
// /29 given by its network address.
func CheckSubnetShape(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() {
		return fmt.Errorf("subnet %s refused: use a private IPv4 subnet such as %s", p, DefaultSubnet)
	}
	if p.Bits() < 16 || p.Bits() > 29 {
		return fmt.Errorf("subnet %s refused: the prefix length must be between /16 and /29 (e.g. %s)", p, DefaultSubnet)
	}
	if p.Masked() != p {
		return fmt.Errorf("subnet %s refused: host bits are set; did you mean %s?", p, p.Masked())
	}
	for _, r := range privateV4 {
		if r.Contains(p.Addr()) && r.Bits() <= p.Bits() {
			return nil
		}
	}
	return fmt.Errorf("subnet %s refused: it is not a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)", p)
}

// ParseSubnet parses and checks a subnet argument.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("subnet %q is not a CIDR prefix (e.g. %s)", s, DefaultSubnet)
	}
	if err := CheckSubnetShape(p); err != nil {
		return netip.Prefix{}, err
	}
	return p, nil
}
