package firecracker

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadHostCPU(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, cpuinfo, id, model string }{
		{"x86", "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\nflags\t\t: fpu\n\n" +
			"processor\t: 1\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n\n",
			"vendor_id=AuthenticAMD cpu family=26 model=2", "AMD EPYC"},
		{"arm", "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\n\n",
			"CPU implementer=0x41 CPU architecture=8 CPU variant=0x3 CPU part=0xd0c", ""},
		{"unknown", "processor\t: 0\n\n", "", ""},
	} {
		path := filepath.Join(dir, c.name)
		os.WriteFile(path, []byte(c.cpuinfo), 0o600)
		got, err := readHostCPU(path)
		if err != nil || got.ID != c.id || got.Name != c.model {
			t.Errorf("%s: %+v %v, want id %q name %q", c.name, got, err, c.id, c.model)
		}
	}
	if _, err := readHostCPU(filepath.Join(dir, "none")); err == nil {
		t.Error("a missing cpuinfo read without error")
	}
	// This host's own.
	if cpu, err := readHostCPU("/proc/cpuinfo"); err != nil {
		t.Errorf("/proc/cpuinfo: %v", err)
	} else {
		t.Logf("host CPU: %s", cpu)
	}
}
