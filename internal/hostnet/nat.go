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

// NAT lives in objects banger owns, one set per bridge (and so per user: a
// bridge belongs to one uid), so removing one user's NAT never touches anyone
// else's rules, banger's or not:
//
//   - nftables (preferred): `table ip banger-BRIDGE` with a postrouting nat
//     chain (masquerade the VM subnet out of the uplink) and a forward filter
//     chain. Applied with `nft -f -` in one transaction that creates, deletes
//     and recreates the table, so re-applying replaces it atomically.
//   - iptables (when nft is absent): chains BANGER-NAT-BRIDGE (nat) and
//     BANGER-FWD-BRIDGE (filter), jumped to from the END of POSTROUTING and
//     FORWARD.
//
// What is forwarded: only packets from the bridge with a source in the VM
// subnet towards the uplink (the interfaces of the default routes), replies
// to them, and bridged traffic between the VMs of that bridge. Everything
// else that enters or leaves the bridge through the forward hook is dropped,
// so one user's VMs cannot reach another user's bridge and the LAN cannot
// reach the VMs. Nothing here accepts traffic of other interfaces.
//
// Placement: the iptables jumps are appended, after the administrator's own
// rules and Docker's chains (DOCKER-USER, isolation), which therefore still
// decide first. In nftables an accept in banger's chain does not override a
// drop in another base chain on the same hook, so an administrator's nft
// firewall also keeps the last word. Where iptables' FORWARD policy is DROP
// (Docker sets it), the BANGER-FWD chain is installed next to the nft table so
// that the VM traffic is accepted there too.
//
// IPv4 forwarding is one host-wide switch in Linux; NAT turns it on. banger's
// rules accept only the traffic described above; forwarding between other
// interfaces is left to the host's firewall, as before banger.

// NATRule is what one NAT setup needs.
type NATRule struct {
	Subnet netip.Prefix
	Bridge string
	// Uplinks are the interfaces VM traffic may leave through. With none
	// (the host has no default route: offline), only the isolation rules
	// are installed; `banger host nat on` or a daemon restart once the host
	// is online adds masquerading.
	Uplinks []string
}

func (r NATRule) check() error {
	if err := CheckSubnetShape(r.Subnet); err != nil {
		return err
	}
	if err := CheckBridgeName(r.Bridge); err != nil {
		return err
	}
	for _, u := range r.Uplinks {
		if err := CheckUplinkName(u); err != nil {
			return err
		}
		if u == r.Bridge {
			return fmt.Errorf("uplink %q refused: it is the VM bridge", u)
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

// NFTTable is the nftables table (family ip) holding bridge's NAT.
func NFTTable(bridge string) string { return "banger-" + bridge }

// Iptables chain names of bridge's NAT.
func IptNATChain(bridge string) string     { return "BANGER-NAT-" + bridge }
func IptForwardChain(bridge string) string { return "BANGER-FWD-" + bridge }

var nftTemplate = template.Must(template.New("nft").Funcs(template.FuncMap{
	"ifset": func(names []string) string {
		q := make([]string, len(names))
		for i, n := range names {
			q[i] = `"` + n + `"`
		}
		return "{ " + strings.Join(q, ", ") + " }"
	},
	"table": NFTTable,
}).Parse(`table ip {{table .Bridge}}
delete table ip {{table .Bridge}}
table ip {{table .Bridge}} {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
{{- if .Uplinks}}
		ip saddr {{.Subnet}} oifname {{ifset .Uplinks}} masquerade
{{- end}}
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "{{.Bridge}}" oifname "{{.Bridge}}" accept
{{- if .Uplinks}}
		iifname "{{.Bridge}}" ip saddr {{.Subnet}} oifname {{ifset .Uplinks}} accept
		iifname {{ifset .Uplinks}} oifname "{{.Bridge}}" ip daddr {{.Subnet}} ct state established,related accept
{{- end}}
		iifname "{{.Bridge}}" drop
		oifname "{{.Bridge}}" drop
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

// IptablesNATRules returns the iptables argv (without the program name) that
// fill the bridge's nat chain, in order.
func IptablesNATRules(r NATRule) [][]string {
	var out [][]string
	for _, u := range r.Uplinks {
		out = append(out, []string{"-t", "nat", "-A", IptNATChain(r.Bridge), "-s", r.Subnet.String(), "-o", u, "-j", "MASQUERADE"})
	}
	return out
}

// IptablesForwardRules returns the iptables argv that fill the bridge's
// forward chain: the same policy as the nft forward chain.
func IptablesForwardRules(r NATRule) [][]string {
	c, br, s := IptForwardChain(r.Bridge), r.Bridge, r.Subnet.String()
	out := [][]string{{"-t", "filter", "-A", c, "-i", br, "-o", br, "-j", "ACCEPT"}}
	for _, u := range r.Uplinks {
		out = append(out,
			[]string{"-t", "filter", "-A", c, "-i", br, "-s", s, "-o", u, "-j", "ACCEPT"},
			[]string{"-t", "filter", "-A", c, "-i", u, "-o", br, "-d", s, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"})
	}
	return append(out,
		[]string{"-t", "filter", "-A", c, "-i", br, "-j", "DROP"},
		[]string{"-t", "filter", "-A", c, "-o", br, "-j", "DROP"})
}

// Firewall applies NAT through nft or iptables run by Run.
type Firewall struct {
	Run sysexec.Runner
	// LookPath returns the absolute path of a program; nil means
	// sysexec.LookPath. The privileged helper passes rootsafe.LookProgram,
	// so root never runs a program found through the caller's PATH.
	LookPath func(string) (string, error)
}

// path returns the program's absolute path, or "" when it is not installed.
func (f Firewall) path(name string) string {
	lp := f.LookPath
	if lp == nil {
		lp = sysexec.LookPath
	}
	p, err := lp(name)
	if err != nil {
		return ""
	}
	return p
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
	if f.path("nft") == "" && f.path("iptables") == "" {
		problems = append(problems, "neither nft nor iptables is installed (install the nftables package: apt-get install nftables)")
	}
	if os.Geteuid() != 0 && f.path("sudo") == "" {
		problems = append(problems, "bangerd is not root and sudo is missing: install sudo and the privileged helper (see `banger doctor`)")
	}
	if len(problems) > 0 {
		return errors.New("NAT cannot be set up: " + strings.Join(problems, "; "))
	}
	return nil
}

// EnsureNAT enables IPv4 forwarding and installs (or replaces) the bridge's
// NAT rules. On failure it removes what it added.
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
	nft, ipt := f.path("nft"), f.path("iptables")
	if nft != "" {
		ruleset, err := RenderNFT(r)
		if err != nil {
			return err
		}
		if _, err := f.run(ctx, ruleset, nft, "-f", "-"); err != nil {
			return fmt.Errorf("apply nftables table ip %s: %w", NFTTable(r.Bridge), err)
		}
		if ipt != "" && f.forwardPolicyDrop(ctx, ipt) {
			if err := f.iptChain(ctx, ipt, "filter", IptForwardChain(r.Bridge), "FORWARD", IptablesForwardRules(r)); err != nil {
				_ = f.RemoveNAT(ctx, r.Bridge)
				return err
			}
		}
		return nil
	}
	err := f.iptChain(ctx, ipt, "nat", IptNATChain(r.Bridge), "POSTROUTING", IptablesNATRules(r))
	if err == nil {
		err = f.iptChain(ctx, ipt, "filter", IptForwardChain(r.Bridge), "FORWARD", IptablesForwardRules(r))
	}
	if err != nil {
		_ = f.RemoveNAT(ctx, r.Bridge)
		return err
	}
	return nil
}

// forwardPolicyDrop reports whether iptables' filter FORWARD policy drops.
func (f Firewall) forwardPolicyDrop(ctx context.Context, ipt string) bool {
	out, err := f.run(ctx, "", ipt, "-w", "-t", "filter", "-S", "FORWARD")
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

// iptChain creates (or empties) chain in table, fills it with rules and makes
// sure parent jumps to it, appended after the rules already there.
func (f Firewall) iptChain(ctx context.Context, ipt, table, chain, parent string, rules [][]string) error {
	do := func(args ...string) error {
		_, err := f.run(ctx, "", append([]string{ipt, "-w", "-t", table}, args...)...)
		return err
	}
	if do("-S", chain) != nil {
		if err := do("-N", chain); err != nil {
			return fmt.Errorf("create iptables chain %s: %w", chain, err)
		}
	}
	if err := do("-F", chain); err != nil {
		return fmt.Errorf("flush iptables chain %s: %w", chain, err)
	}
	for _, rule := range rules {
		if _, err := f.run(ctx, "", append([]string{ipt, "-w"}, rule...)...); err != nil {
			return fmt.Errorf("add rule to %s: %w", chain, err)
		}
	}
	if do("-C", parent, "-j", chain) != nil {
		if err := do("-A", parent, "-j", chain); err != nil {
			return fmt.Errorf("jump from %s to %s: %w", parent, chain, err)
		}
	}
	return nil
}

// RemoveNAT deletes the bridge's nft table and iptables chains, whichever
// exist. It never flushes or deletes anything else.
func (f Firewall) RemoveNAT(ctx context.Context, bridge string) error {
	if err := CheckBridgeName(bridge); err != nil {
		return err
	}
	var errs []error
	if nft := f.path("nft"); nft != "" {
		table := NFTTable(bridge)
		if _, err := f.run(ctx, "", nft, "list", "table", "ip", table); err == nil {
			if _, err := f.run(ctx, "", nft, "delete", "table", "ip", table); err != nil {
				errs = append(errs, fmt.Errorf("delete nftables table ip %s: %w", table, err))
			}
		}
	}
	if ipt := f.path("iptables"); ipt != "" {
		for _, c := range []struct{ table, chain, parent string }{
			{"nat", IptNATChain(bridge), "POSTROUTING"},
			{"filter", IptForwardChain(bridge), "FORWARD"},
		} {
			if err := f.iptRemoveChain(ctx, ipt, c.table, c.chain, c.parent); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (f Firewall) iptRemoveChain(ctx context.Context, ipt, table, chain, parent string) error {
	do := func(args ...string) error {
		_, err := f.run(ctx, "", append([]string{ipt, "-w", "-t", table}, args...)...)
		return err
	}
	if do("-S", chain) != nil {
		return nil // not there
	}
	// Remove every jump to our chain (a crash may have left more than one).
	for range 16 {
		if do("-C", parent, "-j", chain) != nil {
			break
		}
		if err := do("-D", parent, "-j", chain); err != nil {
			return fmt.Errorf("remove jump from %s to %s: %w", parent, chain, err)
		}
	}
	if err := do("-F", chain); err != nil {
		return fmt.Errorf("flush iptables chain %s: %w", chain, err)
	}
	if err := do("-X", chain); err != nil {
		return fmt.Errorf("delete iptables chain %s: %w", chain, err)
	}
	return nil
}
