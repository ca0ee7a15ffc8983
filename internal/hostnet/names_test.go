package hostnet

import (
	"net/netip"
	"strings"
	"testing"
)

func TestMACForIP(t *testing.T) {
	for ip, want := range map[string]string{
		"172.30.0.2":      "06:00:ac:1e:00:02",
		"10.0.255.254":    "06:00:0a:00:ff:fe",
		"192.168.1.1":     "06:00:c0:a8:01:01",
		"::ffff:10.1.2.3": "06:00:0a:01:02:03",
	} {
		if got := MACForIP(netip.MustParseAddr(ip)); got != want {
			t.Errorf("MACForIP(%s) = %s, want %s", ip, got, want)
		}
	}
}

func TestGatewayNetmaskTapName(t *testing.T) {
	p := netip.MustParsePrefix("172.30.0.0/24")
	if g := Gateway(p); g.String() != "172.30.0.1" {
		t.Errorf("Gateway = %s", g)
	}
	for bits, want := range map[int]string{16: "255.255.0.0", 24: "255.255.255.0", 29: "255.255.255.248", 20: "255.255.240.0"} {
		if got := Netmask(netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), bits)); got != want {
			t.Errorf("Netmask(/%d) = %s, want %s", bits, got, want)
		}
	}
	if TapName("1a2b3c4d") != "bg-1a2b3c4d" || CheckTapName(TapName("1a2b3c4d")) != nil {
		t.Error("TapName does not produce a valid tap name")
	}
}

func TestNameChecksRefuseHostileNames(t *testing.T) {
	badTaps := []string{"", "eth0", "docker0", "bg-", "bg-1A2B3C4D", "bg-1a2b3c4d5", "bg-1a2b3c4", "bg-../../x",
		"bg-1a2b 3c4", "bg-1a2b3c4d\n", strings.Repeat("b", 40), "banger0", "bg-zzzzzzzz"}
	for _, n := range badTaps {
		if err := CheckTapName(n); err == nil {
			t.Errorf("CheckTapName(%q) accepted", n)
		}
	}
	badBridges := []string{"", "eth0", "docker0", "br0", "banger-0", "Banger0", "banger0123456789", "banger/../x", "banger 0", "banger0\x00"}
	for _, n := range badBridges {
		if err := CheckBridgeName(n); err == nil {
			t.Errorf("CheckBridgeName(%q) accepted", n)
		}
	}
	for _, ok := range []string{"banger", "banger0", "banger123456789"} {
		if err := CheckBridgeName(ok); err != nil || len(ok) >= 16 {
			t.Errorf("CheckBridgeName(%q) = %v", ok, err)
		}
	}
}

func TestParseSubnet(t *testing.T) {
	for _, ok := range []string{"172.30.0.0/24", "10.0.0.0/16", "192.168.100.0/29", "172.31.255.0/24"} {
		if _, err := ParseSubnet(ok); err != nil {
			t.Errorf("ParseSubnet(%s): %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"8.8.8.0/24":     "not a private range",
		"10.0.0.0/8":     "between /16 and /29",
		"172.30.0.0/30":  "between /16 and /29",
		"172.15.0.0/24":  "not a private range",
		"172.32.0.0/24":  "not a private range",
		"fd00::/64":      "private IPv4",
		"172.30.0.5/24":  "host bits",
		"172.30.0.0":     "not a CIDR",
		"../etc/passwd":  "not a CIDR",
		"172.30.0.0/24 ": "not a CIDR",
	} {
		_, err := ParseSubnet(bad)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSubnet(%q) = %v, want error containing %q", bad, err, want)
		}
	}
}

func TestCheckDomainAndUplink(t *testing.T) {
	for _, d := range []string{"vm", "banger.test"} {
		if CheckDomain(d) != nil {
			t.Errorf("CheckDomain(%q) refused", d)
		}
	}
	for _, d := range []string{"", "~vm", "VM", "a b", "-vm", "vm.", "x;rm"} {
		if CheckDomain(d) == nil {
			t.Errorf("CheckDomain(%q) accepted", d)
		}
	}
	for _, u := range []string{"", "..", "eth0 x", strings.Repeat("e", 16), "eth0;", "a/b"} {
		if CheckUplinkName(u) == nil {
			t.Errorf("CheckUplinkName(%q) accepted", u)
		}
	}
	if CheckUplinkName("enp0s31f6") != nil || CheckUplinkName("wlan0.1") != nil {
		t.Error("CheckUplinkName refused a real interface name")
	}
}

func TestResolvedRegisterArgv(t *testing.T) {
	got := ResolvedRegisterArgv("/usr/bin/resolvectl", "banger0", netip.MustParseAddr("172.30.0.1"), "vm")
	want := "/usr/bin/resolvectl dns banger0 172.30.0.1|/usr/bin/resolvectl domain banger0 ~vm"
	var lines []string
	for _, a := range got {
		lines = append(lines, strings.Join(a, " "))
	}
	if strings.Join(lines, "|") != want {
		t.Errorf("argv = %q, want %q", lines, want)
	}
}
