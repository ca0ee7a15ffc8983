package vm

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/config"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/store"
	"github.com/banger-dev/banger/internal/validate"
)

var ctx = context.Background()

// recordingRuntime stands in for the hypervisor runtime (no VMM runs in unit
// tests); it records calls and can be told to fail.
type recordingRuntime struct {
	mu            sync.Mutex
	calls         []string
	failProvision error
	failStart     error
	layout        paths.Layout
	dead          atomic.Bool     // Alive reports false: the VMM died
	onDestroy     func(vm api.VM) // called at Destroy
}

func (r *recordingRuntime) rec(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}

func (r *recordingRuntime) Provision(_ context.Context, vm api.VM, _ func(api.Progress)) error {
	r.rec("provision " + vm.Name)
	f := r.layout.VM(vm.ID)
	os.MkdirAll(f.Dir, 0o700)
	os.WriteFile(f.WorkDisk(), []byte("disk"), 0o600)
	return r.failProvision
}
func (r *recordingRuntime) Start(_ context.Context, vm api.VM, p func(api.Progress)) (api.VM, error) {
	r.rec("start " + vm.Name)
	p(api.Progress{Step: "boot"})
	if r.failStart != nil {
		return api.VM{}, r.failStart
	}
	vm.State, vm.VMM, vm.PID = api.VMRunning, "qemu", 4242
	return vm, nil
}
func (r *recordingRuntime) Stop(_ context.Context, vm api.VM, force bool) (api.VM, error) {
	r.rec("stop " + vm.Name)
	vm.State = api.VMStopped
	return vm, nil
}
func (r *recordingRuntime) Health(_ context.Context, vm api.VM) (api.VMHealthResult, error) {
	return api.VMHealthResult{Name: vm.Name, State: vm.State, Healthy: true}, nil
}
func (r *recordingRuntime) Destroy(_ context.Context, vm api.VM) error {
	if r.onDestroy != nil {
		r.onDestroy(vm)
	}
	r.rec("destroy " + vm.Name)
	return nil
}
func (r *recordingRuntime) Alive(api.VM) bool { return !r.dead.Load() }
func (r *recordingRuntime) DialAgent(context.Context, api.VM) (net.Conn, error) {
	return nil, errors.New("no agent in this fake")
}
func (r *recordingRuntime) Reconcile(_ context.Context, vms []api.VM) ([]api.VM, []string, error) {
	var out []api.VM
	for _, vm := range vms {
		if vm.State == api.VMRunning {
			vm.State, vm.PID, vm.StartedAt = api.VMStopped, 0, nil
			out = append(out, vm)
		}
	}
	return out, []string{"reconciled"}, nil
}
func (r *recordingRuntime) ResizeDisk(_ context.Context, vm api.VM, n int64) error {
	r.rec("resize " + vm.Name)
	return nil
}

// newService returns a service on a fresh store with one image, "debian";
// a nil rt gets a fresh recordingRuntime.
func newService(t *testing.T, rt *recordingRuntime) *Service {
	t.Helper()
	layout := paths.UnderRoot(t.TempDir())
	if err := layout.Ensure(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(layout.Database())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.PutImage(ctx, api.Image{Name: "debian", Distro: "debian", RootfsPath: "/r"}, false); err != nil {
		t.Fatal(err)
	}
	if rt == nil {
		rt = &recordingRuntime{}
	}
	rt.layout = layout
	return &Service{Store: st, Config: config.Default(), Layout: layout, Runtime: rt,
		HostLimits: func() validate.Limits {
			return validate.Limits{HostCPUs: 8, HostMemoryBytes: 16 << 30, FSFreeBytes: 500 << 30}
		}}
}

func ptr[T any](v T) *T { return &v }

func code(err error) api.ErrorCode {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

func TestCreateDefaults(t *testing.T) {
	s := newService(t, nil)
	vm, err := s.Create(ctx, api.VMCreateParams{Name: "dev", NoStart: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if vm.VCPUs != 2 || vm.MemoryMiB != 1024 || vm.DiskBytes != 8<<30 || vm.Image != "debian" || vm.State != api.VMStopped {
		t.Fatalf("defaults not applied: %+v", vm)
	}
	if vm.VsockPath != s.Layout.VM(vm.ID).VsockSocket() {
		t.Fatalf("vsock path %q", vm.VsockPath)
	}
	vm2, err := s.Create(ctx, api.VMCreateParams{Name: "big", VCPUs: ptr(4), MemoryMiB: ptr(2048), DiskBytes: ptr(int64(2 << 30)), NoStart: true}, nil)
	if err != nil || vm2.VCPUs != 4 || vm2.MemoryMiB != 2048 || vm2.DiskBytes != 2<<30 {
		t.Fatalf("%+v %v", vm2, err)
	}
}

func TestCreateRejectsBadValuesAndStoresNothing(t *testing.T) {
	s := newService(t, &recordingRuntime{})
	cases := []api.VMCreateParams{
		{Name: "a", VCPUs: ptr(0)},
		{Name: "a", VCPUs: ptr(-1)},
		{Name: "a", VCPUs: ptr(9)}, // host has 8
		{Name: "a", MemoryMiB: ptr(0)},
		{Name: "a", MemoryMiB: ptr(64)},
		{Name: "a", MemoryMiB: ptr(1 << 20)},
		{Name: "a", DiskBytes: ptr(int64(0))},
		{Name: "a", DiskBytes: ptr(int64(-5))},
		{Name: "a", DiskBytes: ptr(int64(1 << 50))},
		{Name: "Bad_Name"},
		{Name: ""},
		{Name: "a", Image: ptr("No Such")},
	}
	for _, p := range cases {
		_, err := s.Create(ctx, p, nil)
		if code(err) != api.CodeInvalidArgument {
			t.Errorf("%+v: err = %v, want invalid_argument", p, err)
		}
	}
	_, err := s.Create(ctx, api.VMCreateParams{Name: "a", Image: ptr("missing")}, nil)
	if code(err) != api.CodeNotFound || !strings.Contains(err.Error(), "image") {
		t.Errorf("missing image: %v", err)
	}
	vms, _ := s.Store.ListVMs(ctx)
	if len(vms) != 0 {
		t.Fatalf("rejected creates stored %d VMs", len(vms))
	}
	if calls := s.Runtime.(*recordingRuntime).calls; calls != nil {
		t.Fatalf("runtime called: %v", calls)
	}
}

func TestLifecycleWithRuntime(t *testing.T) {
	rt := &recordingRuntime{}
	s := newService(t, rt)
	var steps []string
	vm, err := s.Create(ctx, api.VMCreateParams{Name: "dev"}, func(p api.Progress) { steps = append(steps, p.Step) })
	if err != nil {
		t.Fatal(err)
	}
	if vm.State != api.VMRunning || vm.PID != 4242 || vm.VMM != "qemu" || vm.StartedAt == nil {
		t.Fatalf("after create: %+v", vm)
	}
	if strings.Join(steps, ",") != "provision,boot" {
		t.Fatalf("progress steps %v", steps)
	}
	if vm.DiskAllocatedBytes <= 0 {
		t.Fatalf("allocated bytes not reported: %+v", vm)
	}
	if _, err := s.Start(ctx, "dev", nil); code(err) != api.CodeConflict {
		t.Fatalf("double start: %v", err)
	}
	// vcpus on a running VM: stored, pending restart.
	res, err := s.Set(ctx, api.VMSetParams{Name: "dev", VCPUs: ptr(4)})
	if err != nil || !res.PendingRestart || res.VM.VCPUs != 4 || !strings.Contains(res.Note, "next start") {
		t.Fatalf("set running: %+v %v", res, err)
	}
	if _, err := s.Set(ctx, api.VMSetParams{Name: "dev", DiskBytes: ptr(int64(16 << 30))}); code(err) != api.CodeConflict {
		t.Fatalf("disk on running VM: %v", err)
	}
	if err := s.Delete(ctx, "dev", false); code(err) != api.CodeConflict {
		t.Fatalf("delete running: %v", err)
	}
	if _, err := s.Stop(ctx, "dev", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Set(ctx, api.VMSetParams{Name: "dev", DiskBytes: ptr(int64(4 << 30))}); code(err) != api.CodeInvalidArgument {
		t.Fatalf("shrink: %v", err)
	}
	res, err = s.Set(ctx, api.VMSetParams{Name: "dev", DiskBytes: ptr(int64(16 << 30))})
	if err != nil || res.PendingRestart || res.VM.DiskBytes != 16<<30 {
		t.Fatalf("grow: %+v %v", res, err)
	}
	if _, err := s.Set(ctx, api.VMSetParams{Name: "dev", VCPUs: ptr(0)}); code(err) != api.CodeInvalidArgument {
		t.Fatalf("set vcpus 0: %v", err)
	}
	if _, err := s.Start(ctx, "dev", nil); err != nil {
		t.Fatal(err)
	}
	if info, err := s.SSHInfo(ctx, "dev"); err != nil || info.Host != vm.IP || info.User != "root" || info.HostKeyAlias != "banger-"+vm.ID {
		t.Fatalf("ssh info %+v %v", info, err)
	}
	if err := s.Delete(ctx, "dev", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Layout.VM(vm.ID).Dir); !os.IsNotExist(err) {
		t.Fatal("VM directory left behind after delete")
	}
	want := "provision dev,start dev,stop dev,resize dev,start dev,stop dev,destroy dev"
	if got := strings.Join(rt.calls, ","); got != want {
		t.Fatalf("runtime calls\n got %s\nwant %s", got, want)
	}
}

func TestProvisionFailureLeavesNothing(t *testing.T) {
	rt := &recordingRuntime{failProvision: errors.New("mkfs.ext4 failed")}
	s := newService(t, rt)
	_, err := s.Create(ctx, api.VMCreateParams{Name: "dev"}, nil)
	if err == nil || !strings.Contains(err.Error(), "mkfs.ext4") {
		t.Fatalf("err = %v", err)
	}
	if vms, _ := s.Store.ListVMs(ctx); len(vms) != 0 {
		t.Fatal("VM record left after failed provision")
	}
	entries, _ := os.ReadDir(s.Layout.VMsDir())
	if len(entries) != 0 {
		t.Fatalf("VM files left after failed provision: %v", entries)
	}
}

func TestStartFailureRecordsError(t *testing.T) {
	rt := &recordingRuntime{failStart: errors.New("agent did not answer within 90s")}
	s := newService(t, rt)
	_, err := s.Create(ctx, api.VMCreateParams{Name: "dev"}, nil)
	if err == nil || !strings.Contains(err.Error(), "agent did not answer") {
		t.Fatalf("err = %v", err)
	}
	vm, err := s.Get(ctx, "dev")
	if err != nil || vm.State != api.VMError || !strings.Contains(vm.LastError, "agent") {
		t.Fatalf("%+v %v", vm, err)
	}
}

func TestReconcile(t *testing.T) {
	s := newService(t, &recordingRuntime{})
	vm, err := s.Create(ctx, api.VMCreateParams{Name: "dev"}, nil)
	if err != nil || vm.State != api.VMRunning {
		t.Fatal(err)
	}
	notes, err := s.Reconcile(ctx)
	if err != nil || len(notes) != 1 {
		t.Fatal(notes, err)
	}
	vm, _ = s.Get(ctx, "dev")
	if vm.State != api.VMStopped || vm.StartedAt != nil || vm.PID != 0 {
		t.Fatalf("after reconcile %+v", vm)
	}
}

func TestLogs(t *testing.T) {
	s := newService(t, nil)
	vm, err := s.Create(ctx, api.VMCreateParams{Name: "dev", NoStart: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Logs(ctx, api.VMLogsParams{Name: "dev"})
	if err != nil || res.Data != "" {
		t.Fatalf("no log yet: %+v %v", res, err)
	}
	f := s.Layout.VM(vm.ID)
	os.MkdirAll(f.Dir, 0o700)
	os.WriteFile(f.ConsoleLog(), []byte("line1\nline2\nline3\n"), 0o600)
	res, _ = s.Logs(ctx, api.VMLogsParams{Name: "dev", TailBytes: 6})
	if res.Data != "line3\n" || res.Offset != 18 {
		t.Fatalf("tail: %+v", res)
	}
	res, _ = s.Logs(ctx, api.VMLogsParams{Name: "dev", Offset: 12})
	if res.Data != "line3\n" {
		t.Fatalf("offset: %+v", res)
	}
	if filepath.Base(res.Path) != "console.log" {
		t.Fatal(res.Path)
	}
}

func TestSubnetExhaustionIsTyped(t *testing.T) {
	s := newService(t, nil)
	s.Config.Subnet = netip.MustParsePrefix("10.7.0.0/29")
	for i := 0; i < 5; i++ {
		if _, err := s.Create(ctx, api.VMCreateParams{Name: "v" + string(rune('a'+i)), NoStart: true}, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Create(ctx, api.VMCreateParams{Name: "full", NoStart: true}, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeResourceExhausted || !strings.Contains(ae.Message, "10.7.0.0/29") ||
		!strings.Contains(ae.Hint, "subnet") || !strings.Contains(ae.Hint, "config.toml") {
		t.Fatalf("err = %#v", err)
	}
}

// A create interrupted (daemon killed) before its work disk was made
// leaves a record without disks: start makes them.
func TestStartProvisionsInterruptedCreate(t *testing.T) {
	rt := &recordingRuntime{}
	s := newService(t, rt)
	vm, err := s.Create(ctx, api.VMCreateParams{Name: "dev", NoStart: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(s.Layout.VM(vm.ID).WorkDisk()); err != nil {
		t.Fatal(err)
	}
	rt.calls = nil
	vm, err = s.Start(ctx, "dev", nil)
	if err != nil || vm.State != api.VMRunning {
		t.Fatalf("%+v %v", vm, err)
	}
	if got := strings.Join(rt.calls, ","); got != "provision dev,start dev" {
		t.Fatalf("calls %s", got)
	}
	rt.calls = nil
	s.Stop(ctx, "dev", false)
	s.Start(ctx, "dev", nil)
	if got := strings.Join(rt.calls, ","); got != "stop dev,start dev" {
		t.Fatalf("second start re-provisioned: %s", got)
	}
}

// The hooks run where the daemon needs them: the start checks before a
// boot (once for create, before the record), the resize checks before a
// disk grows, and OnChange after starts, stops and deletes.
func TestHooks(t *testing.T) {
	rt := &recordingRuntime{}
	s := newService(t, rt)
	s.Preflight = func(_ context.Context, c Check, vm api.VM) error {
		rt.rec("preflight " + string(c) + " " + vm.Name)
		return nil
	}
	s.OnChange = func(context.Context) { rt.rec("changed") }
	if _, err := s.Create(ctx, api.VMCreateParams{Name: "dev"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restart(ctx, "dev", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stop(ctx, "dev", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Set(ctx, api.VMSetParams{Name: "dev", DiskBytes: ptr(int64(16 << 30))}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "dev", false); err != nil {
		t.Fatal(err)
	}
	want := "preflight vm-start dev,provision dev,start dev,changed," +
		"stop dev,changed,preflight vm-start dev,start dev,changed," +
		"stop dev,changed,preflight disk-resize dev,resize dev,changed,destroy dev"
	if got := strings.Join(rt.calls, ","); got != want {
		t.Fatalf("calls\n got %s\nwant %s", got, want)
	}
	// A refused resize changes nothing.
	if _, err := s.Create(ctx, api.VMCreateParams{Name: "two", NoStart: true}, nil); err != nil {
		t.Fatal(err)
	}
	s.Preflight = func(context.Context, Check, api.VM) error {
		return api.NewError(api.CodeFailedPrecondition, "no space", "")
	}
	if _, err := s.Set(ctx, api.VMSetParams{Name: "two", DiskBytes: ptr(int64(16 << 30))}); code(err) != api.CodeFailedPrecondition {
		t.Fatalf("refused resize: %v", err)
	}
	if vm, _ := s.Get(ctx, "two"); vm.DiskBytes != 8<<30 {
		t.Fatalf("refused resize changed the record: %+v", vm)
	}
}

// --publish is parsed, kept on the record and changed by vm set; a host
// port published twice or unpublished when absent is refused.
func TestPublish(t *testing.T) {
	s := newService(t, &recordingRuntime{})
	changed := 0
	s.OnChange = func(context.Context) { changed++ }
	vm, err := s.Create(ctx, api.VMCreateParams{Name: "web", NoStart: true, Publish: []string{"8080:80"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []api.PortForward{{HostAddr: "127.0.0.1", HostPort: 8080, GuestPort: 80}}
	if !reflect.DeepEqual(vm.Publish, want) {
		t.Fatalf("publish after create %+v, want %+v", vm.Publish, want)
	}
	if _, err := s.Set(ctx, api.VMSetParams{Name: "web", Publish: []string{"0.0.0.0:8080:81"}}); err == nil || !strings.Contains(err.Error(), "already published") {
		t.Errorf("publishing host port 8080 twice: %v", err)
	}
	if _, err := s.Set(ctx, api.VMSetParams{Name: "web", Unpublish: []int{9999}}); err == nil || !strings.Contains(err.Error(), "not published") {
		t.Errorf("unpublishing an absent port: %v", err)
	}
	before := changed
	res, err := s.Set(ctx, api.VMSetParams{Name: "web", Unpublish: []int{8080}, Publish: []string{"9090"}})
	want = []api.PortForward{{HostAddr: "127.0.0.1", HostPort: 9090, GuestPort: 9090}}
	if err != nil || !reflect.DeepEqual(res.VM.Publish, want) || changed != before+1 {
		t.Errorf("set: %+v, %v, OnChange calls %d; want %+v and one OnChange", res.VM.Publish, err, changed-before, want)
	}
	if _, err := s.Create(ctx, api.VMCreateParams{Name: "bad", NoStart: true, Publish: []string{"x:1"}}, nil); err == nil {
		t.Error("a malformed --publish was accepted")
	}
}
