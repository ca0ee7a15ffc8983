package daemon

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/hostnet/nettest"
	"github.com/banger-dev/banger/internal/privhelper"
)

// `banger host nat on` on a host where no VM has started yet sets up the
// bridge first (NAT belongs to a bridge the caller owns), then NAT; `host
// nat off` and `host teardown --force` remove exactly banger's objects: the
// whole nft ruleset and iptables-save output, with someone else's nft table
// and iptables rules in them, are as they were before NAT went on. The
// daemon runs as root here, so the helper's verbs run in process, in a
// network namespace the test makes.
func TestHostNATAndTeardown(t *testing.T) {
	ns := nettest.New(t)
	ns.Exec(t, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
	ns.Exec(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "up0")
	ns.Exec(t, "ip", "link", "set", "up0", "up")
	ns.Exec(t, "ip", "route", "add", "default", "via", "192.0.2.254")
	// Someone else's firewall, which banger must leave as it is.
	ns.Exec(t, "nft", "add", "table", "inet", "admin")
	ns.Exec(t, "nft", "add", "chain", "inet", "admin", "adminfwd", "{ type filter hook forward priority 0; policy accept; }")
	ns.Exec(t, "nft", "add", "rule", "inet", "admin", "adminfwd", "iifname", "up0p", "drop")
	foreign := ns.Exec(t, "nft", "list", "table", "inet", "admin")
	// ... and iptables rules in the filter and nat tables banger's
	// iptables path uses, with a FORWARD policy of its own.
	ns.Exec(t, "iptables", "-w", "-A", "FORWARD", "-i", "admin0", "-j", "DROP")
	ns.Exec(t, "iptables", "-w", "-P", "FORWARD", "DROP")
	ns.Exec(t, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/16", "-o", "up0", "-j", "MASQUERADE")
	ns.Exec(t, "iptables", "-w", "-N", "ADMIN-CHAIN")
	ns.Exec(t, "iptables", "-w", "-A", "ADMIN-CHAIN", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
	// The whole rulesets, compared after nat off and after teardown.
	rulesets := func() string {
		return ns.Exec(t, "nft", "list", "ruleset") + "\n---\n" + ns.Exec(t, "iptables-save") // iptables-save: no counters (-c) asked
	}
	before := rulesets()

	d := newTestDaemon(t, nil)
	// The real helper (root: its verbs in process, its registry kept per
	// network namespace), not the test stand-in.
	d.Helper = privhelper.New(privhelper.DefaultPath)
	d.Runtime.Helper = d.Helper
	ctx := context.Background()
	ns.Do(t, func() error {
		_, err := d.hostNAT(ctx, api.HostNATParams{Enable: true}, nil)
		return err
	})
	rules := ns.Exec(t, "nft", "list", "ruleset")
	if !strings.Contains(rules, "table ip banger-banger0") || !strings.Contains(ns.Exec(t, "ip", "-o", "addr", "show", "dev", "banger0"), "172.30.0.1/24") {
		t.Fatalf("after host nat on:\n%s", rules)
	}
	ns.Do(t, func() error {
		_, err := d.hostNAT(ctx, api.HostNATParams{Enable: false}, nil)
		return err
	})
	if rules := ns.Exec(t, "nft", "list", "ruleset"); strings.Contains(rules, "banger") {
		t.Errorf("after host nat off:\n%s", rules)
	}
	if after := stripComments(rulesets()); after != stripComments(before) {
		t.Errorf("host nat off did not restore the rulesets:\n%s\nwant\n%s", after, before)
	}
	// NAT on again, then teardown: the rulesets are again as they were.
	ns.Do(t, func() error {
		_, err := d.hostNAT(ctx, api.HostNATParams{Enable: true}, nil)
		return err
	})
	if rules := ns.Exec(t, "nft", "list", "ruleset"); !strings.Contains(rules, "table ip banger-banger0") {
		t.Fatalf("after the second host nat on:\n%s", rules)
	}
	ns.Do(t, func() error {
		_, err := d.hostTeardown(ctx, api.HostTeardownParams{Force: true}, nil)
		return err
	})
	if links := ns.Exec(t, "ip", "-o", "link", "show"); strings.Contains(links, "banger0") {
		t.Errorf("bridge left after teardown:\n%s", links)
	}
	if got := ns.Exec(t, "nft", "list", "table", "inet", "admin"); got != foreign {
		t.Errorf("the administrator's table changed:\n%s\nwant\n%s", got, foreign)
	}
	if after := stripComments(rulesets()); after != stripComments(before) {
		t.Errorf("host teardown --force did not restore the rulesets:\n%s\nwant\n%s", after, before)
	}
}

// stripComments drops iptables-save's comment lines (they carry the time
// it ran) and packet counters (they move with traffic; rules do not).
func stripComments(s string) string {
	s = regexp.MustCompile(`counter packets \d+ bytes \d+|\[\d+:\d+\]`).ReplaceAllString(s, "[counters]")
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
