package vmruntime

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/bundle"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/vmm"
	"github.com/banger-dev/banger/internal/vmm/fcfake"
	"github.com/banger-dev/banger/internal/vmm/firecracker"
)

var fakeFC string

func TestMain(m *testing.M) { fcfake.TestMainWithBinary(m, &fakeFC) }

// recordingHelper stands in for the privileged helper (tap work needs root
// and is covered by hostnet's namespace tests); it records every call.
type recordingHelper struct {
	mu    sync.Mutex
	calls []string
	taps  map[string]bool
}

func (h *recordingHelper) rec(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, s)
}

func (h *recordingHelper) BridgeEnsure(_ context.Context, name string, cidr netip.Prefix) error {
	h.rec("bridge-ensure " + name + " " + cidr.String())
	return nil
}
func (h *recordingHelper) BridgeDelete(_ context.Context, name string) error {
	h.rec("bridge-delete " + name)
	return nil
}
func (h *recordingHelper) TapAdd(_ context.Context, name, bridge string, uid int) error {
	h.rec("tap-add " + name)
	h.mu.Lock()
	h.taps[name] = true
	h.mu.Unlock()
	return nil
}
func (h *recordingHelper) TapDel(_ context.Context, name string) error {
	h.rec("tap-del " + name)
	h.mu.Lock()
	delete(h.taps, name)
	h.mu.Unlock()
	return nil
}
func (h *recordingHelper) NATEnsure(context.Context, netip.Prefix, string) error {
	h.rec("nat-ensure")
	return nil
}
func (h *recordingHelper) NATRemove(context.Context, string) error { h.rec("nat-remove"); return nil }
func (h *recordingHelper) SocketReclaim(context.Context, string, int) error {
	return nil
}
func (h *recordingHelper) DNSRegister(context.Context, string, netip.Addr, string) error {
	return nil
}
func (h *recordingHelper) DNSUnregister(context.Context, string) error { return nil }
func (h *recordingHelper) DNSRedirect(context.Context, string, int) error {
	h.rec("dns-redirect")
	return nil
}
func (h *recordingHelper) DNSRedirectRemove(context.Context, string) error {
	h.rec("dns-redirect-remove")
	return nil
}

func (h *recordingHelper) liveTaps() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.taps)
}

type fixture struct {
	rt     *Runtime
	helper *recordingHelper
	vm     api.VM
}

// newFixture builds a runtime over the fake Firecracker with a real work
// disk (mkfs.ext4) and a small real rootfs image file.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	t.Setenv("FAKE_FC_SKIP_TAP_CHECK", "1")
	root, err := os.MkdirTemp("/tmp", "bgrt") // short: socket paths must stay < 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	layout := paths.UnderRoot(root)
	if err := layout.Ensure(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vmlinux", "initrd.img"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(root, "image.ext4")
	if err := os.WriteFile(img, []byte("an image"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	h := &recordingHelper{taps: map[string]bool{}}
	rt := &Runtime{
		Config: Config{Bridge: "banger0", Subnet: netip.MustParsePrefix("172.30.0.0/24"), NAT: true,
			AgentPort: 1024, BootTimeout: 10 * time.Second, StopGrace: 3 * time.Second},
		Layout: layout,
		Bundle: func() (*bundle.Bundle, error) {
			return &bundle.Bundle{KernelPath: filepath.Join(root, "vmlinux"), InitrdPath: filepath.Join(root, "initrd.img")}, nil
		},
		Image: func(_ context.Context, name string) (api.Image, error) {
			if name != "debian" {
				return api.Image{}, api.NewError(api.CodeNotFound, "no image "+name, "")
			}
			return api.Image{Name: name, RootfsPath: img, SHA256: "abc"}, nil
		},
		Helper:  h,
		Drivers: map[string]vmm.Driver{vmm.DriverFirecracker: firecracker.New(firecracker.Options{Binary: fakeFC})},
		Choose:  func() (string, string, error) { return vmm.DriverFirecracker, "test", nil },
		UID:     os.Getuid(),
		// The fake Firecracker plays the agent but has no network or sshd.
		SkipSSHWait: true,
	}
	vm := api.VM{ID: "1a2b3c4d", Name: "dev", Image: "debian", VCPUs: 2, MemoryMiB: 512,
		DiskBytes: 1 << 30, State: api.VMStopped, IP: "172.30.0.2", MAC: "06:00:ac:1e:00:02", VsockCID: 3}
	return &fixture{rt: rt, helper: h, vm: vm}
}

func nop(api.Progress) {}

func TestStartHealthStopWithFakeFirecracker(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var provSteps []string
	if err := f.rt.Provision(ctx, f.vm, func(p api.Progress) { provSteps = append(provSteps, p.Step) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(provSteps, StepNames("provision")) {
		t.Errorf("provision steps = %q, want StepNames(provision) = %q", provSteps, StepNames("provision"))
	}
	files := f.rt.Layout.VM(f.vm.ID)
	for _, p := range []string{files.WorkDisk(), files.Rootfs()} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("provision did not make %s: %v", p, err)
		}
	}
	var steps []string
	vm, err := f.rt.Start(ctx, f.vm, func(p api.Progress) { steps = append(steps, p.Step) })
	if err != nil {
		t.Fatal(err)
	}
	if vm.State != api.VMRunning || vm.VMM != vmm.DriverFirecracker || vm.PID <= 0 || vm.StartedAt == nil {
		t.Fatalf("started VM record: %+v", vm)
	}
	// Every step reports progress once (wait-agent again with its deadline),
	// in the order StepNames declares: the crash suite relies on the list.
	if got := slices.Compact(steps); !slices.Equal(got, StepNames("start")) {
		t.Errorf("progress steps = %q, want StepNames(start) = %q", got, StepNames("start"))
	}
	h, err := f.rt.Health(ctx, vm)
	if err != nil || !h.Healthy || h.Agent == nil || h.Agent.Hostname != "dev" {
		t.Fatalf("health = %+v, %v", h, err)
	}
	// The boot arguments carry the guest's address for its boot script.
	console, _ := os.ReadFile(files.ConsoleLog())
	if !strings.Contains(string(console), "ip=172.30.0.2::172.30.0.1:255.255.255.0:dev:eth0:off:172.30.0.1") {
		t.Errorf("console log lacks the ip= argument:\n%s", console)
	}
	vm, err = f.rt.Stop(ctx, vm, false)
	if err != nil {
		t.Fatal(err)
	}
	if vm.State != api.VMStopped || vm.PID != 0 {
		t.Fatalf("stopped VM record: %+v", vm)
	}
	if f.helper.liveTaps() != 0 {
		t.Errorf("taps left after stop: %v", f.helper.calls)
	}
	if _, err := os.Stat(files.SockDir); !os.IsNotExist(err) {
		t.Errorf("socket dir left after stop: %v", err)
	}
	// The work disk survives a stop.
	if _, err := os.Stat(files.WorkDisk()); err != nil {
		t.Fatal(err)
	}
	if err := f.rt.Destroy(ctx, vm); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(files.Dir); !os.IsNotExist(err) {
		t.Errorf("VM dir left after destroy")
	}
}

func TestStartFailureAtEachCallLeavesNothing(t *testing.T) {
	for _, call := range []string{"PUT /machine-config", "PUT /boot-source", "PUT /drives/work", "PUT /vsock", "PUT /actions"} {
		t.Run(call, func(t *testing.T) {
			f := newFixture(t)
			t.Setenv("FAKE_FC_FAIL", call)
			ctx := context.Background()
			if err := f.rt.Provision(ctx, f.vm, nop); err != nil {
				t.Fatal(err)
			}
			_, err := f.rt.Start(ctx, f.vm, nop)
			var se *StepError
			if !errors.As(err, &se) || se.Step != "launch-vmm" || !strings.Contains(err.Error(), call) {
				t.Fatalf("error = %v; want the launch-vmm step naming %s", err, call)
			}
			if f.helper.liveTaps() != 0 {
				t.Errorf("tap left behind: %v", f.helper.calls)
			}
			entries, _ := os.ReadDir(f.rt.Layout.VM(f.vm.ID).SockDir)
			if len(entries) != 0 {
				t.Errorf("sockets left behind: %v", entries)
			}
		})
	}
}

func TestStartTimesOutWithConsoleTail(t *testing.T) {
	f := newFixture(t)
	t.Setenv("FAKE_FC_NO_AGENT", "1")
	f.rt.Config.BootTimeout = 2 * time.Second
	ctx := context.Background()
	if err := f.rt.Provision(ctx, f.vm, nop); err != nil {
		t.Fatal(err)
	}
	_, err := f.rt.Start(ctx, f.vm, nop)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeTimeout {
		t.Fatalf("error = %v; want a timeout", err)
	}
	if !strings.Contains(err.Error(), "last lines of") || !strings.Contains(err.Error(), "guest agent failed to start") {
		t.Errorf("timeout error lacks the console tail: %v", err)
	}
	if f.helper.liveTaps() != 0 {
		t.Errorf("tap left behind")
	}
	if entries, _ := os.ReadDir(f.rt.Layout.VM(f.vm.ID).SockDir); len(entries) != 0 {
		t.Errorf("sockets left behind: %v", entries)
	}
}

func TestReconcileAdoptsLiveAndMarksDeadStopped(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.rt.Provision(ctx, f.vm, nop); err != nil {
		t.Fatal(err)
	}
	vm, err := f.rt.Start(ctx, f.vm, nop)
	if err != nil {
		t.Fatal(err)
	}
	// A new runtime value stands for a restarted daemon.
	again := &Runtime{Config: f.rt.Config, Layout: f.rt.Layout, Bundle: f.rt.Bundle, Image: f.rt.Image,
		Helper: f.rt.Helper, Drivers: map[string]vmm.Driver{vmm.DriverFirecracker: firecracker.New(firecracker.Options{Binary: fakeFC})},
		Choose: f.rt.Choose, UID: f.rt.UID, SkipSSHWait: true}
	changed, notes, err := again.Reconcile(ctx, []api.VM{vm})
	if err != nil || len(changed) != 0 || !strings.Contains(strings.Join(notes, "\n"), "re-adopted") {
		t.Fatalf("reconcile of a live VM: changed=%v notes=%v err=%v", changed, notes, err)
	}
	if h, _ := again.Health(ctx, vm); !h.Healthy {
		t.Fatalf("re-adopted VM unhealthy: %+v", h)
	}
	// Kill the VMM behind the daemon's back.
	_ = syscall.Kill(vm.PID, syscall.SIGKILL)
	_ = vmm.WaitGone(ctx, vm.PID, "")
	changed, _, err = again.Reconcile(ctx, []api.VM{vm})
	if err != nil || len(changed) != 1 || changed[0].State != api.VMStopped || changed[0].LastError == "" {
		t.Fatalf("reconcile of a dead VM: %+v, %v", changed, err)
	}
	// And it starts again.
	restarted, err := again.Start(ctx, changed[0], nop)
	if err != nil {
		t.Fatalf("restart after the VMM died: %v", err)
	}
	// Stop what Start returned: it carries the new VMM's pid.
	if _, err := again.Stop(ctx, restarted, true); err != nil {
		t.Fatal(err)
	}
}

func TestRootDiskRecloneWhenImageChanges(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.rt.Provision(ctx, f.vm, nop); err != nil {
		t.Fatal(err)
	}
	files := f.rt.Layout.VM(f.vm.ID)
	work := files.WorkDisk()
	if err := os.WriteFile(filepath.Join(files.Dir, "marker"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(work)
	orig := f.rt.Image
	f.rt.Image = func(ctx context.Context, name string) (api.Image, error) {
		img, err := orig(ctx, name)
		img.SHA256 = "rebuilt"
		return img, err
	}
	stampBefore, _ := os.ReadFile(rootDiskStamp(files))
	if err := f.rt.ensureRootDisk(ctx, f.vm, vmm.DriverFirecracker); err != nil {
		t.Fatal(err)
	}
	stampAfter, _ := os.ReadFile(rootDiskStamp(files))
	if string(stampBefore) == string(stampAfter) || !strings.HasPrefix(string(stampAfter), "rebuilt ") {
		t.Errorf("root disk not recloned: %q -> %q", stampBefore, stampAfter)
	}
	after, _ := os.Stat(work)
	if !os.SameFile(before, after) {
		t.Error("the work disk was replaced; it must survive image rebuilds")
	}
}

// A re-cloned root disk has new SSH host keys (made at first boot), so the
// VM's old known_hosts entry must go, and only that one.
func TestRootDiskRecloneForgetsHostKey(t *testing.T) {
	if _, err := sysexec.LookPath("ssh-keygen"); err != nil {
		t.Skip("needs ssh-keygen (openssh-client)")
	}
	f := newFixture(t)
	ctx := context.Background()
	if err := f.rt.Provision(ctx, f.vm, nop); err != nil {
		t.Fatal(err)
	}
	kh := f.rt.Layout.KnownHosts()
	other := paths.HostKeyAlias("0badc0de") + " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILCny11phbx99nNCl9+CLXOE+tGceF1Q/kTRK+zkXVyZ\n"
	mine := paths.HostKeyAlias(f.vm.ID) + " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGyhRS+43f/7x+13yRf9UNwFRxaHTUAhfl7zsrIDwhpv\n"
	if err := os.WriteFile(kh, []byte(other+mine), 0o600); err != nil {
		t.Fatal(err)
	}
	// Same image: the disk is kept, and so is the key.
	if err := f.rt.ensureRootDisk(ctx, f.vm, vmm.DriverFirecracker); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(kh); string(got) != other+mine {
		t.Fatalf("known_hosts changed although the root disk was kept:\n%s", got)
	}
	orig := f.rt.Image
	f.rt.Image = func(ctx context.Context, name string) (api.Image, error) {
		img, err := orig(ctx, name)
		img.SHA256 = "rebuilt"
		return img, err
	}
	if err := f.rt.ensureRootDisk(ctx, f.vm, vmm.DriverFirecracker); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(kh); string(got) != other {
		t.Errorf("after the root disk was re-cloned, known_hosts =\n%s\nwant only the other VM's entry:\n%s", got, other)
	}
	if exists(kh + ".old") {
		t.Error("ssh-keygen's known_hosts.old backup left behind")
	}
}
