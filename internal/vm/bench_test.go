package vm_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/bundle"
	"github.com/banger-dev/banger/internal/config"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/store"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/validate"
	"github.com/banger-dev/banger/internal/vm"
	"github.com/banger-dev/banger/internal/vmm"
	"github.com/banger-dev/banger/internal/vmm/firecracker"
	"github.com/banger-dev/banger/internal/vmruntime"
)

// The benchmark image: a sparse file with this much real data at its start,
// like a packed rootfs whose free space is holes.
const (
	benchImageBytes = 2 << 30
	benchImageData  = 128 << 20
)

var (
	fakeFCOnce sync.Once
	fakeFCDir  string
	fakeFCErr  error
)

// fakeFirecracker builds cmd/fake-firecracker once per test process, only
// when a benchmark needs it (unit test runs pay nothing).
func fakeFirecracker(b *testing.B) string {
	b.Helper()
	fakeFCOnce.Do(func() {
		if fakeFCDir, fakeFCErr = os.MkdirTemp("", "vm-bench-bin"); fakeFCErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		_, fakeFCErr = sysexec.Run(ctx, "go", "build", "-o", filepath.Join(fakeFCDir, "fake-firecracker"),
			"github.com/banger-dev/banger/cmd/fake-firecracker")
	})
	if fakeFCErr != nil {
		b.Fatalf("build fake-firecracker: %v", fakeFCErr)
	}
	return filepath.Join(fakeFCDir, "fake-firecracker")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fakeFCDir != "" {
		os.RemoveAll(fakeFCDir)
	}
	os.Exit(code)
}

// benchHelper stands in for the privileged helper: tap and bridge work needs
// root and is measured by hostnet's namespace tests, and the step this
// benchmark is about ends at the VMM exec.
type benchHelper struct{}

func (benchHelper) BridgeEnsure(context.Context, string, netip.Prefix) error      { return nil }
func (benchHelper) BridgeDelete(context.Context, string) error                    { return nil }
func (benchHelper) TapAdd(context.Context, string, string, int) error             { return nil }
func (benchHelper) TapDel(context.Context, string) error                          { return nil }
func (benchHelper) NATEnsure(context.Context, netip.Prefix, string) error         { return nil }
func (benchHelper) NATRemove(context.Context, string) error                       { return nil }
func (benchHelper) SocketReclaim(context.Context, string, int) error              { return nil }
func (benchHelper) DNSRegister(context.Context, string, netip.Addr, string) error { return nil }
func (benchHelper) DNSUnregister(context.Context, string) error                   { return nil }
func (benchHelper) DNSRedirect(context.Context, string, int) error                { return nil }
func (benchHelper) DNSRedirectRemove(context.Context, string) error               { return nil }

// newBenchService wires the real service, store and runtime over the fake
// Firecracker, with an image of benchImageBytes registered as "debian".
func newBenchService(b *testing.B) (*vm.Service, string) {
	b.Helper()
	b.Setenv("FAKE_FC_SKIP_TAP_CHECK", "1")
	root, err := os.MkdirTemp("/tmp", "bgvb") // short: socket paths must stay < 108 bytes
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(root) })
	layout := paths.UnderRoot(root)
	if err := layout.Ensure(); err != nil {
		b.Fatal(err)
	}
	for _, f := range []string{"vmlinux", "initrd.img"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	img := filepath.Join(root, "image.ext4")
	writeSparseImage(b, img, benchImageBytes, benchImageData)
	st, err := store.Open(layout.Database())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, err := st.PutImage(ctx, api.Image{Name: "debian", Distro: "debian", RootfsPath: img, SHA256: "bench"}, false); err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	cfg.Subnet = netip.MustParsePrefix("172.30.91.0/24")
	rt := &vmruntime.Runtime{
		Config: vmruntime.Config{Bridge: "bangerbv", Subnet: cfg.Subnet, NAT: true,
			AgentPort: 1024, BootTimeout: 10 * time.Second, StopGrace: 3 * time.Second},
		Layout: layout,
		Bundle: func() (*bundle.Bundle, error) {
			return &bundle.Bundle{KernelPath: filepath.Join(root, "vmlinux"), InitrdPath: filepath.Join(root, "initrd.img")}, nil
		},
		Image:   st.GetImage,
		Helper:  benchHelper{},
		Drivers: map[string]vmm.Driver{vmm.DriverFirecracker: firecracker.New(firecracker.Options{Binary: fakeFirecracker(b)})},
		Choose:  func() (string, string, error) { return vmm.DriverFirecracker, "benchmark", nil },
		UID:     os.Getuid(),
		// The fake boots no guest, so no sshd will ever answer.
		SkipSSHWait: true,
	}
	svc := &vm.Service{Store: st, Config: cfg, Layout: layout, Runtime: rt,
		HostLimits: func() validate.Limits {
			return validate.Limits{HostCPUs: 64, HostMemoryBytes: 256 << 30, FSFreeBytes: 1 << 40}
		}}
	return svc, img
}

// writeSparseImage makes a file of size bytes whose first data bytes are
// random (so no filesystem can dedupe or compress them away).
func writeSparseImage(b *testing.B, path string, size, data int64) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 1<<20)
	for off := int64(0); off < data; off += int64(len(block)) {
		rand.Read(block)
		if _, err := f.Write(block); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCreateToVMMExec measures the daemon side of vm.create with the
// fake Firecracker: validation, store insert with IP allocation, work disk
// mkfs, rootfs clone, then the start steps. Timestamps come from the
// progress events: "provision" once the request is validated and stored
// ("ms-to-stored"), "load-bundle" once the disks are made
// ("ms-to-provisioned"), "launch-vmm" just before the driver execs the
// VMM ("ms-to-exec"), "wait-agent" once driver Start has returned
// ("ms-to-started": process up, socket answered, API configured). The
// baseline, measured in the same run, is the bare work of the same
// provisioning done by hand: mkfs.ext4 of a same-size work disk plus
// `cp --sparse=always` of the same image ("baseline-ms"). banger's own
// overhead up to the exec is ms-to-exec minus baseline-ms.
func BenchmarkCreateToVMMExec(b *testing.B) {
	for _, tool := range []string{"mkfs.ext4", "cp"} {
		if _, err := sysexec.LookPath(tool); err != nil {
			b.Skipf("needs %s (apt-get install e2fsprogs coreutils)", tool)
		}
	}
	svc, img := newBenchService(b)
	ctx := context.Background()
	scratch := b.TempDir()
	var toStored, toProvisioned, toExec, toStarted, total, baseline time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bench-%d", i)
		var storedAt, provisionedAt, execAt, startedAt time.Time
		progress := func(p api.Progress) {
			switch p.Step {
			case "provision": // validated, stored with its addresses
				if storedAt.IsZero() {
					storedAt = time.Now()
				}
			case "load-bundle": // disks made, start steps begin
				if provisionedAt.IsZero() {
					provisionedAt = time.Now()
				}
			case "launch-vmm":
				if execAt.IsZero() {
					execAt = time.Now()
				}
			case "wait-agent":
				if startedAt.IsZero() {
					startedAt = time.Now()
				}
			}
		}
		t0 := time.Now()
		created, err := svc.Create(ctx, api.VMCreateParams{Name: name}, progress)
		end := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		if created.State != api.VMRunning || storedAt.IsZero() || provisionedAt.IsZero() || execAt.IsZero() || startedAt.IsZero() {
			b.Fatalf("vm.create returned state %q; progress seen: provision %v, load-bundle %v, launch-vmm %v, wait-agent %v",
				created.State, !storedAt.IsZero(), !provisionedAt.IsZero(), !execAt.IsZero(), !startedAt.IsZero())
		}
		toStored += storedAt.Sub(t0)
		toProvisioned += provisionedAt.Sub(t0)
		toExec += execAt.Sub(t0)
		toStarted += startedAt.Sub(t0)
		total += end.Sub(t0)

		b.StopTimer()
		if err := svc.Delete(ctx, name, true); err != nil {
			b.Fatal(err)
		}
		baseline += bareProvision(b, scratch, img, svc.Config.DiskBytes)
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(toStored), "ms-to-stored")
	b.ReportMetric(ms(toProvisioned), "ms-to-provisioned")
	b.ReportMetric(ms(toExec), "ms-to-exec")
	b.ReportMetric(ms(toStarted), "ms-to-started")
	b.ReportMetric(ms(total), "ms-create")
	b.ReportMetric(ms(baseline), "baseline-ms")
	b.ReportMetric(ms(toExec)-ms(baseline), "overhead-ms")
}

// bareProvision does by hand what provisioning does, with the programs a
// user would use, and returns how long it took.
func bareProvision(b *testing.B, dir, img string, diskBytes int64) time.Duration {
	b.Helper()
	ctx := context.Background()
	work, root := filepath.Join(dir, "work.ext4"), filepath.Join(dir, "rootfs.ext4")
	t0 := time.Now()
	f, err := os.Create(work)
	if err == nil {
		err = f.Truncate(diskBytes)
		f.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	if _, err := sysexec.Run(ctx, "mkfs.ext4", "-q", "-F", "-L", "banger-root", "-E", "root_owner=0:0", work); err != nil {
		b.Fatal(err)
	}
	if _, err := sysexec.Run(ctx, "cp", "--sparse=always", img, root); err != nil {
		b.Fatal(err)
	}
	d := time.Since(t0)
	os.Remove(work)
	os.Remove(root)
	return d
}
