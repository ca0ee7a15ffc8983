package privhelper

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"

	"github.com/pelletier/go-toml/v2"

	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/rootsafe"
)

// Where the installed helper lives and what it reads and keeps. All of it is
// root's: the path components are checked before any of it is trusted.
// DefaultPath is where `banger-helper install` puts the helper and what the
// daemon runs through sudo. The Makefile sets it from PREFIX with -ldflags -X
// so a packaged banger finds its packaged helper.
var DefaultPath = "/usr/local/libexec/banger/banger-helper"

const (
	// PolicyFile is the administrator's policy (optional; defaults below).
	PolicyFile = "/etc/banger/helper.toml"
	// StateDir holds the ownership registry and its lock. Bridges and taps
	// do not outlive a reboot, so neither does the registry (/run is tmpfs).
	StateDir = "/run/banger-helper"
	// SudoersFile is the drop-in `banger-helper install` writes.
	SudoersFile = "/etc/sudoers.d/banger"
)

// Policy is what the administrator allows users to do through the helper.
type Policy struct {
	// Subnets are the ranges VM subnets must lie in. The default is
	// banger's own range, which `banger doctor` suggests subnets from.
	Subnets []netip.Prefix `toml:"subnets"`
	// DNSDomains are the domains a user may route to their bridge in
	// systemd-resolved.
	DNSDomains []string `toml:"dns_domains"`
	// Caps per user.
	MaxBridgesPerUser int `toml:"max_bridges_per_user"`
	MaxTapsPerUser    int `toml:"max_taps_per_user"`
}

// DefaultPolicy is used for every key the policy file leaves out.
func DefaultPolicy() Policy {
	return Policy{
		Subnets:           []netip.Prefix{netip.MustParsePrefix("172.30.0.0/15")},
		DNSDomains:        []string{hostnet.DNSDomain},
		MaxBridgesPerUser: 2,
		MaxTapsPerUser:    64,
	}
}

// LoadPolicy reads path over the defaults. A missing file means the defaults;
// a file that a user other than root could have written is refused.
func LoadPolicy(path string) (Policy, error) {
	p := DefaultPolicy()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("read helper policy: %w", err)
	}
	if err := rootsafe.Check(path, rootsafe.Strict); err != nil {
		return p, fmt.Errorf("helper policy %s refused: %w", path, err)
	}
	return ParsePolicy(data)
}

// ParsePolicy parses a policy file over the defaults and checks it.
func ParsePolicy(data []byte) (Policy, error) {
	p := DefaultPolicy()
	var f struct {
		Subnets           []string `toml:"subnets"`
		DNSDomains        []string `toml:"dns_domains"`
		MaxBridgesPerUser *int     `toml:"max_bridges_per_user"`
		MaxTapsPerUser    *int     `toml:"max_taps_per_user"`
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return p, fmt.Errorf("helper policy %s: %w", PolicyFile, err)
	}
	if f.Subnets != nil {
		p.Subnets = nil
		for _, s := range f.Subnets {
			pr, err := netip.ParsePrefix(s)
			if err != nil || !pr.Addr().Is4() || pr.Masked() != pr {
				return p, fmt.Errorf("helper policy %s: subnet %q is not an IPv4 network prefix such as 172.30.0.0/15", PolicyFile, s)
			}
			p.Subnets = append(p.Subnets, pr)
		}
	}
	if f.DNSDomains != nil {
		for _, d := range f.DNSDomains {
			if err := hostnet.CheckDomain(d); err != nil {
				return p, fmt.Errorf("helper policy %s: %w", PolicyFile, err)
			}
		}
		p.DNSDomains = f.DNSDomains
	}
	if f.MaxBridgesPerUser != nil {
		p.MaxBridgesPerUser = *f.MaxBridgesPerUser
	}
	if f.MaxTapsPerUser != nil {
		p.MaxTapsPerUser = *f.MaxTapsPerUser
	}
	if p.MaxBridgesPerUser < 0 || p.MaxTapsPerUser < 0 {
		return p, fmt.Errorf("helper policy %s: caps must not be negative", PolicyFile)
	}
	return p, nil
}

// allowsSubnet reports whether s lies inside one of the allowed ranges.
func (p Policy) allowsSubnet(s netip.Prefix) error {
	for _, a := range p.Subnets {
		if a.Bits() <= s.Bits() && a.Contains(s.Addr()) {
			return nil
		}
	}
	return fmt.Errorf("subnet %s refused: the administrator allows VM subnets only inside %v (%s, key subnets)", s, p.Subnets, PolicyFile)
}

func (p Policy) allowsDomain(d string) error {
	for _, a := range p.DNSDomains {
		if a == d {
			return nil
		}
	}
	return fmt.Errorf("domain %q refused: the administrator allows only %q (%s, key dns_domains)", d, p.DNSDomains, PolicyFile)
}
