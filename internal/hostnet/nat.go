package hostnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"text/template"

	"github.com/banger-dev/banger/internal/sysexec"
)

// NAT lives in objects banger owns, so removal is "delete ours" and never
// touches anyone else's rules:
//
//   - nftables (preferred): `table ip banger` with a postrouting nat chain
//     (masquerade the subnet unless it goes back out the bridge) and a forward
//     filter chain (accept from the bridge; accept established/related back
//     to it). Applied with `nft -f -` in one transaction that creates, deletes
//     and recreates the table, so re-applying replaces it atomically.
//   - iptables (when nft is absent): chains BANGER-POSTROUTING (nat) and
//     BANGER-FORWARD (filter), jumped to from the top of POSTROUTING/FORWARD.
//
// Firewalls with a FORWARD policy of DROP (Docker sets one in iptables' filter
// table): in nftables an accept in our chain does not override a drop in
// another base chain on the same hook, so when iptables' FORWARD policy is
// DROP we also install the BANGER-FORWARD iptables chain (jumped to first
// from FORWARD) next to the nft table. NATRemove removes both.
//
// The rules are not pinned to the uplink: `oifname != BRIDGE` keeps working
// when the default route moves (Wi-Fi to Ethernet, VPN up), without
// re-applying. An explicit uplink pins masquerading and forwarding to it.

// NATRule is what one NAT setup needs.
type NATRule struct {
	Subnet netip.Prefix
	Bridge string
	Uplink string // optional: pin masquerade/forward to this interface
}

func (r NATRule) check() error {
	if err := CheckSubnetShape(r.Subnet); err != nil {
		return err
	}
	if err := CheckBridgeName(r.Bridge); err != nil {
		return err
	}
	if r.Uplink != "" {
		if err := CheckUplinkName(r.Uplink); err != nil {
			return err
		}
	}
	return nil
}

// CheckUplinkName accepts a plausible kernel interface name (the uplink is
// the host's own interface, so it has no banger prefix).
func CheckUplinkName(name string) error {
	if len(name) == 0 || len(name) > 15 {
		return fmt.Errorf("uplink %q refused: interface names are 1 to 15 bytes", name)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("uplink %q refused: only letters, digits, '-', '_' and '.' are allowed", name)
		}
	}
	if name == "." || name == ".." {
		return fmt.Errorf("uplink %q refused", name)
	}
	return nil
}

const nftTable = "banger"

var nftTemplate = template.Must(template.New("nft").Parse(`table ip banger
delete table ip banger
table ip banger {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr {{.Subnet}} {{if .Uplink}}oifname "{{.Uplink}}"{{else}}oifname != "{{.Bridge}}"{{end}} masquerade
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "{{.Bridge}}"{{if .Uplink}} oifname "{{.Uplink}}"{{end}} accept
		oifname "{{.Bridge}}" ct state established,related accept
	}
}
`))

// RenderNFT renders the ruleset fed to `nft -f -`.
func RenderNFT(r NATRule) (string, error) {
	if err := r.check(); err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := nftTemplate.Execute(&b, r); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Iptables chain names.
const (
	IptPostrouting = "BANGER-POSTROUTING"
	IptForward     = "BANGER-FORWARD"
)

// IptablesNATRules returns the iptables argv (without the program name) that
// fill BANGER-POSTROUTING, in order.
func IptablesNATRules(r NATRule) [][]string {
	masq := []string{"-t", "nat", "-A", IptPostrouting, "-s", r.Subnet.String(), "!", "-o", r.Bridge}
	if r.Uplink != "" {
		masq = []string{"-t", "nat", "-A", IptPostrouting, "-s", r.Subnet.String(), "-o", r.Uplink}
	}
	return [][]string{append(masq, "-j", "MASQUERADE")}
}

// IptablesForwardRules returns the iptables argv that fill BANGER-FORWARD.
func IptablesForwardRules(r NATRule) [][]string {
	out := []string{"-t", "filter", "-A", IptForward, "-i", r.Bridge}
	if r.Uplink != "" {
		out = append(out, "-o", r.Uplink)
	}
	return [][]string{
		append(out, "-j", "ACCEPT"),
		{"-t", "filter", "-A", IptForward, "-o", r.Bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
	}
}

// Firewall applies NAT through nft or iptables run by Run.
type Firewall struct {
	Run sysexec.Runner
	// LookPath finds a binary; nil means sysexec.LookPath.
	LookPath func(string) (string, error)
}

func (f Firewall) look(name string) bool {
	lp := f.LookPath
	if lp == nil {
		lp = sysexec.LookPath
	}
	_, err := lp(name)
	return err == nil
}

func (f Firewall) run(ctx context.Context, stdin string, argv ...string) ([]byte, error) {
	c := sysexec.Cmd{Argv: argv}
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	res, err := f.Run.Run(ctx, c)
	return res.Stdout, err
}

// NATPreflight says what is missing for NAT before anything is changed.
func NATPreflight() error {
	return Firewall{Run: sysexec.Exec{}}.Preflight()
}

// Preflight reports a missing firewall tool or missing privileges.
func (f Firewall) Preflight() error {
	var problems []string
	if !f.look("nft") && !f.look("iptables") {
		problems = append(problems, "neither nft nor iptables is installed (install the nftables package: apt-get install nftables)")
	}
	if os.Geteuid() != 0 {
		if !f.look("sudo") {
			problems = append(problems, "bangerd is not root and sudo is missing: install sudo and add the line from `banger doctor` to /etc/sudoers.d/banger")
		}
	}
	if len(problems) > 0 {
		return errors.New("NAT cannot be set up: " + strings.Join(problems, "; "))
	}
	return nil
}

// EnsureNAT enables IPv4 forwarding and installs (or replaces) banger's NAT
// rules. On failure it removes what it added.
func (f Firewall) EnsureNAT(ctx context.Context, r NATRule) error {
	if err := r.check(); err != nil {
		return err
	}
	if err := f.Preflight(); err != nil {
		return err
	}
	if err := EnableIPForward(); err != nil {
		return err
	}
	if f.look("nft") {
		ruleset, err := RenderNFT(r)
		if err != nil {
			return err
		}
		if _, err := f.run(ctx, ruleset, "nft", "-f", "-"); err != nil {
			return fmt.Errorf("apply nftables table ip %s: %w", nftTable, err)
		}
		if f.look("iptables") && f.forwardPolicyDrop(ctx) {
			if err := f.iptEnsureForward(ctx, r); err != nil {
				_ = f.RemoveNAT(ctx)
				return err
			}
		}
		return nil
	}
	if err := f.iptEnsure(ctx, r); err != nil {
		_ = f.RemoveNAT(ctx)
		return err
	}
	return nil
}

// forwardPolicyDrop reports whether iptables' filter FORWARD policy drops.
func (f Firewall) forwardPolicyDrop(ctx context.Context) bool {
	out, err := f.run(ctx, "", "iptables", "-w", "-t", "filter", "-S", "FORWARD")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "-P FORWARD DROP" {
			return true
		}
	}
	return false
}

func (f Firewall) iptEnsure(ctx context.Context, r NATRule) error {
	if err := f.iptChain(ctx, "nat", IptPostrouting, "POSTROUTING", IptablesNATRules(r)); err != nil {
		return err
	}
	return f.iptEnsureForward(ctx, r)
}

func (f Firewall) iptEnsureForward(ctx context.Context, r NATRule) error {
	return f.iptChain(ctx, "filter", IptForward, "FORWARD", IptablesForwardRules(r))
}

// iptChain creates (or empties) chain in table, fills it with rules and makes
// sure parent jumps to it first.
func (f Firewall) iptChain(ctx context.Context, table, chain, parent string, rules [][]string) error {
	ipt := func(args ...string) error {
		_, err := f.run(ctx, "", append([]string{"iptables", "-w", "-t", table}, args...)...)
		return err
	}
	if ipt("-S", chain) != nil {
		if err := ipt("-N", chain); err != nil {
			return fmt.Errorf("create iptables chain %s: %w", chain, err)
		}
	}
	if err := ipt("-F", chain); err != nil {
		return fmt.Errorf("flush iptables chain %s: %w", chain, err)
	}
	for _, rule := range rules {
		if _, err := f.run(ctx, "", append([]string{"iptables", "-w"}, rule...)...); err != nil {
			return fmt.Errorf("add rule to %s: %w", chain, err)
		}
	}
	if ipt("-C", parent, "-j", chain) != nil {
		if err := ipt("-I", parent, "1", "-j", chain); err != nil {
			return fmt.Errorf("jump from %s to %s: %w", parent, chain, err)
		}
	}
	return nil
}

// RemoveNAT deletes banger's nft table and iptables chains, whichever exist.
// It never flushes or deletes anything else.
func (f Firewall) RemoveNAT(ctx context.Context) error {
	var errs []error
	if f.look("nft") {
		if _, err := f.run(ctx, "", "nft", "list", "table", "ip", nftTable); err == nil {
			if _, err := f.run(ctx, "", "nft", "delete", "table", "ip", nftTable); err != nil {
				errs = append(errs, fmt.Errorf("delete nftables table ip %s: %w", nftTable, err))
			}
		}
	}
	if f.look("iptables") {
		for _, c := range []struct{ table, chain, parent string }{
			{"nat", IptPostrouting, "POSTROUTING"},
			{"filter", IptForward, "FORWARD"},
		} {
			if err := f.iptRemoveChain(ctx, c.table, c.chain, c.parent); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (f Firewall) iptRemoveChain(ctx context.Context, table, chain, parent string) error {
	ipt := func(args ...string) error {
		_, err := f.run(ctx, "", append([]string{"iptables", "-w", "-t", table}, args...)...)
		return err
	}
	if ipt("-S", chain) != nil {
		return nil // not there
	}
	// Remove every jump to our chain (a crash may have left more than one).
	for range 16 {
		if ipt("-C", parent, "-j", chain) != nil {
			break
		}
		if err := ipt("-D", parent, "-j", chain); err != nil {
			return fmt.Errorf("remove jump from %s to %s: %w", parent, chain, err)
		}
	}
	if err := ipt("-F", chain); err != nil {
		return fmt.Errorf("flush iptables chain %s: %w", chain, err)
	}
	if err := ipt("-X", chain); err != nil {
		return fmt.Errorf("delete iptables chain %s: %w", chain, err)
	}
	return nil
}
