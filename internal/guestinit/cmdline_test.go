package guestinit

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseIPArg(t *testing.T) {
	cfg, ok, err := ParseIPArg("console=ttyS0 root=/dev/vda rw ip=172.30.0.5::172.30.0.1:255.255.255.0:web:eth0:off:172.30.0.1 banger.agent_port=1024")
	if err != nil || !ok {
		t.Fatalf("ParseIPArg: %v, %v", ok, err)
	}
	want := IPConfig{Client: netip.MustParseAddr("172.30.0.5"), Prefix: 24, Gateway: netip.MustParseAddr("172.30.0.1"),
		Hostname: "web", Device: "eth0", DNS: netip.MustParseAddr("172.30.0.1")}
	if cfg != want {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
	// The fields left out: prefix length, no gateway, default device.
	cfg, ok, err = ParseIPArg("ip=10.0.0.2:::16")
	if err != nil || !ok || cfg.Prefix != 16 || cfg.Gateway.IsValid() || cfg.Device != "eth0" || cfg.Hostname != "" || cfg.DNS.IsValid() {
		t.Errorf("ip=10.0.0.2:::16: %+v, %v, %v", cfg, ok, err)
	}
	// The last ip= wins, as for the kernel.
	if cfg, _, _ := ParseIPArg("ip=10.0.0.2 ip=10.0.0.3"); cfg.Client.String() != "10.0.0.3" || cfg.Prefix != 24 {
		t.Errorf("two ip=: %+v", cfg)
	}
	for _, line := range []string{"root=/dev/vda", "ip=dhcp", "ip=off", "ip="} {
		if _, ok, err := ParseIPArg(line); ok || err != nil {
			t.Errorf("%q: ok %v err %v; want nothing to do", line, ok, err)
		}
	}
	for _, tc := range []struct{ line, want string }{
		{"ip=300.1.1.1", "client address"},
		{"ip=::1", "client address"},
		{"ip=10.0.0.2::10.0.0.x", "gateway"},
		{"ip=10.0.0.2:::255.0.255.0", "netmask"},
		{"ip=10.0.0.2:::33", "netmask"},
		{"ip=10.0.0.2::::bad_name", "hostname"},
		{"ip=10.0.0.2:::::eth0;rm", "device"},
		{"ip=10.0.0.2:::::eth0:off:dns", "DNS server"},
	} {
		if _, _, err := ParseIPArg(tc.line); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want an error about the %s", tc.line, err, tc.want)
		}
	}
}

func TestPrefixLen(t *testing.T) {
	for m, want := range map[string]int{"": 24, "0": 0, "32": 32, "255.255.255.0": 24, "255.255.240.0": 20, "0.0.0.0": 0, "255.255.255.255": 32} {
		if got, err := prefixLen(m); err != nil || got != want {
			t.Errorf("prefixLen(%q) = %d, %v; want %d", m, got, err, want)
		}
	}
}
