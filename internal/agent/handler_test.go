package agent

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
)

// procTree fabricates the /proc files the handler reads.
type procTree struct {
	root    string
	workDir string
	rootDir string
}

func newProcTree(t testing.TB, workMounted bool) procTree {
	t.Helper()
	base := t.TempDir()
	p := procTree{
		root:    filepath.Join(base, "proc"),
		workDir: filepath.Join(base, "work"),
		rootDir: filepath.Join(base, "rootfs"),
	}
	for _, d := range []string{p.workDir, p.rootDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mounts := "/dev/vda / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n"
	if workMounted {
		mounts += "/dev/vdb " + p.workDir + " ext4 rw,relatime 0 0\n"
	}
	p.write(t, "uptime", "1234.56 2000.00\n")
	p.write(t, "sys/kernel/random/boot_id", "6f1c2d3e-aaaa-bbbb-cccc-0123456789ab\n")
	p.write(t, "mounts", mounts)
	p.write(t, "loadavg", "0.52 0.31 0.10 2/123 4567\n")
	p.write(t, "meminfo", "MemTotal:        1014000 kB\nMemFree:          500000 kB\nMemAvailable:     800000 kB\nBuffers:           10000 kB\nCached:           100000 kB\n")
	return p
}

func (p procTree) write(t testing.TB, name, content string) {
	t.Helper()
	path := filepath.Join(p.root, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (p procTree) handler() http.Handler {
	return NewHandler(Options{
		Version:  "1.2.3",
		Hostname: func() (string, error) { return "dev", nil },
		ProcRoot: p.root,
		RootDir:  p.rootDir,
		WorkDir:  p.workDir,
		Now:      func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
	})
}

func do(t *testing.T, h http.Handler, method, path string, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body.String(), err)
	}
	return v
}

func TestHealthReportsProcFields(t *testing.T) {
	p := newProcTree(t, true)
	rec := do(t, p.handler(), "GET", "/healthz", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := decode[api.AgentHealth](t, rec)
	want := api.AgentHealth{
		Status:          "ok",
		Version:         "1.2.3",
		Hostname:        "dev",
		UptimeSeconds:   1234.56,
		BootID:          "6f1c2d3e-aaaa-bbbb-cccc-0123456789ab",
		WorkDiskMounted: true,
		Protocol:        agentproto.Version,
		Features:        agentproto.Features,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("health = %+v\nwant     %+v", got, want)
	}
	if d := rec.Header().Get("Date"); d != "Fri, 02 Jan 2026 03:04:05 GMT" {
		t.Errorf("Date header = %q, want the injected clock's time", d)
	}
}

func TestHealthWorkDiskMounted(t *testing.T) {
	tests := []struct {
		name   string
		mounts func(p procTree) (file, content string)
		want   bool
	}{
		{"mounted", func(p procTree) (string, string) {
			return "mounts", "/dev/vdb " + p.workDir + " ext4 rw 0 0\n"
		}, true},
		{"not mounted", func(p procTree) (string, string) {
			return "mounts", "/dev/vda / ext4 rw 0 0\n/dev/vdb " + p.workDir + "/sub ext4 rw 0 0\n"
		}, false},
		{"trailing slash in table", func(p procTree) (string, string) {
			return "mounts", "/dev/vdb " + p.workDir + "/ ext4 rw 0 0\n"
		}, true},
		{"only self/mounts", func(p procTree) (string, string) {
			os.Remove(filepath.Join(p.root, "mounts"))
			return "self/mounts", "/dev/vdb " + p.workDir + " ext4 rw 0 0\n"
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProcTree(t, false)
			file, content := tt.mounts(p)
			p.write(t, file, content)
			got := decode[api.AgentHealth](t, do(t, p.handler(), "GET", "/healthz", ""))
			if got.WorkDiskMounted != tt.want {
				t.Errorf("WorkDiskMounted = %v, want %v", got.WorkDiskMounted, tt.want)
			}
		})
	}
}

func TestHasMountAtUnescapesOctal(t *testing.T) {
	table := []byte("/dev/vdb /srv/my\\040work ext4 rw 0 0\n")
	if !hasMountAt(table, "/srv/my work") {
		t.Error("mount point with an escaped space not recognised")
	}
	if hasMountAt(table, "/srv/my\\040work") {
		t.Error("escaped form matched literally")
	}
}

func statfs(t *testing.T, dir string) (total, used int64) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Frsize, int64(st.Blocks-st.Bfree) * st.Frsize
}

func TestInfoReportsLoadMemoryAndDisks(t *testing.T) {
	p := newProcTree(t, true)
	rec := do(t, p.handler(), "GET", "/v1/info", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := decode[api.AgentInfo](t, rec)
	if got.Load1 != 0.52 || got.Load5 != 0.31 || got.Load15 != 0.10 {
		t.Errorf("loads = %v %v %v, want 0.52 0.31 0.10", got.Load1, got.Load5, got.Load15)
	}
	if got.MemTotalBytes != 1014000*1024 || got.MemAvailBytes != 800000*1024 {
		t.Errorf("memory = %d/%d, want %d/%d", got.MemAvailBytes, got.MemTotalBytes, 800000*1024, 1014000*1024)
	}
	// The temp dirs live on one real filesystem: compare with statfs.
	// Used bytes can move between the two calls, so allow some slack.
	total, used := statfs(t, p.rootDir)
	if got.RootTotalBytes != total || got.WorkTotalBytes != total {
		t.Errorf("total bytes root=%d work=%d, want %d", got.RootTotalBytes, got.WorkTotalBytes, total)
	}
	for name, v := range map[string]int64{"root": got.RootUsedBytes, "work": got.WorkUsedBytes} {
		if diff := v - used; diff > 64<<20 || diff < -64<<20 || v <= 0 || v > total {
			t.Errorf("%s used = %d, statfs says %d of %d", name, v, used, total)
		}
	}
}

func TestInfoWorkDiskZeroWhenNotMounted(t *testing.T) {
	p := newProcTree(t, false)
	got := decode[api.AgentInfo](t, do(t, p.handler(), "GET", "/v1/info", ""))
	if got.WorkTotalBytes != 0 || got.WorkUsedBytes != 0 {
		t.Errorf("work disk = %d/%d, want 0/0 when %s is not a mount point", got.WorkUsedBytes, got.WorkTotalBytes, p.workDir)
	}
	if got.RootTotalBytes == 0 {
		t.Error("root total is 0")
	}
}

func TestInfoMemAvailableFallback(t *testing.T) {
	p := newProcTree(t, true)
	p.write(t, "meminfo", "MemTotal: 2000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\n")
	got := decode[api.AgentInfo](t, do(t, p.handler(), "GET", "/v1/info", ""))
	if got.MemTotalBytes != 2000*1024 || got.MemAvailBytes != 420*1024 {
		t.Errorf("memory = %d/%d, want %d/%d", got.MemAvailBytes, got.MemTotalBytes, 420*1024, 2000*1024)
	}
}

func TestHandlerErrors(t *testing.T) {
	p := newProcTree(t, true)
	h := p.handler()
	tests := []struct {
		method, path, body string
		status             int
		code               api.ErrorCode
		msg                string
	}{
		{"GET", "/nope", "", http.StatusNotFound, api.CodeNotFound, `"/nope"`},
		{"GET", "/", "", http.StatusNotFound, api.CodeNotFound, "no agent endpoint"},
		{"GET", "/healthz/", "", http.StatusNotFound, api.CodeNotFound, "no agent endpoint"},
		{"POST", "/healthz", "{}", http.StatusMethodNotAllowed, api.CodeBadRequest, "method POST not allowed on /healthz"},
		{"DELETE", "/v1/info", "", http.StatusMethodNotAllowed, api.CodeBadRequest, "method DELETE"},
		{"POST", "/healthz", strings.Repeat("x", maxBodyBytes+1), http.StatusRequestEntityTooLarge, api.CodeTooLarge, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := do(t, h, tt.method, tt.path, tt.body)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			e := decode[api.Error](t, rec)
			if e.Code != tt.code || !strings.Contains(e.Message, tt.msg) || e.Hint == "" {
				t.Errorf("error = %+v, want code %s, message containing %q and a hint", e, tt.code, tt.msg)
			}
			if tt.status == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow = %q", rec.Header().Get("Allow"))
			}
		})
	}
}

func TestHeadIsAllowed(t *testing.T) {
	p := newProcTree(t, true)
	if rec := do(t, p.handler(), "HEAD", "/healthz", ""); rec.Code != http.StatusOK {
		t.Errorf("HEAD /healthz = %d, want 200", rec.Code)
	}
}

func TestBrokenProcIsA500NamingTheFile(t *testing.T) {
	tests := []struct {
		name, path, file, content, want string
	}{
		{"missing boot_id", "/healthz", "", "", "boot_id"},
		{"garbage uptime", "/healthz", "uptime", "soon\n", `"soon" is not an uptime`},
		{"short loadavg", "/v1/info", "loadavg", "0.1 0.2\n", "want at least 3 fields"},
		{"no MemTotal", "/v1/info", "meminfo", "MemFree: 1 kB\n", "no MemTotal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProcTree(t, true)
			if tt.file == "" {
				os.Remove(filepath.Join(p.root, "sys/kernel/random/boot_id"))
			} else {
				p.write(t, tt.file, tt.content)
			}
			rec := do(t, p.handler(), "GET", tt.path, "")
			if rec.Code != http.StatusInternalServerError {
				t.Fatalf("status %d, want 500: %s", rec.Code, rec.Body)
			}
			e := decode[api.Error](t, rec)
			if e.Code != api.CodeInternal || !strings.Contains(e.Message, tt.want) {
				t.Errorf("error = %+v, want internal naming %q", e, tt.want)
			}
		})
	}
}

func TestHostnameErrorIsReported(t *testing.T) {
	p := newProcTree(t, true)
	h := NewHandler(Options{
		Hostname: func() (string, error) { return "", errors.New("uts broken") },
		ProcRoot: p.root, RootDir: p.rootDir, WorkDir: p.workDir,
	})
	rec := do(t, h, "GET", "/healthz", "")
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "uts broken") {
		t.Errorf("got %d %s, want 500 naming the hostname failure", rec.Code, rec.Body)
	}
}

func TestPortFromCmdline(t *testing.T) {
	tests := []struct {
		cmdline string
		port    uint32
		found   bool
		wantErr bool
	}{
		{"console=ttyS0 root=/dev/vda banger.agent_port=1024 quiet", 1024, true, false},
		{"banger.agent_port=52000", 52000, true, false},
		{"console=ttyS0 root=/dev/vda", 0, false, false},
		{"xbanger.agent_port=5 banger.agent_portx=6", 0, false, false},
		{"banger.agent_port=abc", 0, true, true},
		{"banger.agent_port=0", 0, true, true},
		{"banger.agent_port=4294967296", 0, true, true},
		{"banger.agent_port=1 banger.agent_port=2", 2, true, false}, // last wins, as for kernel params
	}
	for _, tt := range tests {
		port, found, err := PortFromCmdline(tt.cmdline)
		if port != tt.port || found != tt.found || (err != nil) != tt.wantErr {
			t.Errorf("PortFromCmdline(%q) = %d, %v, %v; want %d, %v, err=%v", tt.cmdline, port, found, err, tt.port, tt.found, tt.wantErr)
		}
	}
}

func TestFindSerialPort(t *testing.T) {
	sys := t.TempDir()
	for port, name := range map[string]string{"vport0p0": "", "vport1p1": "org.qemu.guest_agent.0", "vport1p2": "banger.agent"} {
		if err := os.MkdirAll(filepath.Join(sys, port), 0o755); err != nil {
			t.Fatal(err)
		}
		if name != "" {
			if err := os.WriteFile(filepath.Join(sys, port, "name"), []byte(name+"\n"), 0o444); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := FindSerialPort(sys, "/dev", "banger.agent")
	if err != nil || got != "/dev/vport1p2" {
		t.Errorf("FindSerialPort = %q, %v; want /dev/vport1p2", got, err)
	}
	_, err = FindSerialPort(sys, "/dev", "other")
	if err == nil || !strings.Contains(err.Error(), `vport1p2="banger.agent"`) {
		t.Errorf("missing port error = %v; want it to list the ports found", err)
	}
	_, err = FindSerialPort(filepath.Join(sys, "absent"), "/dev", "banger.agent")
	if err == nil || !strings.Contains(err.Error(), "virtio_console") {
		t.Errorf("no sysfs dir error = %v; want a hint about virtio_console", err)
	}
}
