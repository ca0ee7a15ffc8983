package fcfake

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

// instance is one in-process fake on a temp socket.
type instance struct {
	t       *testing.T
	dir     string
	sock    string
	http    *http.Client
	done    chan error
	console *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func start(t *testing.T, opts Options) *instance {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"vmlinux", "initrd", "rootfs.ext4", "work.ext4", "metrics"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	in := &instance{t: t, dir: dir, sock: filepath.Join(dir, "api.sock"), done: make(chan error, 1), console: &syncBuffer{}}
	l, err := net.Listen("unix", in.sock)
	if err != nil {
		t.Fatal(err)
	}
	if opts.ID == "" {
		opts.ID = "test"
	}
	if opts.Console == nil {
		opts.Console = in.console
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { in.done <- Serve(ctx, l, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	in.http = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", in.sock)
	}}}
	return in
}

func (in *instance) path(name string) string { return filepath.Join(in.dir, name) }

// call sends one request and returns the status and the body.
func (in *instance) call(method, path, body string) (int, string) {
	in.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://localhost"+path, r)
	resp, err := in.http.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// must expects status (and, for 400, a fault containing want).
func (in *instance) must(method, path, body string, status int, want string) string {
	in.t.Helper()
	code, got := in.call(method, path, body)
	if code != status {
		in.t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, code, got, status)
	}
	if status == 400 {
		var f struct {
			FaultMessage string `json:"fault_message"`
		}
		if err := json.Unmarshal([]byte(got), &f); err != nil || !strings.Contains(f.FaultMessage, want) {
			in.t.Fatalf("%s %s: fault %s, want it to contain %q", method, path, got, want)
		}
	}
	if status == 204 && got != "" {
		in.t.Fatalf("%s %s: 204 with body %q", method, path, got)
	}
	return got
}

func (in *instance) configure() {
	in.t.Helper()
	in.must("PUT", "/machine-config", `{"vcpu_count":2,"mem_size_mib":256}`, 204, "")
	in.must("PUT", "/boot-source", fmt.Sprintf(`{"kernel_image_path":%q,"initrd_path":%q,"boot_args":"console=ttyS0 ip=10.0.0.2::10.0.0.1:255.255.255.0:box:eth0:off:10.0.0.1 banger.agent_port=1024"}`,
		in.path("vmlinux"), in.path("initrd")), 204, "")
	in.must("PUT", "/drives/rootfs", fmt.Sprintf(`{"drive_id":"rootfs","is_root_device":true,"path_on_host":%q}`, in.path("rootfs.ext4")), 204, "")
	in.must("PUT", "/vsock", fmt.Sprintf(`{"guest_cid":3,"uds_path":%q}`, in.path("v.sock")), 204, "")
}

func TestRoutesAndErrors(t *testing.T) {
	in := start(t, Options{SkipTapCheck: true})
	in.must("GET", "/nosuch", "", 400, "Invalid request method and/or path: GET /nosuch.")
	in.must("DELETE", "/drives/rootfs", "", 400, "Invalid request method and/or path")
	in.must("PUT", "/machine-config", `{"vcpu_count":2,"mem_size_mib":256,"vcpus":2}`, 400, "unknown field")
	in.must("PUT", "/machine-config", `{"vcpu_count":2}`, 400, "missing field `mem_size_mib`")
	in.must("PUT", "/machine-config", `{"vcpu_count":3,"mem_size_mib":256,"smt":true}`, 400, "vCPU number is invalid")
	in.must("PUT", "/machine-config", `{"vcpu_count":33,"mem_size_mib":256}`, 400, "vCPU number is invalid")
	in.must("PUT", "/machine-config", ``, 400, "Empty request body")
	in.must("PUT", "/boot-source", `{"kernel_image_path":"/nonexistent/vmlinux"}`, 400, "/nonexistent/vmlinux")
	in.must("PUT", "/drives/rootfs", `{"drive_id":"root","is_root_device":true,"path_on_host":"/x"}`, 400, "does not match")
	in.must("PUT", "/drives/ro-ot", `{"drive_id":"ro-ot","is_root_device":true,"path_on_host":"/x"}`, 400, "Invalid drive id")
	in.must("PUT", "/drives/rootfs", `{"drive_id":"rootfs","path_on_host":"/x"}`, 400, "missing field `is_root_device`")
	in.must("PUT", "/drives/rootfs", `{"drive_id":"rootfs","is_root_device":true,"path_on_host":"/nonexistent.ext4"}`, 400, "/nonexistent.ext4")
	in.must("PUT", "/drives/rootfs", fmt.Sprintf(`{"drive_id":"rootfs","is_root_device":true,"cache_type":"None","path_on_host":%q}`, in.path("rootfs.ext4")), 400, "unknown variant")
	in.must("PUT", "/drives/a", fmt.Sprintf(`{"drive_id":"a","is_root_device":true,"path_on_host":%q}`, in.path("rootfs.ext4")), 204, "")
	in.must("PUT", "/drives/b", fmt.Sprintf(`{"drive_id":"b","is_root_device":true,"path_on_host":%q}`, in.path("work.ext4")), 400, "root block device already exists")
	in.must("PUT", "/network-interfaces/eth0", `{"iface_id":"eth0"}`, 400, "missing field `host_dev_name`")
	in.must("PUT", "/vsock", fmt.Sprintf(`{"guest_cid":2,"uds_path":%q}`, in.path("v.sock")), 400, "invalid guest CID")
	in.must("PUT", "/actions", `{"action_type":"Reboot"}`, 400, "unknown variant")
	in.must("PUT", "/actions", `{"action_type":"InstanceStart"}`, 400, "without kernel configuration")
	// Post-boot calls before boot.
	in.must("PATCH", "/vm", `{"state":"Paused"}`, 400, msgBeforeStart)
	in.must("PUT", "/actions", `{"action_type":"SendCtrlAltDel"}`, 400, msgBeforeStart)
	in.must("PATCH", "/drives/a", `{"drive_id":"a"}`, 400, msgBeforeStart)
}

func TestVsockPathMustNotExist(t *testing.T) {
	in := start(t, Options{})
	os.WriteFile(in.path("v.sock"), nil, 0o600)
	in.must("PUT", "/vsock", fmt.Sprintf(`{"guest_cid":3,"uds_path":%q}`, in.path("v.sock")), 400, "address already in use")
}

func TestTapMustExist(t *testing.T) {
	in := start(t, Options{})
	in.must("PUT", "/network-interfaces/eth0", `{"iface_id":"eth0","host_dev_name":"bg-nosuch0"}`, 400, "bg-nosuch0 does not exist")
	in.must("PUT", "/network-interfaces/eth0", `{"iface_id":"eth0","host_dev_name":"lo","guest_mac":"06:00:0a:00:00:02"}`, 204, "")
}

func TestBootLifecycle(t *testing.T) {
	in := start(t, Options{ID: "vm1"})
	if got := in.must("GET", "/", "", 200, ""); !strings.Contains(got, `"state":"Not started"`) || !strings.Contains(got, `"id":"vm1"`) {
		t.Fatalf("GET / = %s", got)
	}
	in.configure()
	// No guest listener before boot: the vsock muxer closes the connection.
	if _, err := connect(in.path("v.sock"), 1024); err == nil {
		t.Fatal("CONNECT before InstanceStart succeeded")
	}
	in.must("PUT", "/actions", `{"action_type":"InstanceStart"}`, 204, "")
	if got := in.must("GET", "/", "", 200, ""); !strings.Contains(got, `"state":"Running"`) {
		t.Fatalf("GET / after start = %s", got)
	}
	if c := in.console.String(); !strings.Contains(c, "booting kernel "+in.path("vmlinux")) || !strings.Contains(c, "root=/dev/vda rw") {
		t.Errorf("console = %q", c)
	}
	// Pre-boot calls after boot.
	in.must("PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":128}`, 400, msgAfterStart)
	in.must("PUT", "/actions", `{"action_type":"InstanceStart"}`, 400, msgAfterStart)
	// GET /vm/config returns what was configured.
	var cfg fullConfig
	json.Unmarshal([]byte(in.must("GET", "/vm/config", "", 200, "")), &cfg)
	if *cfg.MachineConfig.VCPUCount != 2 || *cfg.MachineConfig.MemSizeMib != 256 || *cfg.MachineConfig.SMT ||
		len(cfg.Drives) != 1 || *cfg.Drives[0].DriveID != "rootfs" || cfg.Vsock == nil || *cfg.Vsock.GuestCID != 3 {
		t.Fatalf("vm/config = %+v", cfg)
	}
	// Live grow: PATCH the drive to another backing file.
	in.must("PATCH", "/drives/rootfs", fmt.Sprintf(`{"drive_id":"rootfs","path_on_host":%q}`, in.path("work.ext4")), 204, "")
	in.must("PATCH", "/drives/nosuch", `{"drive_id":"nosuch"}`, 400, "no drive with id nosuch")
	in.must("PATCH", "/vm", `{"state":"Paused"}`, 204, "")
	if got := in.must("GET", "/", "", 200, ""); !strings.Contains(got, `"state":"Paused"`) {
		t.Fatalf("GET / paused = %s", got)
	}
	in.must("PATCH", "/vm", `{"state":"Resumed"}`, 204, "")

	// The guest agent answers over the hybrid vsock.
	conn, err := connect(in.path("v.sock"), 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var h api.AgentHealth
	getJSON(t, conn, "/healthz", &h)
	if h.Status != "ok" || h.Hostname != "box" || h.Version != AgentVersion || !h.WorkDiskMounted || h.BootID == "" || h.UptimeSeconds < 0 {
		t.Fatalf("healthz = %+v", h)
	}
	var info api.AgentInfo
	getJSON(t, conn, "/v1/info", &info) // same connection: keep-alive
	if info.MemTotalBytes != 256<<20 {
		t.Fatalf("info = %+v", info)
	}
	if _, err := connect(in.path("v.sock"), 52); err == nil {
		t.Fatal("CONNECT to a port without listener succeeded")
	}

	// Ctrl+Alt+Del: the guest reboots and Serve returns.
	in.must("PUT", "/actions", `{"action_type":"SendCtrlAltDel"}`, 204, "")
	select {
	case err := <-in.done:
		in.done <- err // for the cleanup
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve still running after SendCtrlAltDel")
	}
	if _, err := os.Lstat(in.sock); err != nil {
		t.Error("the API socket was removed; Firecracker leaves it")
	}
}

func TestHangStopIgnoresCtrlAltDel(t *testing.T) {
	in := start(t, Options{HangStop: true})
	in.configure()
	in.must("PUT", "/actions", `{"action_type":"InstanceStart"}`, 204, "")
	in.must("PUT", "/actions", `{"action_type":"SendCtrlAltDel"}`, 204, "")
	select {
	case <-in.done:
		t.Fatal("Serve returned despite HangStop")
	case <-time.After(300 * time.Millisecond):
	}
}

func TestFailInjectionAndRecord(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	in := start(t, Options{Fail: []string{"PUT /boot-source"}, Record: func(m, p string, body []byte) {
		mu.Lock()
		seen = append(seen, m+" "+p+" "+string(body))
		mu.Unlock()
	}})
	in.must("PUT", "/boot-source", fmt.Sprintf(`{"kernel_image_path":%q}`, in.path("vmlinux")), 400, "injected failure for PUT /boot-source")
	in.must("PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":128}`, 204, "")
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || !strings.HasPrefix(seen[1], `PUT /machine-config {"vcpu_count":1`) {
		t.Fatalf("recorded %q", seen)
	}
}

func TestSerialAndMetricsFiles(t *testing.T) {
	in := start(t, Options{})
	in.must("PUT", "/serial", fmt.Sprintf(`{"serial_out_path":%q}`, in.path("console.log")), 204, "")
	in.must("PUT", "/metrics", `{"metrics_path":"/nonexistent/m"}`, 400, "/nonexistent/m")
	in.must("PUT", "/metrics", fmt.Sprintf(`{"metrics_path":%q}`, in.path("metrics")), 204, "")
	in.configure()
	in.must("PUT", "/actions", `{"action_type":"InstanceStart"}`, 204, "")
	in.must("PUT", "/actions", `{"action_type":"FlushMetrics"}`, 204, "")
	if c, _ := os.ReadFile(in.path("console.log")); !strings.Contains(string(c), "booting kernel") {
		t.Errorf("serial file = %q", c)
	}
	if in.console.String() != "" {
		t.Errorf("console went to stdout too: %q", in.console.String())
	}
	if m, _ := os.ReadFile(in.path("metrics")); !strings.Contains(string(m), "utc_timestamp_ms") {
		t.Errorf("metrics = %q", m)
	}
}

// connect performs the hybrid vsock handshake.
func connect(uds string, port int) (net.Conn, error) {
	conn, err := net.Dial("unix", uds)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(conn, "CONNECT %d\n", port)
	line, err := bufio.NewReader(io.LimitReader(conn, 32)).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "OK ") {
		conn.Close()
		return nil, fmt.Errorf("handshake: %q %v", line, err)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

func getJSON(t *testing.T, conn net.Conn, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://agent"+path, nil)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
