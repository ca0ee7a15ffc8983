package qemu

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/vmm"
)

var update = flag.Bool("update", false, "rewrite golden files")

func goldenSpec() vmm.Spec {
	return vmm.Spec{
		VMID: "1a2b3c4d", Name: "dev", VCPUs: 2, MemoryMiB: 1024,
		KernelPath:   "/data/bundle/vmlinux",
		InitrdPath:   "/data/bundle/initrd.img",
		BootArgs:     "ip=172.30.0.2::172.30.0.1:255.255.255.0:dev:eth0:off:172.30.0.1 banger.agent_port=1024",
		RootfsPath:   "/state/vms/1a2b3c4d/rootfs.qcow2",
		RootfsFormat: "qcow2",
		WorkDiskPath: "/state/vms/1a2b3c4d/work.ext4",
		TapName:      "bg-1a2b3c4d",
		MAC:          "06:00:ac:1e:00:02",
		APISocket:    "/run/banger/1a2b3c4d/qmp.sock",
		AgentSocket:  "/run/banger/1a2b3c4d/agent.sock",
		ConsoleLog:   "/state/vms/1a2b3c4d/console.log",
		VMMLog:       "/state/vms/1a2b3c4d/vmm.log",
	}
}

func TestBuildArgvGolden(t *testing.T) {
	noTap := goldenSpec()
	noTap.TapName, noTap.MAC = "", ""
	cases := []struct {
		name  string
		spec  vmm.Spec
		accel string
	}{
		{"kvm_tap", goldenSpec(), AccelKVM},
		{"kvm_notap", noTap, AccelKVM},
		{"tcg_tap", goldenSpec(), AccelTCG},
		{"tcg_notap", noTap, AccelTCG},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(BuildArgv(tc.spec, tc.accel, 2596122), "\n") + "\n"
			path := filepath.Join("testdata", "argv_"+tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("argv differs from %s:\n got:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}

func appendArg(argv []string) string {
	i := slices.Index(argv, "-append")
	if i < 0 || i+1 >= len(argv) {
		return ""
	}
	return argv[i+1]
}

func TestTSCOnlyUnderTCG(t *testing.T) {
	spec := goldenSpec()
	if a := appendArg(BuildArgv(spec, AccelKVM, 2596122)); strings.Contains(a, "tsc_early_khz") {
		t.Errorf("kvm cmdline has tsc_early_khz: %q", a)
	}
	if a := appendArg(BuildArgv(spec, AccelTCG, 2596122)); !strings.Contains(a, " tsc_early_khz=2596122 tsc=reliable ") {
		t.Errorf("tcg cmdline lacks tsc_early_khz=2596122 tsc=reliable: %q", a)
	}
	if a := appendArg(BuildArgv(spec, AccelTCG, 0)); strings.Contains(a, "tsc_early_khz") {
		t.Errorf("unknown TSC rate still passed: %q", a)
	}
	// The guest's own arguments come last so they can override ours.
	if a := appendArg(BuildArgv(spec, AccelTCG, 1)); !strings.HasSuffix(a, spec.BootArgs) {
		t.Errorf("cmdline %q does not end with BootArgs", a)
	}
}

func TestBuildArgvEscapesCommas(t *testing.T) {
	spec := goldenSpec()
	spec.WorkDiskPath = "/home/a,b/work.ext4"
	argv := strings.Join(BuildArgv(spec, AccelKVM, 0), " ")
	if !strings.Contains(argv, "file=/home/a,,b/work.ext4,format=raw") {
		t.Errorf("comma in path not escaped: %s", argv)
	}
}

func TestBuildArgvDefaultsRawRoot(t *testing.T) {
	spec := goldenSpec()
	spec.RootfsFormat = ""
	argv := strings.Join(BuildArgv(spec, AccelKVM, 0), " ")
	if !strings.Contains(argv, "rootfs.qcow2,format=raw,if=none") {
		t.Errorf("empty RootfsFormat not raw: %s", argv)
	}
}

func TestParseCPUInfoKHz(t *testing.T) {
	cases := map[string]int{
		"processor\t: 0\ncpu MHz\t\t: 2596.122\ncache size\t: 512 KB\n": 2596122,
		"cpu MHz : 3000.0000\ncpu MHz : 1200.000\n":                     3000000,
		"processor : 0\n":   0,
		"cpu MHz : bogus\n": 0,
	}
	for in, want := range cases {
		if got := parseCPUInfoKHz(strings.NewReader(in)); got != want {
			t.Errorf("parseCPUInfoKHz(%q) = %d, want %d", in, got, want)
		}
	}
	if khz := HostTSCKHz(); khz < 0 {
		t.Errorf("HostTSCKHz = %d", khz)
	}
}
