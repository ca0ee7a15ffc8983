package hostnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// The guests' resolver is the bridge address, port 53 (the kernel's ip=
// argument has no port, nor has resolv.conf). When bangerd cannot serve on
// 53 there (another server holds it, such as mapdns on every address, or a
// non-root daemon may not bind it), a DNS redirect sends what the guests
// send to the bridge address's port 53 (UDP and TCP, entering the bridge) to
// the port bangerd serves on. Only packets entering the bridge are changed:
// the host's own queries to that address still reach whoever holds 53.
//
// It lives in objects of its own, like NAT: the nftables table `ip
// banger-dns-BRIDGE`, or the iptables nat chain BANGER-DNS-BRIDGE jumped to
// from PREROUTING.

// DNSRedirect is one bridge's redirect.
type DNSRedirect struct {
	Bridge  string
	Gateway netip.Addr // the bridge address the guests ask
	Port    int        // where bangerd serves on Gateway
}

// MinRedirectPort is the lowest port a redirect may target: a redirect
// exists for a daemon that serves above the privileged ports.
const MinRedirectPort = 1024

func (r DNSRedirect) check() error {
	if err := CheckBridgeName(r.Bridge); err != nil {
		return err
	}
	if !r.Gateway.Is4() {
		return fmt.Errorf("DNS redirect: gateway %s is not an IPv4 address", r.Gateway)
	}
	if r.Port < MinRedirectPort || r.Port > 65535 {
		return fmt.Errorf("DNS redirect to port %d refused: use a port from %d to 65535", r.Port, MinRedirectPort)
	}
	return nil
}

// NFTDNSTable is the nftables table (family ip) of bridge's DNS redirect.
func NFTDNSTable(bridge string) string { return "banger-dns-" + bridge }

// IptDNSChain is the iptables nat chain of bridge's DNS redirect.
func IptDNSChain(bridge string) string { return "BANGER-DNS-" + bridge }

// RenderDNSRedirectNFT renders the ruleset fed to `nft -f -`: it creates,
// deletes and recreates the table in one transaction.
func RenderDNSRedirectNFT(r DNSRedirect) (string, error) {
	if err := r.check(); err != nil {
		return "", err
	}
	t, to := NFTDNSTable(r.Bridge), r.Gateway.String()+":"+strconv.Itoa(r.Port)
	rule := func(proto string) string {
		return fmt.Sprintf("\t\tiifname %q ip daddr %s %s dport 53 dnat to %s\n", r.Bridge, r.Gateway, proto, to)
	}
	return "table ip " + t + "\ndelete table ip " + t + "\ntable ip " + t + " {\n" +
		"\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n" +
		rule("udp") + rule("tcp") + "\t}\n}\n", nil
}

// IptablesDNSRedirectRules returns the iptables argv (without the program
// name) that fill the bridge's DNS chain.
func IptablesDNSRedirectRules(r DNSRedirect) [][]string {
	c, to := IptDNSChain(r.Bridge), r.Gateway.String()+":"+strconv.Itoa(r.Port)
	var out [][]string
	for _, proto := range []string{"udp", "tcp"} {
		out = append(out, []string{"-t", "nat", "-A", c, "-i", r.Bridge, "-d", r.Gateway.String(), "-p", proto,
			"--dport", "53", "-j", "DNAT", "--to-destination", to})
	}
	return out
}

// EnsureDNSRedirect installs (or replaces) the bridge's DNS redirect.
func (f Firewall) EnsureDNSRedirect(ctx context.Context, r DNSRedirect) error {
	if err := r.check(); err != nil {
		return err
	}
	if err := f.Preflight(); err != nil {
		return err
	}
	if nft := f.path("nft"); nft != "" {
		ruleset, err := RenderDNSRedirectNFT(r)
		if err != nil {
			return err
		}
		if _, err := f.run(ctx, ruleset, nft, "-f", "-"); err != nil {
			return fmt.Errorf("apply nftables table ip %s: %w", NFTDNSTable(r.Bridge), err)
		}
		return nil
	}
	if err := f.iptChain(ctx, f.path("iptables"), "nat", IptDNSChain(r.Bridge), "PREROUTING", IptablesDNSRedirectRules(r)); err != nil {
		_ = f.RemoveDNSRedirect(ctx, r.Bridge)
		return err
	}
	return nil
}

// RemoveDNSRedirect deletes the bridge's DNS redirect table and chain,
// whichever exist, and nothing else.
func (f Firewall) RemoveDNSRedirect(ctx context.Context, bridge string) error {
	if err := CheckBridgeName(bridge); err != nil {
		return err
	}
	var errs []error
	if nft := f.path("nft"); nft != "" {
		table := NFTDNSTable(bridge)
		if _, err := f.run(ctx, "", nft, "list", "table", "ip", table); err == nil {
			if _, err := f.run(ctx, "", nft, "delete", "table", "ip", table); err != nil {
				errs = append(errs, fmt.Errorf("delete nftables table ip %s: %w", table, err))
			}
		}
	}
	if ipt := f.path("iptables"); ipt != "" {
		if err := f.iptRemoveChain(ctx, ipt, "nat", IptDNSChain(bridge), "PREROUTING"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
