package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultsWhenMissing(t *testing.T) {
	cfg, err := Load(filepath.Join(t.TempDir(), "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("got %+v, want defaults", cfg)
	}
	d := Default()
	if d.VCPUs != 2 || d.MemoryMiB != 1024 || d.DiskBytes != 8<<30 || d.Subnet.String() != "172.30.0.0/24" ||
		d.AgentTimeout != 90*time.Second || d.AgentPort != 1024 || !d.NAT || d.SSHUser != "root" {
		t.Fatalf("defaults drifted: %+v", d)
	}
	// Every valid key must really decode.
	for _, k := range ValidKeys() {
		if _, err := Parse([]byte(k + " = 1\n")); err != nil && strings.Contains(err.Error(), "unknown key") {
			t.Errorf("valid key %s refused as unknown", k)
		}
	}
}

func TestParseValues(t *testing.T) {
	cfg, err := Parse([]byte(`vcpus = 4
memory_mib = 2048
disk_size = "20GiB"
vmm = "qemu"
subnet = "10.9.0.0/16"
nat = false
agent_timeout = "2m"
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.VCPUs != 4 || cfg.MemoryMiB != 2048 || cfg.DiskBytes != 20<<30 || cfg.VMM != "qemu" ||
		cfg.Subnet.String() != "10.9.0.0/16" || cfg.NAT || cfg.AgentTimeout != 2*time.Minute {
		t.Fatalf("got %+v", cfg)
	}
}

func TestUnknownKey(t *testing.T) {
	_, err := Parse([]byte("vcpus = 2\n\nmemory = 512\n"))
	if err == nil {
		t.Fatal("unknown key accepted")
	}
	for _, want := range []string{`"memory"`, "line 3", "memory_mib", "valid keys"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestAliases(t *testing.T) {
	cfg, err := Parse([]byte("ping_helper_port = 2000\nping_helper_timeout = \"30s\"\nping_helper_bin = \"/x/agent\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AgentPort != 2000 || cfg.AgentTimeout != 30*time.Second || cfg.AgentBin != "/x/agent" {
		t.Fatalf("aliases not applied: %+v", cfg)
	}
	if len(cfg.Deprecations) != 3 || !strings.Contains(cfg.Deprecations[0], "rename it to") {
		t.Fatalf("deprecations = %q", cfg.Deprecations)
	}
	_, err = Parse([]byte("ping_helper_port = 2000\nagent_port = 1024\n"))
	if err == nil || !strings.Contains(err.Error(), "agent_port") || !strings.Contains(err.Error(), "ping_helper_port") {
		t.Fatalf("old+new both set: err = %v", err)
	}
}

func TestInvalidValues(t *testing.T) {
	cases := map[string]string{
		`vmm = "kvm"`:                             "auto, firecracker, qemu",
		`subnet = "8.8.8.0/24"`:                   "private",
		`subnet = "10.0.0.0/8"`:                   "/16 and /29",
		`subnet = "10.0.0.0/30"`:                  "/16 and /29",
		`subnet = "10.0.0.5/24"`:                  "host bits",
		`subnet = "nonsense"`:                     "IPv4 CIDR",
		`disk_size = "lots"`:                      "accepted forms",
		`disk_size = "100M"`:                      "at least 1G",
		`agent_timeout = "soon"`:                  "duration",
		`vcpus = 0`:                               "between 1",
		`memory_mib = 64`:                         "at least 128",
		`dns_port = 70000`:                        "65535",
		`vcpus = "two"`:                           "line 1",
		`bridge = "a-very-long-bridge"`:           "15",
		`mapdns_data_file = "/srv/dns/data.json"`: "named mapdns.json",
		`mapdns_data_file = "mapdns.json"`:        "absolute path",
		`mapdns_bin = "/usr/local/bin/mapdns"`:    "mapdns_bin without mapdns_data_file",
	}
	for in, want := range cases {
		_, err := Parse([]byte(in + "\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s): err = %v, want mention of %q", in, err, want)
		}
	}
}

func TestLoadNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(p, []byte("bogus = 1\n"), 0o600)
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v, want the file path", err)
	}
	os.WriteFile(p, []byte("vcpus = 3\n"), 0o600)
	cfg, err := Load(p)
	if err != nil || cfg.VCPUs != 3 || cfg.Path != p {
		t.Fatalf("cfg=%+v err=%v", cfg, err)
	}
}

func TestAutoForward(t *testing.T) {
	cfg, err := Parse([]byte("auto_forward = true\n"))
	if err != nil || !cfg.AutoForward {
		t.Errorf("auto_forward = true: %+v, %v", cfg.AutoForward, err)
	}
	if Default().AutoForward {
		t.Error("auto-forward must be off by default")
	}
}

func TestLimitAndMCPKeys(t *testing.T) {
	cfg, err := Parse([]byte("max_vms = 3\nmax_vm_memory_mib = 2048\nmcp_read_only = true\nmcp_only_prefix = \"agent-\"\n"))
	if err != nil || cfg.MaxVMs != 3 || cfg.MaxVMMemoryMiB != 2048 || !cfg.MCPReadOnly || cfg.MCPOnlyPrefix != "agent-" {
		t.Fatalf("%+v, %v", cfg, err)
	}
	for _, bad := range []string{"max_vms = -1\n", "max_vm_memory_mib = 10\n", "memory_mib = 4096\nmax_vm_memory_mib = 2048\n", "mcp_only_prefix = \"Agent_\"\n"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
