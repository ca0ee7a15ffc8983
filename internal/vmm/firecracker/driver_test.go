package firecracker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/vmm"
	"github.com/banger-dev/banger/internal/vmm/fcfake"
	"github.com/banger-dev/banger/internal/vmm/firecracker"
)

// fakeBin is cmd/fake-firecracker, built once by TestMain.
var fakeBin string

func TestMain(m *testing.M) { fcfake.TestMainWithBinary(m, &fakeBin) }

// newSpec lays out one VM's files in a temp dir: kernel, initrd, disks,
// logs, and the socket paths (not created).
func newSpec(t *testing.T) vmm.Spec {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"vmlinux", "initrd.img", "rootfs.ext4", "work.ext4"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("not really "+f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return vmm.Spec{
		VMID:         "1a2b3c4d",
		Name:         "dev",
		VCPUs:        2,
		MemoryMiB:    512,
		KernelPath:   filepath.Join(dir, "vmlinux"),
		InitrdPath:   filepath.Join(dir, "initrd.img"),
		BootArgs:     "ip=172.30.0.2::172.30.0.1:255.255.255.0:dev:eth0:off:172.30.0.1 banger.agent_port=1024",
		RootfsPath:   filepath.Join(dir, "rootfs.ext4"),
		RootfsFormat: "raw",
		WorkDiskPath: filepath.Join(dir, "work.ext4"),
		APISocket:    filepath.Join(dir, "api.sock"),
		AgentSocket:  filepath.Join(dir, "v.sock"),
		VsockCID:     3,
		ConsoleLog:   filepath.Join(dir, "console.log"),
		VMMLog:       filepath.Join(dir, "vmm.log"),
	}
}

func newDriver() *firecracker.Driver {
	return firecracker.New(firecracker.Options{Binary: fakeBin, KillGrace: time.Second})
}

// startVM starts spec and registers a cleanup that kills the process.
func startVM(t *testing.T, d *firecracker.Driver, spec vmm.Spec) vmm.Handle {
	t.Helper()
	h, err := d.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { vmm.Terminate(h.PID, h.APISocket, time.Second) })
	return h
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestStartBootsAndConfigures(t *testing.T) {
	spec := newSpec(t)
	d := newDriver()
	h := startVM(t, d, spec)

	if h.Driver != "firecracker" || h.PID <= 0 || h.APISocket != spec.APISocket || h.AgentSocket != spec.AgentSocket {
		t.Fatalf("handle = %+v", h)
	}
	if !d.Alive(h) {
		t.Fatal("Alive = false right after Start")
	}
	ctx := context.Background()
	c := firecracker.NewClient(h.APISocket)
	info, err := c.GetInstanceInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != firecracker.StateRunning || info.ID != spec.VMID || info.AppName != "Firecracker" {
		t.Fatalf("GET / = %+v, want Running instance %s", info, spec.VMID)
	}
	cfg, err := c.GetVMConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MachineConfig == nil || cfg.MachineConfig.VCPUCount != 2 || cfg.MachineConfig.MemSizeMib != 512 {
		t.Errorf("machine-config = %+v", cfg.MachineConfig)
	}
	wantArgs := "console=ttyS0 reboot=k panic=1 " + spec.BootArgs
	if cfg.BootSource == nil || cfg.BootSource.KernelImagePath != spec.KernelPath ||
		cfg.BootSource.InitrdPath != spec.InitrdPath || cfg.BootSource.BootArgs != wantArgs {
		t.Errorf("boot-source = %+v, want kernel %s initrd %s args %q", cfg.BootSource, spec.KernelPath, spec.InitrdPath, wantArgs)
	}
	if len(cfg.Drives) != 2 ||
		cfg.Drives[0].DriveID != "rootfs" || !cfg.Drives[0].IsRootDevice || cfg.Drives[0].PathOnHost != spec.RootfsPath ||
		cfg.Drives[1].DriveID != "work" || cfg.Drives[1].IsRootDevice || cfg.Drives[1].PathOnHost != spec.WorkDiskPath {
		t.Errorf("drives = %+v", cfg.Drives)
	}
	for _, dr := range cfg.Drives {
		if dr.CacheType != "Writeback" || dr.IsReadOnly == nil || *dr.IsReadOnly {
			t.Errorf("drive %s: cache %q read-only %v, want a writable Writeback drive", dr.DriveID, dr.CacheType, dr.IsReadOnly)
		}
	}
	if len(cfg.NetworkInterfaces) != 0 {
		t.Errorf("network-interfaces = %+v, want none without a tap", cfg.NetworkInterfaces)
	}
	if cfg.Vsock == nil || cfg.Vsock.GuestCID != 3 || cfg.Vsock.UDSPath != spec.AgentSocket {
		t.Errorf("vsock = %+v", cfg.Vsock)
	}
	// The guest console went to the console log (PUT /serial), with the
	// kernel command line Firecracker completed with the root drive.
	console, _ := os.ReadFile(spec.ConsoleLog)
	if !strings.Contains(string(console), "booting kernel "+spec.KernelPath) || !strings.Contains(string(console), "root=/dev/vda rw") {
		t.Errorf("console log = %q", console)
	}
	// A second start of the same VM is refused by the running instance.
	if err := c.PutAction(ctx, firecracker.ActionInstanceStart); err == nil ||
		!strings.Contains(err.Error(), "not supported after starting the microVM") {
		t.Errorf("second InstanceStart: %v", err)
	}
}

func TestAgentHealthOverHybridVsock(t *testing.T) {
	spec := newSpec(t)
	h := startVM(t, newDriver(), spec)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := agentclient.DialHybridVsock(ctx, h.AgentSocket, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://agent/healthz", nil)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var health api.AgentHealth
	if err := json.NewDecoder(resp.Body).Decode(&health); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || health.Status != "ok" || health.Hostname != "dev" || !health.WorkDiskMounted || health.Version != "fake-firecracker" {
		t.Fatalf("healthz = %d %+v", resp.StatusCode, health)
	}

	// No listener on another port: Firecracker closes the connection.
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if _, err := agentclient.DialHybridVsock(short, h.AgentSocket, 52); err == nil {
		t.Fatal("CONNECT to a port without listener succeeded")
	}
}

func TestStartWithTap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a tap device (run the tests as root)")
	}
	spec := newSpec(t)
	spec.TapName = "bg-fc" + fmt.Sprint(os.Getpid()%10000)
	spec.MAC = "06:00:ac:1e:00:02"
	if _, err := sysexec.Run(context.Background(), "ip", "tuntap", "add", spec.TapName, "mode", "tap"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sysexec.Run(context.Background(), "ip", "link", "del", spec.TapName) })
	h := startVM(t, newDriver(), spec)
	cfg, err := firecracker.NewClient(h.APISocket).GetVMConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.NetworkInterfaces) != 1 || cfg.NetworkInterfaces[0].IfaceID != "eth0" ||
		cfg.NetworkInterfaces[0].HostDevName != spec.TapName || cfg.NetworkInterfaces[0].GuestMAC != spec.MAC {
		t.Fatalf("network-interfaces = %+v", cfg.NetworkInterfaces)
	}
}

func TestStartMissingTapFails(t *testing.T) {
	spec := newSpec(t)
	spec.TapName = "bg-nosuch0"
	spec.MAC = "06:00:ac:1e:00:02"
	_, err := newDriver().Start(context.Background(), spec)
	assertFailedCleanly(t, spec, err, "PUT /network-interfaces/eth0", "bg-nosuch0")
}

// assertFailedCleanly checks the error names the failed call and that no
// process and no socket were left behind.
func assertFailedCleanly(t *testing.T, spec vmm.Spec, err error, step, detail string) {
	t.Helper()
	var verr *vmm.Error
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v (%T), want *vmm.Error", err, err)
	}
	if verr.Step != step || verr.VM != spec.Name {
		t.Errorf("error step %q vm %q, want step %q vm %q (%v)", verr.Step, verr.VM, step, spec.Name, err)
	}
	if !strings.Contains(err.Error(), detail) {
		t.Errorf("error %q does not mention %q", err, detail)
	}
	for _, s := range []string{spec.APISocket, spec.AgentSocket} {
		if exists(s) {
			t.Errorf("%s left behind", s)
		}
	}
	if pids := processesServing(spec.APISocket); len(pids) > 0 {
		t.Errorf("processes %v still serve %s", pids, spec.APISocket)
	}
}

// processesServing lists live processes whose command line names sock.
func processesServing(sock string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		if vmm.ProcessAlive(pid, sock) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestStartBadKernelPath(t *testing.T) {
	spec := newSpec(t)
	spec.KernelPath = filepath.Join(t.TempDir(), "no-such-vmlinux")
	_, err := newDriver().Start(context.Background(), spec)
	assertFailedCleanly(t, spec, err, "PUT /boot-source", "no-such-vmlinux")
	var apiErr *firecracker.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Path != "/boot-source" {
		t.Errorf("err = %v, want an APIError 400 for /boot-source", err)
	}
}

func TestStartRemovesStaleSockets(t *testing.T) {
	spec := newSpec(t)
	for _, s := range []string{spec.APISocket, spec.AgentSocket} {
		l, err := net.Listen("unix", s)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close() // a dead VMM's socket file stays behind
	}
	h := startVM(t, newDriver(), spec)
	if info, err := firecracker.NewClient(h.APISocket).GetInstanceInfo(context.Background()); err != nil || info.State != "Running" {
		t.Fatalf("GET / = %+v, %v", info, err)
	}
}

func TestStartRefusesNonSocketAtSocketPath(t *testing.T) {
	spec := newSpec(t)
	if err := os.WriteFile(spec.APISocket, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := newDriver().Start(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("err = %v, want a refusal to remove a non-socket", err)
	}
	if data, _ := os.ReadFile(spec.APISocket); string(data) != "precious" {
		t.Fatal("the file at the socket path was touched")
	}
}

func TestStartSocketPathTooLong(t *testing.T) {
	spec := newSpec(t)
	spec.APISocket = "/tmp/" + strings.Repeat("x", 120) + "/api.sock"
	_, err := newDriver().Start(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "Unix socket limit") {
		t.Fatalf("err = %v, want the socket path length error", err)
	}
}

func TestStartProcessDiesEarly(t *testing.T) {
	spec := newSpec(t)
	// A "firecracker" that exits at once with a message on stderr.
	bin := filepath.Join(t.TempDir(), "firecracker")
	script := "#!/bin/sh\necho 'firecracker: cannot open /dev/kvm: Permission denied' >&2\nexit 1\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// A minute-long socket timeout: returning within half of it can only
	// mean the death was noticed, however loaded the machine.
	start := time.Now()
	_, err := firecracker.New(firecracker.Options{Binary: bin, SocketTimeout: time.Minute}).Start(context.Background(), spec)
	if time.Since(start) > 30*time.Second {
		t.Errorf("early death detected after %s, want well before the socket timeout", time.Since(start))
	}
	assertFailedCleanly(t, spec, err, "wait for API socket", "cannot open /dev/kvm")
}

func TestStartMissingBinary(t *testing.T) {
	spec := newSpec(t)
	_, err := firecracker.New(firecracker.Options{Binary: "/nonexistent/firecracker"}).Start(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "firecracker_bin") {
		t.Fatalf("err = %v, want it to point at firecracker_bin", err)
	}
}

func TestStartFaultAtEachCall(t *testing.T) {
	for _, call := range []string{
		"PUT /machine-config", "PUT /serial", "PUT /boot-source", "PUT /drives/rootfs",
		"PUT /drives/work", "PUT /vsock", "PUT /actions",
	} {
		t.Run(strings.ReplaceAll(call, "/", "_"), func(t *testing.T) {
			t.Setenv("FAKE_FC_FAIL", call)
			spec := newSpec(t)
			_, err := newDriver().Start(context.Background(), spec)
			step := call
			if call == "PUT /actions" {
				step = "PUT /actions InstanceStart"
			}
			assertFailedCleanly(t, spec, err, step, "injected failure for "+call)
		})
	}
}

func TestStopCtrlAltDel(t *testing.T) {
	spec := newSpec(t)
	d := newDriver()
	h := startVM(t, d, spec)
	start := time.Now()
	if err := d.Stop(context.Background(), h, time.Minute); err != nil {
		t.Fatal(err)
	}
	// The fake exits ~50 ms after Ctrl+Alt+Del; escalation would need the
	// whole minute of grace.
	if time.Since(start) > 30*time.Second {
		t.Errorf("Stop took %s: Ctrl+Alt+Del did not end the VMM", time.Since(start))
	}
	if d.Alive(h) {
		t.Fatal("Alive after Stop")
	}
	for _, s := range []string{h.APISocket, h.AgentSocket} {
		if exists(s) {
			t.Errorf("%s left after Stop", s)
		}
	}
	log, _ := os.ReadFile(spec.VMMLog)
	if !strings.Contains(string(log), "exiting") {
		t.Errorf("VMM log %q: the process did not exit on its own", log)
	}
	// Stopping a stopped VM is fine.
	if err := d.Stop(context.Background(), h, time.Second); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStopEscalatesWhenGuestIgnoresCtrlAltDel(t *testing.T) {
	t.Setenv("FAKE_FC_HANG_STOP", "1")
	spec := newSpec(t)
	d := newDriver()
	h := startVM(t, d, spec)
	start := time.Now()
	if err := d.Stop(context.Background(), h, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Errorf("Stop returned after %s, before the grace period", time.Since(start))
	}
	if d.Alive(h) || exists(h.APISocket) {
		t.Fatal("VMM or socket survived the escalation")
	}
	if log, _ := os.ReadFile(spec.VMMLog); strings.Contains(string(log), "exiting") {
		t.Error("the fake exited by itself: HANG_STOP was not honoured, escalation not proven")
	}
}

func TestAliveRejectsRecycledPID(t *testing.T) {
	d := newDriver()
	// A live process (this test) that is not the VMM of that socket.
	h := vmm.Handle{Driver: "firecracker", PID: os.Getpid(), APISocket: "/run/banger/1a2b3c4d/api.sock"}
	if d.Alive(h) {
		t.Fatal("Alive = true for a pid serving another command line")
	}
	if d.Alive(vmm.Handle{Driver: "firecracker", PID: 0, APISocket: "x"}) {
		t.Fatal("Alive = true for pid 0")
	}
}

func TestReadoptAfterDaemonRestart(t *testing.T) {
	spec := newSpec(t)
	h := startVM(t, newDriver(), spec)
	// Round-trip the handle through JSON (nothing in it may live only in
	// this process) and use a fresh driver value, as a restarted daemon
	// would.
	data, _ := json.Marshal(h)
	var h2 vmm.Handle
	if err := json.Unmarshal(data, &h2); err != nil {
		t.Fatal(err)
	}
	d2 := newDriver()
	if !d2.Alive(h2) {
		t.Fatal("re-adopted handle not alive")
	}
	if err := d2.Stop(context.Background(), h2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d2.Alive(h2) || exists(h2.APISocket) || exists(h2.AgentSocket) {
		t.Fatal("re-adopted VMM still running or its sockets left behind")
	}
}

func TestStartHonoursContext(t *testing.T) {
	spec := newSpec(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newDriver().Start(ctx, spec)
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	assertFailedCleanly(t, spec, err, "wait for API socket", "canceled")
}

func TestReclaimCalledForEachSocket(t *testing.T) {
	spec := newSpec(t)
	var got []string
	d := firecracker.New(firecracker.Options{Binary: fakeBin, Reclaim: func(_ context.Context, p string) error {
		got = append(got, p)
		return nil
	}})
	startVM(t, d, spec)
	if len(got) != 2 || got[0] != spec.APISocket || got[1] != spec.AgentSocket {
		t.Fatalf("reclaimed %v, want [%s %s]", got, spec.APISocket, spec.AgentSocket)
	}

	spec2 := newSpec(t)
	d = firecracker.New(firecracker.Options{Binary: fakeBin, Reclaim: func(_ context.Context, p string) error {
		return errors.New("sudo: a password is required")
	}})
	_, err := d.Start(context.Background(), spec2)
	assertFailedCleanly(t, spec2, err, "reclaim API socket", "password is required")
}

// BenchmarkStart measures Start up to InstanceStart against the fake
// (process launch, socket wait, seven API calls), then stops the VM.
func BenchmarkStart(b *testing.B) {
	d := newDriver()
	dir := b.TempDir()
	for _, f := range []string{"vmlinux", "rootfs.ext4", "work.ext4"} {
		os.WriteFile(filepath.Join(dir, f), []byte(f), 0o600)
	}
	spec := vmm.Spec{
		VMID: "bench001", VCPUs: 1, MemoryMiB: 128, KernelPath: filepath.Join(dir, "vmlinux"),
		RootfsPath: filepath.Join(dir, "rootfs.ext4"), WorkDiskPath: filepath.Join(dir, "work.ext4"),
		APISocket: filepath.Join(dir, "api.sock"), AgentSocket: filepath.Join(dir, "v.sock"), VsockCID: 3,
		ConsoleLog: filepath.Join(dir, "console.log"), VMMLog: filepath.Join(dir, "vmm.log"),
	}
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		h, err := d.Start(context.Background(), spec)
		total += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := d.Stop(context.Background(), h, 2*time.Second); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/start")
}

func TestVersion(t *testing.T) {
	v, err := newDriver().Version(context.Background())
	if err != nil || v != "v1.16.1" {
		t.Fatalf("Version = %q, %v", v, err)
	}
}
