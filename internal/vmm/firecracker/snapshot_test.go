package firecracker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/banger-dev/banger/internal/vmm/firecracker"
)

// agentHealth asks the fake guest's agent behind sock for /healthz.
func agentHealth(t *testing.T, sock string) api.AgentHealth {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := agentclient.DialHybridVsock(ctx, sock, 1024)
	if err != nil {
		t.Fatalf("agent on %s: %v", sock, err)
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
	var h api.AgentHealth
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %d %v", resp.StatusCode, err)
	}
	return h
}

// linkFiles hard-links files of dir into to (the memory file is large).
func linkFiles(t *testing.T, dir, to string, files ...string) {
	t.Helper()
	for _, f := range files {
		if err := os.Link(filepath.Join(dir, f), filepath.Join(to, f)); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshotOf starts spec, pauses it and saves its state into a new dir.
func snapshotOf(t *testing.T, d *firecracker.Driver, spec vmm.Spec) (vmm.Handle, api.AgentHealth, string) {
	t.Helper()
	h := startVM(t, d, spec)
	before := agentHealth(t, h.AgentSocket)
	ctx := context.Background()
	if err := d.Pause(ctx, h); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := d.SaveState(ctx, h, dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{firecracker.StateFile, firecracker.MemoryFile, firecracker.SourceFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Fatalf("%s after SaveState: %v %v", f, fi, err)
		}
	}
	return h, before, dir
}

func restoreVM(t *testing.T, d *firecracker.Driver, spec vmm.Spec, dir string) vmm.Handle {
	t.Helper()
	h, err := d.Restore(context.Background(), spec, dir)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Cleanup(func() { vmm.Terminate(h.PID, h.APISocket, time.Second) })
	return h
}

// TestRestoreCloneWithOtherTapAndSocket saves a running VM and restores it
// into a new process with another tap, vsock socket, API socket and disks:
// the same guest (same boot) answers on the new socket, and the source,
// resumed, keeps answering on its own.
func TestRestoreCloneWithOtherTapAndSocket(t *testing.T) {
	t.Setenv("FAKE_FC_SKIP_TAP_CHECK", "1") // TestRestoreWithRealTaps opens real ones
	d := newDriver()
	src := newSpec(t)
	src.TapName, src.MAC = "bg-src0", "06:00:ac:1e:00:02"
	srcH, before, dir := snapshotOf(t, d, src)

	clone := newSpec(t)
	clone.VMID, clone.TapName, clone.MAC = "5e6f7a8b", "bg-clone0", src.MAC
	h := restoreVM(t, d, clone, dir)
	if h.Driver != "firecracker" || h.APISocket != clone.APISocket || h.AgentSocket != clone.AgentSocket || h.PID == srcH.PID {
		t.Fatalf("handle = %+v", h)
	}
	if !d.Alive(h) {
		t.Fatal("restored VMM not alive")
	}
	ctx := context.Background()
	c := firecracker.NewClient(h.APISocket)
	info, err := c.GetInstanceInfo(ctx)
	if err != nil || info.State != firecracker.StateRunning || info.ID != clone.VMID {
		t.Fatalf("GET / = %+v, %v", info, err)
	}
	cfg, err := c.GetVMConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.NetworkInterfaces) != 1 || cfg.NetworkInterfaces[0].HostDevName != clone.TapName ||
		cfg.Vsock == nil || cfg.Vsock.UDSPath != clone.AgentSocket {
		t.Errorf("restored devices: nics %+v vsock %+v", cfg.NetworkInterfaces, cfg.Vsock)
	}
	if len(cfg.Drives) != 2 || cfg.Drives[0].PathOnHost != clone.RootfsPath || cfg.Drives[1].PathOnHost != clone.WorkDiskPath {
		t.Errorf("restored drives %+v, want the clone's disks %s and %s", cfg.Drives, clone.RootfsPath, clone.WorkDiskPath)
	}
	after := agentHealth(t, clone.AgentSocket)
	if after.BootID != before.BootID || after.Hostname != "dev" {
		t.Errorf("clone's agent: %+v, want the source's guest (boot %s) resumed, not rebooted", after, before.BootID)
	}
	if console, _ := os.ReadFile(clone.ConsoleLog); !strings.Contains(string(console), "restored guest") {
		t.Errorf("clone console log = %q", console)
	}

	// The source stayed paused through SaveState; resumed, it answers on
	// its own socket.
	if info, _ := firecracker.NewClient(srcH.APISocket).GetInstanceInfo(ctx); info.State != firecracker.StatePaused {
		t.Errorf("source after SaveState: %+v, want Paused", info)
	}
	if err := d.Resume(ctx, srcH); err != nil {
		t.Fatal(err)
	}
	if h := agentHealth(t, srcH.AgentSocket); h.BootID != before.BootID {
		t.Errorf("source agent after resume: %+v", h)
	}
	if err := d.Stop(ctx, h, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d.Alive(h) || exists(clone.APISocket) || exists(clone.AgentSocket) {
		t.Error("restored VM survived Stop or left sockets")
	}
}

// TestRestoreSameVMAfterStop is suspend and resume: the VM is saved, its
// process stopped, and the same spec restored.
func TestRestoreSameVMAfterStop(t *testing.T) {
	d := newDriver()
	spec := newSpec(t)
	rec := filepath.Join(t.TempDir(), "requests.jsonl")
	h, before, dir := snapshotOf(t, d, spec)
	ctx := context.Background()
	if err := d.Stop(ctx, h, time.Second); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FAKE_FC_RECORD", rec)
	h2 := restoreVM(t, d, spec, dir)
	if h := agentHealth(t, h2.AgentSocket); h.BootID != before.BootID || h.UptimeSeconds < before.UptimeSeconds {
		t.Errorf("agent after restore %+v, before %+v", h, before)
	}
	// Same disks: no drive was switched.
	data, _ := os.ReadFile(rec)
	if strings.Contains(string(data), `"PATCH","path":"/drives`) {
		t.Errorf("drives patched on a restore to the same disks:\n%s", data)
	}
	if !strings.Contains(string(data), `"path":"/snapshot/load"`) || !strings.Contains(string(data), `{"state":"Resumed"}`) {
		t.Errorf("no load and resume recorded:\n%s", data)
	}
}

func TestSaveStateRefusesRunningVM(t *testing.T) {
	d := newDriver()
	spec := newSpec(t)
	h := startVM(t, d, spec)
	dir := t.TempDir()
	err := d.SaveState(context.Background(), h, dir)
	var verr *vmm.Error
	if !errors.As(err, &verr) || verr.Step != "PUT /snapshot/create" || !strings.Contains(err.Error(), "unavailable while running") {
		t.Fatalf("SaveState of a running VM: %v", err)
	}
	if err := d.SaveState(context.Background(), h, "relative/dir"); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Fatalf("relative dir: %v", err)
	}
	if err := d.Pause(context.Background(), vmm.Handle{Driver: "firecracker", APISocket: filepath.Join(dir, "none.sock")}); err == nil ||
		!strings.Contains(err.Error(), "PATCH /vm Paused") {
		t.Fatalf("Pause of a missing VMM: %v", err)
	}
}

func TestRestoreFailuresLeaveNothing(t *testing.T) {
	t.Setenv("FAKE_FC_SKIP_TAP_CHECK", "1")
	d := newDriver()
	src := newSpec(t)
	src.TapName = "bg-src0"
	srcH, _, dir := snapshotOf(t, d, src)
	if err := d.Stop(context.Background(), srcH, time.Second); err != nil {
		t.Fatal(err)
	}

	t.Run("incomplete snapshot", func(t *testing.T) {
		spec := newSpec(t)
		_, err := d.Restore(context.Background(), spec, t.TempDir())
		assertFailedCleanly(t, spec, err, "check snapshot", "the snapshot is incomplete")
	})
	t.Run("load refused", func(t *testing.T) {
		t.Setenv("FAKE_FC_FAIL", "PUT /snapshot/load")
		spec := newSpec(t)
		spec.TapName = "bg-clone0"
		_, err := d.Restore(context.Background(), spec, dir)
		assertFailedCleanly(t, spec, err, "PUT /snapshot/load", "injected failure")
	})
	t.Run("tap missing", func(t *testing.T) {
		t.Setenv("FAKE_FC_SKIP_TAP_CHECK", "")
		spec := newSpec(t)
		spec.TapName = "bg-nosuch0"
		_, err := d.Restore(context.Background(), spec, dir)
		assertFailedCleanly(t, spec, err, "PUT /snapshot/load", "bg-nosuch0 does not exist")
	})
	t.Run("resume refused", func(t *testing.T) {
		t.Setenv("FAKE_FC_FAIL", "PATCH /vm")
		spec := newSpec(t)
		spec.TapName = "bg-clone0"
		_, err := d.Restore(context.Background(), spec, dir)
		assertFailedCleanly(t, spec, err, "PATCH /vm Resumed", "injected failure")
	})
	t.Run("no tap for a guest with a network interface", func(t *testing.T) {
		spec := newSpec(t)
		_, err := d.Restore(context.Background(), spec, dir)
		assertFailedCleanly(t, spec, err, "check snapshot", "has network interface eth0 (tap bg-src0) but this VM has no tap")
	})
	t.Run("tap for a guest without a network interface", func(t *testing.T) {
		noNet := newSpec(t)
		h, _, dir2 := snapshotOf(t, d, noNet)
		d.Stop(context.Background(), h, time.Second)
		spec := newSpec(t)
		spec.TapName = "bg-clone0"
		_, err := d.Restore(context.Background(), spec, dir2)
		assertFailedCleanly(t, spec, err, "check snapshot", "the snapshot's guest has no network interface")
	})
	t.Run("other Firecracker release", func(t *testing.T) {
		other := t.TempDir()
		linkFiles(t, dir, other, firecracker.StateFile, firecracker.MemoryFile)
		data, _ := os.ReadFile(filepath.Join(dir, firecracker.SourceFile))
		var src firecracker.Source
		if err := json.Unmarshal(data, &src); err != nil || src.VMMVersion != "1.16.1" {
			t.Fatalf("%s: %+v %v", firecracker.SourceFile, src, err)
		}
		src.VMMVersion = "1.15.0"
		data, _ = json.Marshal(src)
		os.WriteFile(filepath.Join(other, firecracker.SourceFile), data, 0o600)
		spec := newSpec(t)
		spec.TapName = "bg-clone0"
		_, err := d.Restore(context.Background(), spec, other)
		assertFailedCleanly(t, spec, err, "check Firecracker version", "taken by Firecracker 1.15.0 and this is 1.16.1")
	})
	t.Run("other CPU model", func(t *testing.T) {
		other := t.TempDir()
		linkFiles(t, dir, other, firecracker.StateFile, firecracker.MemoryFile)
		data, _ := os.ReadFile(filepath.Join(dir, firecracker.SourceFile))
		var src firecracker.Source
		if err := json.Unmarshal(data, &src); err != nil || src.HostCPU.ID == "" {
			t.Fatalf("%s records no host CPU: %+v %v", firecracker.SourceFile, src, err)
		}
		src.HostCPU = firecracker.HostCPU{ID: "vendor_id=GenuineIntel cpu family=6 model=85", Name: "Intel Xeon"}
		data, _ = json.Marshal(src)
		os.WriteFile(filepath.Join(other, firecracker.SourceFile), data, 0o600)
		spec := newSpec(t)
		spec.TapName = "bg-clone0"
		_, err := d.Restore(context.Background(), spec, other)
		assertFailedCleanly(t, spec, err, "check snapshot", "taken on a Intel Xeon (vendor_id=GenuineIntel cpu family=6 model=85) CPU")
	})
	t.Run("source record missing", func(t *testing.T) {
		partial := t.TempDir()
		linkFiles(t, dir, partial, firecracker.StateFile, firecracker.MemoryFile)
		spec := newSpec(t)
		spec.TapName = "bg-clone0"
		_, err := d.Restore(context.Background(), spec, partial)
		assertFailedCleanly(t, spec, err, "check snapshot", firecracker.SourceFile)
	})
	t.Run("no work disk for a guest with one", func(t *testing.T) {
		spec := newSpec(t)
		spec.TapName, spec.WorkDiskPath = "bg-clone0", ""
		_, err := d.Restore(context.Background(), spec, dir)
		assertFailedCleanly(t, spec, err, "check snapshot", "drive work")
	})
	t.Run("source disks gone", func(t *testing.T) {
		spec := newSpec(t)
		spec.TapName = "bg-clone0"
		gone := newSpec(t)
		gone.TapName = "bg-src1"
		h, _, dir2 := snapshotOf(t, d, gone)
		d.Stop(context.Background(), h, time.Second)
		os.Remove(gone.WorkDiskPath)
		_, err := d.Restore(context.Background(), spec, dir2)
		assertFailedCleanly(t, spec, err, "PUT /snapshot/load", gone.WorkDiskPath)
	})
}

func TestRestoreWithRealTaps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create tap devices (run the tests as root)")
	}
	ctx := context.Background()
	var taps []string
	for _, role := range []string{"s", "c"} {
		name := fmt.Sprintf("bg-fc%s%d", role, os.Getpid()%10000)
		if _, err := sysexec.Run(ctx, "ip", "tuntap", "add", name, "mode", "tap"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sysexec.Run(context.Background(), "ip", "link", "del", name) })
		taps = append(taps, name)
	}
	d := newDriver()
	src := newSpec(t)
	src.TapName, src.MAC = taps[0], "06:00:ac:1e:00:02"
	_, before, dir := snapshotOf(t, d, src)
	clone := newSpec(t)
	clone.TapName, clone.MAC = taps[1], src.MAC
	h := restoreVM(t, d, clone, dir)
	cfg, err := firecracker.NewClient(h.APISocket).GetVMConfig(ctx)
	if err != nil || len(cfg.NetworkInterfaces) != 1 || cfg.NetworkInterfaces[0].HostDevName != taps[1] {
		t.Fatalf("restored nics %+v, %v", cfg.NetworkInterfaces, err)
	}
	if h := agentHealth(t, clone.AgentSocket); h.BootID != before.BootID {
		t.Errorf("clone agent %+v", h)
	}
}

// BenchmarkRestore measures Restore against the fake (checks, process
// launch, socket wait, serial, load, resume) from one saved state, then
// stops the VM. Compare with BenchmarkStart from the same run.
func BenchmarkRestore(b *testing.B) {
	d := newDriver()
	dir := b.TempDir()
	for _, f := range []string{"vmlinux", "rootfs.ext4", "work.ext4"} {
		os.WriteFile(filepath.Join(dir, f), []byte(f), 0o600)
	}
	spec := vmm.Spec{
		VMID: "bench002", VCPUs: 1, MemoryMiB: 128, KernelPath: filepath.Join(dir, "vmlinux"),
		RootfsPath: filepath.Join(dir, "rootfs.ext4"), WorkDiskPath: filepath.Join(dir, "work.ext4"),
		APISocket: filepath.Join(dir, "api.sock"), AgentSocket: filepath.Join(dir, "v.sock"), VsockCID: 3,
		ConsoleLog: filepath.Join(dir, "console.log"), VMMLog: filepath.Join(dir, "vmm.log"),
	}
	ctx := context.Background()
	h, err := d.Start(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	snap := filepath.Join(dir, "snap")
	os.Mkdir(snap, 0o700)
	if err := d.Pause(ctx, h); err != nil {
		b.Fatal(err)
	}
	if err := d.SaveState(ctx, h, snap); err != nil {
		b.Fatal(err)
	}
	if err := d.Stop(ctx, h, time.Second); err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		h, err := d.Restore(ctx, spec, snap)
		total += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := d.Stop(ctx, h, 2*time.Second); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/restore")
}
