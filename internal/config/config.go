// Package config loads banger's config.toml: snake_case keys, defaults for
// every key, renamed keys accepted as aliases with a deprecation note, and
// unknown keys refused with the list of valid ones.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/banger-dev/banger/internal/validate"
)

// Config is the effective configuration (file values over defaults).
type Config struct {
	VCPUs           int
	MemoryMiB       int
	DiskSize        string
	DiskBytes       int64 // DiskSize parsed
	VMM             string
	Subnet          netip.Prefix // checked by ParseSubnet at Load
	Bridge          string
	DNSDomain       string
	DNSPort         int
	DNSFallbackPort int // used when DNSPort cannot be bound (e.g. 53 taken by another resolver)
	NAT             bool
	// AutoForward forwards every TCP port a guest listens on (1024 and up)
	// to the same port on the host's 127.0.0.1, for VMs that do not say
	// otherwise (vm create/set --auto-forward).
	AutoForward    bool
	BundleDir      string // "" = layout.BundleDir()
	DefaultImage   string
	FirecrackerBin string
	QEMUBin        string
	AgentPort      int
	AgentTimeout   time.Duration
	AgentBin       string
	MapDNSBin      string
	MapDNSDataFile string
	VoidRepo       string
	XBPSStatic     string
	SSHUser        string
	// MaxVMs and MaxVMMemoryMiB (0 = no limit) bound what bangerd creates:
	// vm create refuses a VM past MaxVMs, vm create/set a memory above
	// MaxVMMemoryMiB, whoever asks (the CLI, the TUI, banger mcp).
	MaxVMs         int
	MaxVMMemoryMiB int
	// MCPReadOnly and MCPOnlyPrefix are banger mcp's defaults for its
	// --read-only and --only-prefix flags.
	MCPReadOnly   bool
	MCPOnlyPrefix string

	// Deprecations lists notes about renamed keys found in the file
	// (`banger doctor` shows them).
	Deprecations []string
	// Path is the file loaded ("" when none existed).
	Path string
}

// file mirrors config.toml. Pointers tell "absent" from "set".
type file struct {
	VCPUs           *int    `toml:"vcpus"`
	MemoryMiB       *int    `toml:"memory_mib"`
	DiskSize        *string `toml:"disk_size"`
	VMM             *string `toml:"vmm"`
	Subnet          *string `toml:"subnet"`
	Bridge          *string `toml:"bridge"`
	DNSDomain       *string `toml:"dns_domain"`
	DNSPort         *int    `toml:"dns_port"`
	DNSFallbackPort *int    `toml:"dns_fallback_port"`
	NAT             *bool   `toml:"nat"`
	AutoForward     *bool   `toml:"auto_forward"`
	BundleDir       *string `toml:"bundle_dir"`
	DefaultImage    *string `toml:"default_image"`
	FirecrackerBin  *string `toml:"firecracker_bin"`
	QEMUBin         *string `toml:"qemu_bin"`
	AgentPort       *int    `toml:"agent_port"`
	AgentTimeout    *string `toml:"agent_timeout"`
	AgentBin        *string `toml:"agent_bin"`
	MapDNSBin       *string `toml:"mapdns_bin"`
	MapDNSDataFile  *string `toml:"mapdns_data_file"`
	VoidRepo        *string `toml:"void_repo"`
	XBPSStatic      *string `toml:"xbps_static"`
	SSHUser         *string `toml:"ssh_user"`
	MaxVMs          *int    `toml:"max_vms"`
	MaxVMMemoryMiB  *int    `toml:"max_vm_memory_mib"`
	MCPReadOnly     *bool   `toml:"mcp_read_only"`
	MCPOnlyPrefix   *string `toml:"mcp_only_prefix"`

	// Renamed keys (aliases).
	PingHelperPort    *int    `toml:"ping_helper_port"`
	PingHelperTimeout *string `toml:"ping_helper_timeout"`
	PingHelperBin     *string `toml:"ping_helper_bin"`
}

// Aliases maps old key names to their replacements.
var Aliases = map[string]string{
	"ping_helper_port":    "agent_port",
	"ping_helper_timeout": "agent_timeout",
	"ping_helper_bin":     "agent_bin",
}

// ValidKeys lists the current keys, sorted.
func ValidKeys() []string {
	return []string{
		"agent_bin", "agent_port", "agent_timeout", "bridge", "bundle_dir", "default_image",
		"disk_size", "dns_domain", "dns_fallback_port", "dns_port", "firecracker_bin", "mapdns_bin",
		"mapdns_data_file", "max_vm_memory_mib", "max_vms", "mcp_only_prefix", "mcp_read_only",
		"memory_mib", "nat", "qemu_bin", "ssh_user", "subnet", "vcpus",
		"vmm", "void_repo", "xbps_static",
	}
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		VCPUs: 2, MemoryMiB: 1024, DiskSize: "8G", DiskBytes: 8 << 30, VMM: "auto",
		Subnet: netip.MustParsePrefix("172.30.0.0/24"), Bridge: "banger0", DNSDomain: "vm", DNSPort: 53, DNSFallbackPort: 10053,
		NAT: true, DefaultImage: "debian", AgentPort: 1024, AgentTimeout: 90 * time.Second,
		VoidRepo: "https://repo-default.voidlinux.org/current", SSHUser: "root",
	}
}

// Load reads path; a missing file yields the defaults.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Default(), nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	cfg.Path = path
	return cfg, nil
}

// Parse parses config.toml content over the defaults and validates it.
func Parse(data []byte) (Config, error) {
	var f file
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) && len(strict.Errors) > 0 {
			var msgs []string
			for _, e := range strict.Errors {
				row, _ := e.Position()
				msgs = append(msgs, fmt.Sprintf("unknown key %q at line %d", strings.Join(e.Key(), "."), row))
			}
			return Config{}, fmt.Errorf("%s; valid keys: %s", strings.Join(msgs, "; "), strings.Join(ValidKeys(), ", "))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return Config{}, fmt.Errorf("line %d column %d: %s", row, col, de.String())
		}
		return Config{}, err
	}
	cfg := Default()
	var errs []string
	var deps []string

	alias := func(old, new string, oldSet, newSet bool) bool {
		if oldSet && newSet {
			errs = append(errs, fmt.Sprintf("both %s and its old name %s are set: remove %s", new, old, old))
			return false
		}
		if oldSet {
			deps = append(deps, fmt.Sprintf("config key %s is deprecated: rename it to %s", old, new))
			return true
		}
		return false
	}
	if alias("ping_helper_port", "agent_port", f.PingHelperPort != nil, f.AgentPort != nil) {
		f.AgentPort = f.PingHelperPort
	}
	if alias("ping_helper_timeout", "agent_timeout", f.PingHelperTimeout != nil, f.AgentTimeout != nil) {
		f.AgentTimeout = f.PingHelperTimeout
	}
	if alias("ping_helper_bin", "agent_bin", f.PingHelperBin != nil, f.AgentBin != nil) {
		f.AgentBin = f.PingHelperBin
	}

	setInt(&cfg.VCPUs, f.VCPUs)
	setInt(&cfg.MemoryMiB, f.MemoryMiB)
	setStr(&cfg.DiskSize, f.DiskSize)
	setStr(&cfg.VMM, f.VMM)
	if f.Subnet != nil {
		if p, err := ParseSubnet(*f.Subnet); err != nil {
			errs = append(errs, err.Error())
		} else {
			cfg.Subnet = p
		}
	}
	setStr(&cfg.Bridge, f.Bridge)
	setStr(&cfg.DNSDomain, f.DNSDomain)
	setInt(&cfg.DNSPort, f.DNSPort)
	setInt(&cfg.DNSFallbackPort, f.DNSFallbackPort)
	if f.NAT != nil {
		cfg.NAT = *f.NAT
	}
	if f.AutoForward != nil {
		cfg.AutoForward = *f.AutoForward
	}
	setStr(&cfg.BundleDir, f.BundleDir)
	setStr(&cfg.DefaultImage, f.DefaultImage)
	setStr(&cfg.FirecrackerBin, f.FirecrackerBin)
	setStr(&cfg.QEMUBin, f.QEMUBin)
	setInt(&cfg.AgentPort, f.AgentPort)
	setStr(&cfg.AgentBin, f.AgentBin)
	setStr(&cfg.MapDNSBin, f.MapDNSBin)
	setStr(&cfg.MapDNSDataFile, f.MapDNSDataFile)
	setStr(&cfg.VoidRepo, f.VoidRepo)
	setStr(&cfg.XBPSStatic, f.XBPSStatic)
	setStr(&cfg.SSHUser, f.SSHUser)
	setInt(&cfg.MaxVMs, f.MaxVMs)
	setInt(&cfg.MaxVMMemoryMiB, f.MaxVMMemoryMiB)
	if f.MCPReadOnly != nil {
		cfg.MCPReadOnly = *f.MCPReadOnly
	}
	setStr(&cfg.MCPOnlyPrefix, f.MCPOnlyPrefix)
	if f.AgentTimeout != nil {
		d, err := time.ParseDuration(*f.AgentTimeout)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Sprintf("agent_timeout %q: use a positive duration like \"90s\" or \"2m\"", *f.AgentTimeout))
		} else {
			cfg.AgentTimeout = d
		}
	}
	errs = append(errs, cfg.validate()...)
	if len(errs) > 0 {
		return Config{}, errors.New(strings.Join(errs, "; "))
	}
	sort.Strings(deps)
	cfg.Deprecations = deps
	return cfg, nil
}

func setInt(dst *int, v *int) {
	if v != nil {
		*dst = *v
	}
}

func setStr(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

func (c *Config) validate() []string {
	var errs []string
	switch c.VMM {
	case "auto", "firecracker", "qemu":
	default:
		errs = append(errs, fmt.Sprintf("vmm %q: use one of auto, firecracker, qemu", c.VMM))
	}
	if n, err := validate.ParseSize(c.DiskSize); err != nil {
		errs = append(errs, "disk_size: "+err.Error())
	} else if n < validate.MinDiskBytes {
		errs = append(errs, fmt.Sprintf("disk_size %q: must be at least 1G", c.DiskSize))
	} else {
		c.DiskBytes = n
	}
	if c.VCPUs < 1 || c.VCPUs > validate.MaxVCPUs {
		errs = append(errs, fmt.Sprintf("vcpus %d: must be between 1 and %d", c.VCPUs, validate.MaxVCPUs))
	}
	if c.MemoryMiB < validate.MinMemoryMiB {
		errs = append(errs, fmt.Sprintf("memory_mib %d: must be at least %d", c.MemoryMiB, validate.MinMemoryMiB))
	}
	for _, p := range []struct {
		key string
		v   int
	}{{"dns_port", c.DNSPort}, {"dns_fallback_port", c.DNSFallbackPort}} {
		if p.v < 1 || p.v > 65535 {
			errs = append(errs, fmt.Sprintf("%s %d: must be between 1 and 65535", p.key, p.v))
		}
	}
	if c.AgentPort < 1 || c.AgentPort > 1<<31 {
		errs = append(errs, fmt.Sprintf("agent_port %d: must be a positive vsock port", c.AgentPort))
	}
	// Same rule as hostnet.CheckBridgeName: the privileged helper touches
	// only banger's own bridges, so refuse any other name here, at load time.
	if !bridgeNameRE().MatchString(c.Bridge) {
		errs = append(errs, fmt.Sprintf("bridge %q: must be \"banger\" followed by up to 9 lower-case letters or digits (at most 15 characters, e.g. banger0)", c.Bridge))
	}
	if err := validate.ImageName(c.DefaultImage); err != nil {
		errs = append(errs, "default_image: "+err.Error())
	}
	if c.DNSDomain == "" {
		errs = append(errs, "dns_domain is empty: use e.g. \"vm\"")
	}
	if c.MaxVMs < 0 {
		errs = append(errs, fmt.Sprintf("max_vms %d: use 0 (no limit) or a positive count", c.MaxVMs))
	}
	if c.MaxVMMemoryMiB != 0 && c.MaxVMMemoryMiB < validate.MinMemoryMiB {
		errs = append(errs, fmt.Sprintf("max_vm_memory_mib %d: use 0 (no limit) or at least %d", c.MaxVMMemoryMiB, validate.MinMemoryMiB))
	}
	if c.MaxVMMemoryMiB > 0 && c.MemoryMiB > c.MaxVMMemoryMiB {
		errs = append(errs, fmt.Sprintf("memory_mib %d is above max_vm_memory_mib %d: lower memory_mib or raise the limit", c.MemoryMiB, c.MaxVMMemoryMiB))
	}
	if err := CheckMCPPrefix(c.MCPOnlyPrefix); err != nil {
		errs = append(errs, "mcp_only_prefix: "+err.Error())
	}
	if c.SSHUser == "" {
		errs = append(errs, "ssh_user is empty: use e.g. \"root\"")
	}
	// mapdns (v0.2.0) reads mapdns.json from its working directory and no
	// other file: any other name would never be served.
	switch f := c.MapDNSDataFile; {
	case f == "" && c.MapDNSBin != "":
		errs = append(errs, "mapdns_bin without mapdns_data_file: set mapdns_data_file to the mapdns.json mapdns serves (e.g. \"/srv/mapdns/mapdns.json\"), or remove mapdns_bin")
	case f == "":
	case !filepath.IsAbs(f):
		errs = append(errs, fmt.Sprintf("mapdns_data_file %q: must be an absolute path", f))
	case filepath.Base(f) != "mapdns.json":
		errs = append(errs, fmt.Sprintf("mapdns_data_file %q: must be named mapdns.json, the only file mapdns reads (from its working directory), e.g. %q", f, filepath.Join(filepath.Dir(f), "mapdns.json")))
	}
	return errs
}

// The patterns are compiled on first use: at package init they cost every
// banger command about 1 ms (the {0,62} repetition compiles to a large
// program), though only config loading and `banger mcp` use them.
var mcpPrefixRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`) })

// CheckMCPPrefix checks banger mcp's VM name prefix ("" = none): the start
// of a VM name.
func CheckMCPPrefix(p string) error {
	if p != "" && !mcpPrefixRE().MatchString(p) {
		return fmt.Errorf("%q is not the start of a VM name: use lower-case letters, digits and '-', e.g. \"agent-\"", p)
	}
	return nil
}

var bridgeNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^banger[a-z0-9]{0,9}$`) })

// ParseSubnet checks a VM subnet: a private IPv4 CIDR between /16 and /29.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("subnet %q: use an IPv4 CIDR like \"172.30.0.0/24\"", s)
	}
	if p.Bits() < 16 || p.Bits() > 29 {
		return netip.Prefix{}, fmt.Errorf("subnet %q: prefix length must be between /16 and /29", s)
	}
	if !p.Addr().IsPrivate() {
		return netip.Prefix{}, fmt.Errorf("subnet %q: must be a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("subnet %q: has host bits set; did you mean %q?", s, p.Masked().String())
	}
	return p, nil
}
