package fcfake

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
)

// bootWithTap configures and starts a VM with a network interface eth0 on
// tap (the tap check is skipped by the caller's options).
func (in *instance) bootWithTap(tap string) {
	in.t.Helper()
	in.configure()
	in.must("PUT", "/network-interfaces/eth0", fmt.Sprintf(`{"iface_id":"eth0","host_dev_name":%q,"guest_mac":"06:00:0a:00:00:02"}`, tap), 204, "")
	in.must("PUT", "/actions", `{"action_type":"InstanceStart"}`, 204, "")
}

// health asks the guest agent behind uds for /healthz.
func health(t *testing.T, uds string) api.AgentHealth {
	t.Helper()
	conn, err := connect(uds, 1024)
	if err != nil {
		t.Fatalf("agent on %s: %v", uds, err)
	}
	defer conn.Close()
	var h api.AgentHealth
	getJSON(t, conn, "/healthz", &h)
	return h
}

// snapshot pauses the booted instance and writes a Full snapshot into dir.
func (in *instance) snapshot(dir string) (state, mem string) {
	in.t.Helper()
	state, mem = filepath.Join(dir, "vmstate"), filepath.Join(dir, "memory")
	in.must("PATCH", "/vm", `{"state":"Paused"}`, 204, "")
	in.must("PUT", "/snapshot/create", fmt.Sprintf(`{"snapshot_type":"Full","snapshot_path":%q,"mem_file_path":%q}`, state, mem), 204, "")
	return state, mem
}

// waitExit waits for Serve to return and gives back its error.
func (in *instance) waitExit() error {
	in.t.Helper()
	select {
	case err := <-in.done:
		in.done <- err // for the cleanup
		return err
	case <-time.After(5 * time.Second):
		in.t.Fatal("Serve still running")
		return nil
	}
}

func TestSnapshotCreateRules(t *testing.T) {
	in := start(t, Options{SkipTapCheck: true})
	dir := t.TempDir()
	body := fmt.Sprintf(`{"snapshot_path":%q,"mem_file_path":%q}`, filepath.Join(dir, "vmstate"), filepath.Join(dir, "memory"))
	in.must("PUT", "/snapshot/create", body, 400, msgBeforeStart)
	in.bootWithTap("tap0")
	in.must("PUT", "/snapshot/create", `{"snapshot_path":"/x"}`, 400, "missing field `mem_file_path`")
	in.must("PUT", "/snapshot/create", `{"mem_file_path":"/x"}`, 400, "missing field `snapshot_path`")
	in.must("PUT", "/snapshot/create", `{"snapshot_path":"/x","mem_file_path":"/y","version":"1.0"}`, 400, "unknown field")
	in.must("PUT", "/snapshot/create", `{"snapshot_type":"Incremental","snapshot_path":"/x","mem_file_path":"/y"}`, 400, "unknown variant `Incremental`")
	in.must("PUT", "/snapshot/create", body, 400, "save/restore unavailable while running")
	in.must("PATCH", "/vm", `{"state":"Paused"}`, 204, "")
	in.must("PUT", "/snapshot/create", strings.Replace(body, "{", `{"snapshot_type":"Diff",`, 1), 400, "dirty page tracking disabled")
	in.must("PUT", "/snapshot/create", fmt.Sprintf(`{"snapshot_path":%q,"mem_file_path":"/y"}`, filepath.Join(dir, "nodir", "vmstate")), 400,
		"Cannot perform open on the snapshot backing file")
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("refused creates left files: %v", entries)
	}
	in.must("PUT", "/snapshot/create", body, 204, "")

	// The state file is the fake's JSON with the VM's configuration.
	var st snapshotState
	data, err := os.ReadFile(filepath.Join(dir, "vmstate"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("state file: %v\n%s", err, data)
	}
	if st.Format != snapshotFormat || *st.Machine.MemSizeMib != 256 || len(st.Drives) != 1 || len(st.Ifaces) != 1 ||
		*st.Ifaces[0].HostDevName != "tap0" || st.Vsock == nil || *st.Vsock.UDSPath != in.path("v.sock") || st.Guest.BootID == "" {
		t.Fatalf("state = %s", data)
	}
	// The memory file is the guest's size, and sparse.
	fi, err := os.Stat(filepath.Join(dir, "memory"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 256<<20 {
		t.Errorf("memory file %d bytes, want %d", fi.Size(), 256<<20)
	}
	if blocks := fi.Sys().(*syscall.Stat_t).Blocks * 512; blocks > 1<<20 {
		t.Errorf("memory file uses %d bytes on disk: not sparse", blocks)
	}
	// The VM stays paused after the snapshot.
	if got := in.must("GET", "/", "", 200, ""); !strings.Contains(got, `"state":"Paused"`) {
		t.Errorf("GET / after create = %s", got)
	}
}

func TestSnapshotDiffWithDirtyTracking(t *testing.T) {
	in := start(t, Options{})
	in.configure()
	in.must("PUT", "/machine-config", `{"vcpu_count":2,"mem_size_mib":256,"track_dirty_pages":true}`, 204, "")
	in.must("PUT", "/actions", `{"action_type":"InstanceStart"}`, 204, "")
	in.must("PATCH", "/vm", `{"state":"Paused"}`, 204, "")
	dir := t.TempDir()
	in.must("PUT", "/snapshot/create", fmt.Sprintf(`{"snapshot_type":"Diff","snapshot_path":%q,"mem_file_path":%q}`,
		filepath.Join(dir, "vmstate"), filepath.Join(dir, "memory")), 204, "")
	if fi, err := os.Stat(filepath.Join(dir, "memory")); err != nil || fi.Size() != 256<<20 {
		t.Fatalf("diff memory file: %v %v", fi, err)
	}
}

func TestSnapshotLoadArgumentRules(t *testing.T) {
	in := start(t, Options{})
	in.must("PUT", "/snapshot/load", `{"snapshot_path":"/s"}`, 400, msgMemMissingField)
	in.must("PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_file_path":"/m","mem_backend":{"backend_type":"File","backend_path":"/m"}}`, 400, msgMemTooManyFields)
	in.must("PUT", "/snapshot/load", `{"mem_backend":{"backend_type":"File","backend_path":"/m"}}`, 400, "missing field `snapshot_path`")
	in.must("PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_path":"/m"}}`, 400, "missing field `backend_type`")
	in.must("PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"Disk","backend_path":"/m"}}`, 400, "unknown variant `Disk`")
	in.must("PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"Uffd","backend_path":"/m"}}`, 400, "does not support the Uffd memory backend")
	in.must("PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"File","backend_path":"/m"},"network_overrides":[{"iface_id":"eth0"}]}`, 400, "missing field `host_dev_name`")
	in.must("PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"File","backend_path":"/m"},"vsock_override":{}}`, 400, "missing field `uds_path`")
	in.must("PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"File","backend_path":"/m"},"resume":true}`, 400, "unknown field")
	// None of those ended the process: argument errors are recoverable.
	in.must("GET", "/", "", 200, "")

	// A boot-specific resource rules out a load, even a refused one...
	in2 := start(t, Options{})
	in2.must("PUT", "/vsock", `{"guest_cid":2,"uds_path":"/nonexistent/v.sock"}`, 400, "invalid guest CID")
	in2.must("PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"File","backend_path":"/m"}}`, 400, msgLoadNotAllowed)
	// ...and so does a boot.
	in3 := start(t, Options{})
	in3.configure()
	in3.must("PUT", "/actions", `{"action_type":"InstanceStart"}`, 204, "")
	in3.must("PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"File","backend_path":"/m"}}`, 400, msgAfterStart)
}

func TestSnapshotRestoreWithOverrides(t *testing.T) {
	src := start(t, Options{SkipTapCheck: true})
	src.bootWithTap("tap-src")
	before := health(t, src.path("v.sock"))
	state, mem := src.snapshot(t.TempDir())

	// A fresh process: the serial console and the logger may be set first.
	dst := start(t, Options{SkipTapCheck: true})
	dst.must("PUT", "/serial", fmt.Sprintf(`{"serial_out_path":%q}`, dst.path("console.log")), 204, "")
	dst.must("PUT", "/logger", fmt.Sprintf(`{"log_path":%q,"level":"Info"}`, dst.path("metrics")), 204, "")
	newSock := dst.path("clone-v.sock")
	dst.must("PUT", "/snapshot/load", fmt.Sprintf(`{"snapshot_path":%q,"mem_backend":{"backend_type":"File","backend_path":%q},`+
		`"resume_vm":true,"network_overrides":[{"iface_id":"eth0","host_dev_name":"tap-clone"}],"vsock_override":{"uds_path":%q}}`,
		state, mem, newSock), 204, "")
	if got := dst.must("GET", "/", "", 200, ""); !strings.Contains(got, `"state":"Running"`) {
		t.Fatalf("GET / after load = %s", got)
	}
	var cfg fullConfig
	json.Unmarshal([]byte(dst.must("GET", "/vm/config", "", 200, "")), &cfg)
	if cfg.BootSource != nil || *cfg.MachineConfig.MemSizeMib != 256 || *cfg.MachineConfig.VCPUCount != 2 ||
		len(cfg.NetworkInterfaces) != 1 || *cfg.NetworkInterfaces[0].HostDevName != "tap-clone" ||
		cfg.NetworkInterfaces[0].GuestMAC != "06:00:0a:00:00:02" || cfg.Vsock == nil || *cfg.Vsock.UDSPath != newSock ||
		len(cfg.Drives) != 1 || cfg.Drives[0].PathOnHost != src.path("rootfs.ext4") {
		t.Fatalf("vm/config after load = %+v", cfg)
	}
	// The same guest runs on: same boot, not rebooted, agent on the new socket.
	after := health(t, newSock)
	if after.BootID != before.BootID || after.Hostname != "box" || after.UptimeSeconds < before.UptimeSeconds {
		t.Fatalf("health after restore %+v, before %+v", after, before)
	}
	if c, _ := os.ReadFile(dst.path("console.log")); !strings.Contains(string(c), "restored guest (boot id "+before.BootID) {
		t.Errorf("console = %q", c)
	}
	// The restored VM is booted: boot calls and a second load are refused.
	dst.must("PUT", "/actions", `{"action_type":"InstanceStart"}`, 400, msgAfterStart)
	dst.must("PUT", "/snapshot/load", fmt.Sprintf(`{"snapshot_path":%q,"mem_backend":{"backend_type":"File","backend_path":%q}}`, state, mem), 400, msgAfterStart)
	// It can be snapshotted in turn.
	dst.snapshot(t.TempDir())
}

func TestSnapshotLoadPausedThenResume(t *testing.T) {
	src := start(t, Options{})
	src.configure()
	src.must("PUT", "/actions", `{"action_type":"InstanceStart"}`, 204, "")
	state, mem := src.snapshot(t.TempDir())
	// The source's vsock socket still exists: the clone needs an override.
	dst := start(t, Options{})
	sock := dst.path("v2.sock")
	dst.must("PUT", "/snapshot/load", fmt.Sprintf(`{"snapshot_path":%q,"mem_backend":{"backend_type":"File","backend_path":%q},"vsock_override":{"uds_path":%q},"track_dirty_pages":true}`,
		state, mem, sock), 204, "")
	if got := dst.must("GET", "/", "", 200, ""); !strings.Contains(got, `"state":"Paused"`) {
		t.Fatalf("GET / after a load without resume_vm = %s", got)
	}
	if _, err := connect(sock, 1024); err == nil {
		t.Fatal("the agent of a paused guest answered")
	}
	dst.must("PATCH", "/vm", `{"state":"Resumed"}`, 204, "")
	health(t, sock)
	// track_dirty_pages at load allows Diff snapshots.
	dst.must("PATCH", "/vm", `{"state":"Paused"}`, 204, "")
	dir := t.TempDir()
	dst.must("PUT", "/snapshot/create", fmt.Sprintf(`{"snapshot_type":"Diff","snapshot_path":%q,"mem_file_path":%q}`,
		filepath.Join(dir, "s"), filepath.Join(dir, "m")), 204, "")
}

func TestSnapshotLoadFailureEndsProcess(t *testing.T) {
	src := start(t, Options{SkipTapCheck: true})
	src.bootWithTap("tap-src")
	state, mem := src.snapshot(t.TempDir())
	other := start(t, Options{})
	other.configure()
	other.must("PUT", "/actions", `{"action_type":"InstanceStart"}`, 204, "")
	_, otherMem := other.snapshot(t.TempDir())

	load := func(extra, memPath string) string {
		return fmt.Sprintf(`{"snapshot_path":%q,"mem_backend":{"backend_type":"File","backend_path":%q}%s}`, state, memPath, extra)
	}
	for _, c := range []struct {
		name, body, want string
		opts             Options
	}{
		{"unknown interface", load(`,"network_overrides":[{"iface_id":"eth9","host_dev_name":"tap9"}]`, mem), "Unknown Network Device", Options{SkipTapCheck: true}},
		{"missing tap", load(`,"network_overrides":[{"iface_id":"eth0","host_dev_name":"bg-nosuch0"}]`, mem), "bg-nosuch0 does not exist", Options{}},
		{"vsock path taken", load("", mem), "Error binding to the host-side Unix socket", Options{SkipTapCheck: true}},
		{"other guest's memory", load(`,"vsock_override":{"uds_path":"/nonexistent/v.sock"}`, otherMem), "is not the memory of the snapshot's guest", Options{SkipTapCheck: true}},
		{"no memory file", load("", mem+".gone"), "Failed to load guest memory", Options{SkipTapCheck: true}},
		{"not a state file", fmt.Sprintf(`{"snapshot_path":%q,"mem_backend":{"backend_type":"File","backend_path":%q}}`, mem, mem), "is not a fake-firecracker snapshot state file", Options{}},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			in := start(t, c.opts)
			in.must("PUT", "/snapshot/load", c.body, 400, c.want)
			if err := in.waitExit(); err == nil || !strings.Contains(err.Error(), "snapshot load failed") {
				t.Fatalf("Serve returned %v, want the load failure", err)
			}
		})
	}
}

// TestSnapshotRestoreRunsRealAgent: with Options.Agent, the restored guest
// runs a real banger-agent of its own and the new vsock socket reaches it.
func TestSnapshotRestoreRunsRealAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds banger-agent")
	}
	agent := filepath.Join(t.TempDir(), "banger-agent")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := sysexec.Run(ctx, "go", "build", "-o", agent, "github.com/banger-dev/banger/cmd/banger-agent"); err != nil {
		t.Fatal(err)
	}
	src := start(t, Options{Agent: agent})
	src.configure()
	src.must("PUT", "/actions", `{"action_type":"InstanceStart"}`, 204, "")
	state, mem := src.snapshot(t.TempDir())
	dst := start(t, Options{Agent: agent})
	sock := dst.path("clone-v.sock")
	dst.must("PUT", "/snapshot/load", fmt.Sprintf(`{"snapshot_path":%q,"mem_backend":{"backend_type":"File","backend_path":%q},"resume_vm":true,"vsock_override":{"uds_path":%q}}`,
		state, mem, sock), 204, "")
	// The real agent may take a moment to listen: the vsock closes the
	// connection until it does, as a guest's would.
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := connect(sock, 1024)
		if err == nil {
			var h api.AgentHealth
			getJSON(t, conn, "/healthz", &h)
			conn.Close()
			if h.Status != "ok" || h.Version == AgentVersion {
				t.Fatalf("healthz = %+v, want the real agent's", h)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restored guest's real agent never answered: %v\nconsole: %s", err, dst.console.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
