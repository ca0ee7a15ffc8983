package config

import (
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/validate"
)

// FuzzParse feeds arbitrary config.toml content to Parse. It must never
// panic, and whatever it accepts must be a configuration the rest of banger
// can use without re-checking: the same rules the daemon, the privileged
// helper and the VM service apply later.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"vcpus = 4\nmemory_mib = 2048\ndisk_size = \"20G\"\nsubnet = \"10.20.0.0/24\"\n",
		"ping_helper_port = 2048\nping_helper_timeout = \"5s\"\n",
		"agent_port = 1\nping_helper_port = 2\n",
		"vcpus = 0\nmemory_mib = -1\ndisk_size = \"-1G\"\n",
		"disk_size = \"1Q\"\nsubnet = \"8.8.8.0/24\"\n",
		"bridge = \"br0; rm -rf /\"\n",
		"bridge = \"../../etc\"\n",
		"default_image = \"$(id)\"\n",
		"agent_timeout = \"-5s\"\n",
		"[vcpus]\nx = 1\n",
		"vcpus = 99999999999999999999\n",
		"unknown_key = 1\n",
		"vcpus = \"four\"\n",
		"a = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := validate.VCPUs(cfg.VCPUs, validate.Limits{}); err != nil {
			t.Fatalf("accepted %v", err)
		}
		if err := validate.MemoryMiB(cfg.MemoryMiB, validate.Limits{}); err != nil {
			t.Fatalf("accepted %v", err)
		}
		if n, err := validate.ParseSize(cfg.DiskSize); err != nil || n != cfg.DiskBytes {
			t.Fatalf("accepted disk_size %q as %d bytes (%v)", cfg.DiskSize, cfg.DiskBytes, err)
		}
		if err := validate.DiskBytes(cfg.DiskBytes, validate.Limits{}); err != nil {
			t.Fatalf("accepted %v", err)
		}
		if _, err := ParseSubnet(cfg.Subnet.String()); err != nil {
			t.Fatalf("accepted subnet: %v", err)
		}
		if err := hostnet.CheckSubnetShape(cfg.Subnet); err != nil {
			t.Fatalf("config accepts a subnet the host network code refuses: %v", err)
		}
		if err := hostnet.CheckBridgeName(cfg.Bridge); err != nil {
			t.Fatalf("config accepts a bridge the privileged helper refuses: %v", err)
		}
		if err := validate.ImageName(cfg.DefaultImage); err != nil {
			t.Fatalf("accepted %v", err)
		}
		if cfg.AgentTimeout <= 0 || cfg.AgentPort < 1 || cfg.AgentPort > 1<<31 {
			t.Fatalf("accepted agent timeout %v port %d", cfg.AgentTimeout, cfg.AgentPort)
		}
		for _, port := range []int{cfg.DNSPort, cfg.DNSFallbackPort} {
			if port < 1 || port > 65535 {
				t.Fatalf("accepted DNS port %d", port)
			}
		}
		switch cfg.VMM {
		case "auto", "firecracker", "qemu":
		default:
			t.Fatalf("accepted vmm %q", cfg.VMM)
		}
		if cfg.DNSDomain == "" || cfg.SSHUser == "" {
			t.Fatalf("accepted empty dns_domain or ssh_user: %+v", cfg)
		}
		for _, d := range cfg.Deprecations {
			if !strings.Contains(d, "deprecated") {
				t.Fatalf("deprecation note %q does not say so", d)
			}
		}
	})
}
