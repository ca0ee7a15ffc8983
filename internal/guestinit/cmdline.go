// Package guestinit is what banger-agent does as PID 1 in an image without
// an init of its own (alpine, distroless, slim language images): mount what
// Linux needs, bring up the network from the kernel command line, mount the
// work disk, run the image's ENTRYPOINT/CMD (and sshd, and the agent server)
// as supervised children, reap orphans, and power off on request.
package guestinit

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// IPConfig is the static configuration of the kernel's
// ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>
// argument, as banger writes it.
type IPConfig struct {
	Client   netip.Addr
	Prefix   int
	Gateway  netip.Addr // zero: no default route
	Hostname string
	Device   string
	DNS      netip.Addr // zero: none
}

var (
	hostRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,62}$`)
	ifnameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
)

// ParseIPArg finds ip= on a kernel command line. ok is false when there is
// none or it is not static (dhcp, off, ...); a malformed one is an error.
func ParseIPArg(cmdline string) (cfg IPConfig, ok bool, err error) {
	val := ""
	for _, w := range strings.Fields(cmdline) {
		if v, found := strings.CutPrefix(w, "ip="); found {
			val = v
		}
	}
	switch val {
	case "", "dhcp", "on", "any", "off", "none":
		return IPConfig{}, false, nil
	}
	f := strings.Split(val, ":")
	for len(f) < 8 {
		f = append(f, "")
	}
	bad := func(what, v string) error { return fmt.Errorf("ip=%s: %s %q is invalid", val, what, v) }
	if cfg.Client, err = netip.ParseAddr(f[0]); err != nil || !cfg.Client.Is4() {
		return IPConfig{}, false, bad("client address", f[0])
	}
	if f[2] != "" {
		if cfg.Gateway, err = netip.ParseAddr(f[2]); err != nil || !cfg.Gateway.Is4() {
			return IPConfig{}, false, bad("gateway", f[2])
		}
	}
	if cfg.Prefix, err = prefixLen(f[3]); err != nil {
		return IPConfig{}, false, bad("netmask", f[3])
	}
	if f[4] != "" && !hostRe.MatchString(f[4]) {
		return IPConfig{}, false, bad("hostname", f[4])
	}
	cfg.Hostname = f[4]
	cfg.Device = f[5]
	if cfg.Device == "" {
		cfg.Device = "eth0"
	}
	if !ifnameRe.MatchString(cfg.Device) {
		return IPConfig{}, false, bad("device", cfg.Device)
	}
	if f[7] != "" {
		if cfg.DNS, err = netip.ParseAddr(f[7]); err != nil || !cfg.DNS.Is4() {
			return IPConfig{}, false, bad("DNS server", f[7])
		}
	}
	return cfg, true, nil
}

// prefixLen reads a netmask (255.255.255.0) or a prefix length (24); empty
// means 24 as banger-net takes it.
func prefixLen(m string) (int, error) {
	if m == "" {
		return 24, nil
	}
	if n, err := strconv.Atoi(m); err == nil {
		if n < 0 || n > 32 {
			return 0, fmt.Errorf("prefix %d out of range", n)
		}
		return n, nil
	}
	a, err := netip.ParseAddr(m)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("not a netmask")
	}
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return 0, fmt.Errorf("netmask is not contiguous")
	}
	return n, nil
}
