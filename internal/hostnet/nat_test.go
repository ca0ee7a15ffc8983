package hostnet

import (
	"context"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/sysexec"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update to create it): %v", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from golden:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var testRule = NATRule{Subnet: netip.MustParsePrefix("172.30.0.0/24"), Bridge: "banger0", Uplinks: []string{"eth0"}}

func TestRenderNFTGolden(t *testing.T) {
	got, err := RenderNFT(testRule)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "nat.nft", got)
	two := testRule
	two.Uplinks = []string{"eth0", "wlan0"}
	got, err = RenderNFT(two)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "nat-two-uplinks.nft", got)
}

// Offline (no default route), NAT still isolates the bridge but masquerades
// nothing: the VMs start, and reach the outside once NAT is re-applied.
func TestRenderNFTWithoutUplink(t *testing.T) {
	got, err := RenderNFT(NATRule{Subnet: testRule.Subnet, Bridge: "banger0"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "nat-offline.nft", got)
	if strings.Contains(got, "masquerade") || !strings.Contains(got, `iifname "banger0" drop`) {
		t.Errorf("offline ruleset:\n%s", got)
	}
}

func TestRenderNFTRefusesBadInput(t *testing.T) {
	for _, r := range []NATRule{
		{Subnet: netip.MustParsePrefix("8.8.8.0/24"), Bridge: "banger0"},
		{Subnet: testRule.Subnet, Bridge: `banger0"; flush ruleset; "`},
		{Subnet: testRule.Subnet, Bridge: "banger0", Uplinks: []string{`eth0" accept`}},
		{Subnet: testRule.Subnet, Bridge: "banger0", Uplinks: []string{"banger0"}},
	} {
		if _, err := RenderNFT(r); err == nil {
			t.Errorf("RenderNFT(%+v) accepted", r)
		}
	}
}

func TestIptablesArgvGolden(t *testing.T) {
	var b strings.Builder
	for _, r := range []NATRule{testRule, {Subnet: testRule.Subnet, Bridge: "banger0", Uplinks: []string{"eth0", "wlan0"}}} {
		for _, argv := range append(IptablesNATRules(r), IptablesForwardRules(r)...) {
			b.WriteString(sysexec.Quote(append([]string{"iptables", "-w"}, argv...)) + "\n")
		}
	}
	golden(t, "iptables.golden", b.String())
}

// recorder records commands and fails those whose argv starts with a prefix
// in fail; it stands in for nft/iptables only to check which calls are made.
type recorder struct {
	calls [][]string
	fail  []string
}

func (r *recorder) Run(_ context.Context, c sysexec.Cmd) (sysexec.Result, error) {
	r.calls = append(r.calls, c.Argv)
	line := strings.Join(c.Argv, " ")
	for _, f := range r.fail {
		if strings.HasPrefix(line, f) {
			return sysexec.Result{ExitCode: 1}, &sysexec.Error{Argv: c.Argv, ExitCode: 1, Stderr: "no such chain"}
		}
	}
	return sysexec.Result{}, nil
}

func TestRemoveNATTouchesOnlyBangerObjects(t *testing.T) {
	rec := &recorder{}
	fw := Firewall{Run: rec, LookPath: func(s string) (string, error) { return "/usr/sbin/" + s, nil }}
	if err := fw.RemoveNAT(context.Background(), "banger0"); err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.calls {
		line := strings.Join(c, " ")
		if !strings.Contains(line, "banger-banger0") && !strings.Contains(line, "BANGER-NAT-banger0") && !strings.Contains(line, "BANGER-FWD-banger0") {
			t.Errorf("RemoveNAT ran a command not aimed at banger's objects: %s", line)
		}
		for _, bad := range []string{"flush ruleset", "-F POSTROUTING", "-F FORWARD", "-X POSTROUTING", "-X FORWARD", "-P "} {
			if strings.Contains(line, bad) {
				t.Errorf("RemoveNAT ran %q", line)
			}
		}
	}
}
