package fccontract_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/testneed"
	"github.com/banger-dev/banger/internal/vmm"
	"github.com/banger-dev/banger/internal/vmm/fccontract"
	"github.com/banger-dev/banger/internal/vmm/fcfake"
	"github.com/banger-dev/banger/internal/vmm/firecracker"
)

var fakeBin string

func TestMain(m *testing.M) { fcfake.TestMainWithBinary(m, &fakeBin) }

func loadSpec(t *testing.T) *fccontract.Spec {
	t.Helper()
	path, err := fccontract.Find()
	if errors.Is(err, fccontract.ErrSpecAbsent) {
		testneed.Skip(t, "the Firecracker contract test needs the v1.16.1 API spec: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	spec, err := fccontract.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Version != "1.16.1" {
		t.Fatalf("spec version %s, want 1.16.1", spec.Version)
	}
	return spec
}

type recorded struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Body   json.RawMessage `json:"body"`
}

func newSpec(t *testing.T) vmm.Spec {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"vmlinux", "initrd.img", "rootfs.ext4", "work.ext4", "work2.ext4", "metrics.json", "fc.log"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return vmm.Spec{
		VMID: "1a2b3c4d", Name: "dev", VCPUs: 2, MemoryMiB: 1024,
		KernelPath: filepath.Join(dir, "vmlinux"), InitrdPath: filepath.Join(dir, "initrd.img"),
		BootArgs:   "ip=172.30.0.2::172.30.0.1:255.255.255.0:dev:eth0:off:172.30.0.1 banger.agent_port=1024",
		RootfsPath: filepath.Join(dir, "rootfs.ext4"), RootfsFormat: "raw", WorkDiskPath: filepath.Join(dir, "work.ext4"),
		TapName: "bg-1a2b3c4d", MAC: "06:00:ac:1e:00:02",
		APISocket: filepath.Join(dir, "api.sock"), AgentSocket: filepath.Join(dir, "v.sock"), VsockCID: 3,
		ConsoleLog: filepath.Join(dir, "console.log"), VMMLog: filepath.Join(dir, "vmm.log"),
	}
}

// TestDriverRequestsMatchSpec records every request the driver (boot and
// stop) and the client's other calls send to the fake binary, and validates
// each body against the v1.16.1 spec.
func TestDriverRequestsMatchSpec(t *testing.T) {
	spec := loadSpec(t)
	rec := filepath.Join(t.TempDir(), "requests.jsonl")
	t.Setenv("FAKE_FC_RECORD", rec)
	t.Setenv("FAKE_FC_SKIP_TAP_CHECK", "1") // the tap is not the point here

	ctx := context.Background()
	vs := newSpec(t)
	d := firecracker.New(firecracker.Options{Binary: fakeBin})
	h, err := d.Start(ctx, vs)
	if err != nil {
		t.Fatal(err)
	}
	c := firecracker.NewClient(h.APISocket)
	dir := filepath.Dir(vs.KernelPath)
	burst := int64(1 << 20)
	calls := []struct {
		name string
		do   func() error
	}{
		{"GET /", func() error { _, err := c.GetInstanceInfo(ctx); return err }},
		{"GET /vm/config", func() error { _, err := c.GetVMConfig(ctx); return err }},
		{"PATCH /drives/work", func() error {
			return c.PatchDrive(ctx, firecracker.PartialDrive{DriveID: "work", PathOnHost: filepath.Join(dir, "work2.ext4"),
				RateLimiter: &firecracker.RateLimiter{Bandwidth: &firecracker.TokenBucket{Size: 1 << 20, OneTimeBurst: &burst, RefillTime: 1000}}})
		}},
		{"PATCH /vm Paused", func() error { return c.PatchVM(ctx, firecracker.VMPaused) }},
		{"PATCH /vm Resumed", func() error { return c.PatchVM(ctx, firecracker.VMResumed) }},
	}
	for _, call := range calls {
		if err := call.do(); err != nil {
			t.Errorf("%s: %v", call.name, err)
		}
	}
	// Snapshot and restore as a clone (other disks, tap and sockets): the
	// driver's PATCH /vm, /snapshot/create, /snapshot/load and drive switch.
	snapDir := t.TempDir()
	if err := d.Pause(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveState(ctx, h, snapDir); err != nil {
		t.Fatal(err)
	}
	clone := newSpec(t)
	clone.VMID, clone.TapName = "5e6f7a8b", "bg-5e6f7a8b"
	ch, err := d.Restore(ctx, clone, snapDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx, ch, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx, h, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	// The pre-boot-only observability calls, on a second instance.
	vs2 := newSpec(t)
	sock := vs2.APISocket
	proc, err := sysexec.Start(sysexec.Cmd{Argv: []string{fakeBin, "--api-sock", sock, "--id", "obs"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { proc.Process.Kill(); proc.Wait() }()
	c2 := firecracker.NewClient(sock)
	waitUp(t, c2)
	yes := true
	dir2 := filepath.Dir(vs2.KernelPath)
	for name, do := range map[string]func() error{
		"PUT /logger": func() error {
			return c2.PutLogger(ctx, firecracker.Logger{LogPath: filepath.Join(dir2, "fc.log"), Level: "Info", ShowLevel: &yes})
		},
		"PUT /metrics": func() error {
			return c2.PutMetrics(ctx, firecracker.Metrics{MetricsPath: filepath.Join(dir2, "metrics.json")})
		},
	} {
		if err := do(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := c2.PutBootSource(ctx, firecracker.BootSource{KernelImagePath: vs2.KernelPath}); err != nil {
		t.Fatal(err)
	}
	if err := c2.PutAction(ctx, firecracker.ActionInstanceStart); err != nil {
		t.Fatal(err)
	}
	if err := c2.PutAction(ctx, firecracker.ActionFlushMetrics); err != nil {
		t.Errorf("FlushMetrics: %v", err)
	}

	data, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var r recorded
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("record line %q: %v", sc.Text(), err)
		}
		call := r.Method + " " + r.Path
		if r.Path == "/actions" || r.Path == "/vm" {
			var a map[string]string
			json.Unmarshal(r.Body, &a)
			call += " " + a["action_type"] + a["state"]
		}
		seen[call] = true
		if err := spec.ValidateRequest(r.Method, r.Path, r.Body); err != nil {
			t.Errorf("request does not match the spec: %v\n  body: %s", err, r.Body)
		}
	}
	want := []string{
		"PUT /machine-config", "PUT /serial", "PUT /boot-source", "PUT /drives/rootfs", "PUT /drives/work",
		"PUT /network-interfaces/eth0", "PUT /vsock", "PUT /actions InstanceStart", "PUT /actions SendCtrlAltDel",
		"PUT /actions FlushMetrics", "GET /", "GET /vm/config", "PATCH /drives/work", "PATCH /vm Paused",
		"PATCH /vm Resumed", "PUT /logger", "PUT /metrics", "PUT /snapshot/create", "PUT /snapshot/load",
		"PATCH /drives/rootfs",
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("no %s recorded (seen: %v)", w, keys(seen))
		}
	}
}

func waitUp(t *testing.T, c *firecracker.Client) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.GetInstanceInfo(context.Background()); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("fake never came up: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestDriverTypesUseSpecFieldNames checks every JSON field of the driver's
// request and response types, sent at boot or not, exists in its spec
// definition.
func TestDriverTypesUseSpecFieldNames(t *testing.T) {
	spec := loadSpec(t)
	for def, v := range map[string]any{
		"MachineConfiguration": firecracker.MachineConfig{},
		"BootSource":           firecracker.BootSource{},
		"Drive":                firecracker.Drive{},
		"PartialDrive":         firecracker.PartialDrive{},
		"NetworkInterface":     firecracker.NetworkInterface{},
		"Vsock":                firecracker.Vsock{},
		"Logger":               firecracker.Logger{},
		"Metrics":              firecracker.Metrics{},
		"SerialDevice":         firecracker.Serial{},
		"InstanceActionInfo":   firecracker.InstanceActionInfo{},
		"Vm":                   firecracker.VMState{},
		"InstanceInfo":         firecracker.InstanceInfo{},
		"RateLimiter":          firecracker.RateLimiter{},
		"TokenBucket":          firecracker.TokenBucket{},
		"FullVmConfiguration":  firecracker.FullVMConfig{},
		"SnapshotCreateParams": firecracker.SnapshotCreateParams{},
		"SnapshotLoadParams":   firecracker.SnapshotLoadParams{},
		"MemoryBackend":        firecracker.MemoryBackend{},
		"NetworkOverride":      firecracker.NetworkOverride{},
		"VsockOverride":        firecracker.VsockOverride{},
	} {
		props, err := spec.Properties(def)
		if err != nil {
			t.Fatal(err)
		}
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if !props[name] {
				t.Errorf("%s.%s: JSON field %q is not a property of %s", typ.Name(), typ.Field(i).Name, name, def)
			}
		}
	}
	// The actions and states the driver uses are the spec's enums.
	for _, c := range []struct{ def, prop, v string }{
		{"InstanceActionInfo", "action_type", firecracker.ActionInstanceStart},
		{"InstanceActionInfo", "action_type", firecracker.ActionSendCtrlAltDel},
		{"InstanceActionInfo", "action_type", firecracker.ActionFlushMetrics},
		{"Vm", "state", firecracker.VMPaused},
		{"Vm", "state", firecracker.VMResumed},
		{"InstanceInfo", "state", firecracker.StateNotStarted},
		{"InstanceInfo", "state", firecracker.StateRunning},
		{"InstanceInfo", "state", firecracker.StatePaused},
		{"SnapshotCreateParams", "snapshot_type", firecracker.SnapshotFull},
		{"SnapshotCreateParams", "snapshot_type", firecracker.SnapshotDiff},
		{"MemoryBackend", "backend_type", firecracker.MemBackendFile},
		{"MemoryBackend", "backend_type", firecracker.MemBackendUffd},
	} {
		if !contains(spec.Definitions[c.def].Properties[c.prop].Enum, c.v) {
			t.Errorf("%s.%s: %q not in the spec's enum", c.def, c.prop, c.v)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestFakeResponsesMatchSpec validates the fake's answers (GET bodies,
// 204s, 400 faults) against the spec's response schemas.
func TestFakeResponsesMatchSpec(t *testing.T) {
	spec := loadSpec(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vmlinux", "rootfs.ext4"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o600)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fcfake.Serve(ctx, l, fcfake.Options{ID: "resp", SkipTapCheck: true}) }()
	defer func() { cancel(); <-done }()

	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	snapBody := `{"snapshot_path":"` + filepath.Join(dir, "vmstate") + `","mem_file_path":"` + filepath.Join(dir, "memory") + `"}`
	steps := []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/", "", 200},
		{"GET", "/vm/config", "", 200},
		{"GET", "/machine-config", "", 200},
		{"GET", "/version", "", 200},
		{"PUT", "/snapshot/load", `{"snapshot_path":"/s"}`, 400},
		{"PUT", "/snapshot/create", snapBody, 400},
		{"PUT", "/machine-config", `{"vcpu_count":2,"mem_size_mib":256}`, 204},
		{"PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"File","backend_path":"/m"}}`, 400},
		{"PUT", "/boot-source", `{"kernel_image_path":"` + filepath.Join(dir, "vmlinux") + `","boot_args":"console=ttyS0"}`, 204},
		{"PUT", "/drives/rootfs", `{"drive_id":"rootfs","is_root_device":true,"path_on_host":"` + filepath.Join(dir, "rootfs.ext4") + `"}`, 204},
		{"PUT", "/network-interfaces/eth0", `{"iface_id":"eth0","host_dev_name":"bg-1a2b3c4d","guest_mac":"06:00:ac:1e:00:02"}`, 204},
		{"PUT", "/vsock", `{"guest_cid":3,"uds_path":"` + filepath.Join(dir, "v.sock") + `"}`, 204},
		{"GET", "/vm/config", "", 200},
		{"PUT", "/drives/rootfs", `{"drive_id":"rootfs","is_root_device":true,"bogus":1}`, 400},
		{"GET", "/nope", "", 400},
		{"PATCH", "/vm", `{"state":"Paused"}`, 400},
		{"PUT", "/actions", `{"action_type":"InstanceStart"}`, 204},
		{"GET", "/", "", 200},
		{"GET", "/vm/config", "", 200},
		{"PUT", "/boot-source", `{"kernel_image_path":"/x"}`, 400},
		{"PUT", "/snapshot/create", snapBody, 400}, // running
		{"PATCH", "/vm", `{"state":"Paused"}`, 204},
		{"PUT", "/snapshot/create", `{"snapshot_type":"Diff","snapshot_path":"/s","mem_file_path":"/m"}`, 400},
		{"PUT", "/snapshot/create", snapBody, 204},
		{"PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"File","backend_path":"/m"}}`, 400},
		{"PATCH", "/vm", `{"state":"Resumed"}`, 204},
	}
	for _, s := range steps {
		var body io.Reader
		if s.body != "" {
			body = strings.NewReader(s.body)
		}
		req, _ := http.NewRequest(s.method, "http://localhost"+s.path, body)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != s.status {
			t.Errorf("%s %s: status %d, want %d (%s)", s.method, s.path, resp.StatusCode, s.status, data)
			continue
		}
		if s.path == "/nope" {
			// Unknown routes are not in the spec; the body is still an Error.
			if err := spec.ValidateDefinition("Error", data); err != nil || !strings.Contains(string(data), "fault_message") {
				t.Errorf("unknown route answer %s: %v", data, err)
			}
			continue
		}
		if err := spec.ValidateResponse(s.method, s.path, resp.StatusCode, data); err != nil {
			t.Errorf("response does not match the spec: %v\n  body: %s", err, data)
		}
	}
}

// TestConfigExampleParsesIntoDriverTypes decodes Firecracker's own
// --config-file example strictly into the driver's types: every section the
// driver configures must parse without unknown fields, the others must be
// empty (banger does not configure them).
func TestConfigExampleParsesIntoDriverTypes(t *testing.T) {
	spec := loadSpec(t)
	path, _ := fccontract.Find()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(path), "vm_config-example.json"))
	if errors.Is(err, os.ErrNotExist) {
		testneed.Skip(t, "vm_config-example.json absent beside the spec: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.ValidateDefinition("FullVmConfiguration", data); err != nil {
		t.Errorf("the example does not match the spec's FullVmConfiguration: %v", err)
	}
	var sections map[string]json.RawMessage
	if err := json.Unmarshal(data, &sections); err != nil {
		t.Fatal(err)
	}
	targets := map[string]any{
		"boot-source":        &firecracker.BootSource{},
		"drives":             &[]firecracker.Drive{},
		"machine-config":     &firecracker.MachineConfig{},
		"network-interfaces": &[]firecracker.NetworkInterface{},
		"vsock":              &firecracker.Vsock{},
		"logger":             &firecracker.Logger{},
		"metrics":            &firecracker.Metrics{},
	}
	for key, raw := range sections {
		target, ok := targets[key]
		if !ok {
			if s := string(bytes.TrimSpace(raw)); s != "null" && s != "[]" {
				t.Errorf("section %q is set in the example (%s) but the driver has no type for it", key, s)
			}
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(target); err != nil {
			t.Errorf("section %q does not decode into %T: %v", key, target, err)
		}
	}
	var mc firecracker.MachineConfig
	json.Unmarshal(sections["machine-config"], &mc)
	var drives []firecracker.Drive
	json.Unmarshal(sections["drives"], &drives)
	if mc.VCPUCount != 2 || mc.MemSizeMib != 1024 || len(drives) != 1 || drives[0].DriveID != "rootfs" || !drives[0].IsRootDevice {
		t.Errorf("decoded example: machine %+v drives %+v", mc, drives)
	}
}

// TestValidatorCatchesViolations proves the validator fails on each kind of
// violation it claims to check.
func TestValidatorCatchesViolations(t *testing.T) {
	spec := loadSpec(t)
	for _, c := range []struct {
		method, path, body, want string
	}{
		{"PUT", "/machine-config", `{"vcpu_count":2,"mem_size_mib":128}`, ""},
		{"PUT", "/machine-config", `{"vcpu_count":2}`, `required property "mem_size_mib"`},
		{"PUT", "/machine-config", `{"vcpu_count":2,"mem_size_mib":128,"vcpus":2}`, `unknown property "vcpus"`},
		{"PUT", "/machine-config", `{"vcpu_count":"2","mem_size_mib":128}`, "want integer"},
		{"PUT", "/machine-config", `{"vcpu_count":1.5,"mem_size_mib":128}`, "want integer"},
		{"PUT", "/machine-config", `{"vcpu_count":0,"mem_size_mib":128}`, "below minimum"},
		{"PUT", "/machine-config", `{"vcpu_count":33,"mem_size_mib":128}`, "above maximum"},
		{"PUT", "/machine-config", `{"vcpu_count":2,"mem_size_mib":128,"smt":"yes"}`, "want boolean"},
		{"PUT", "/actions", `{"action_type":"Reboot"}`, "not one of"},
		{"PUT", "/drives/rootfs", `{"drive_id":"rootfs","is_root_device":true,"cache_type":"None"}`, "not one of"},
		{"PUT", "/drives/rootfs", `{"drive_id":"rootfs","is_root_device":true,"rate_limiter":{"bandwidth":{"size":1}}}`, `required property "refill_time"`},
		{"PUT", "/drives/rootfs", `{"drive_id":"rootfs","is_root_device":true,"rate_limiter":{"bandwidth":{"size":-1,"refill_time":1}}}`, "below minimum"},
		{"PUT", "/vsock", `{"guest_cid":2,"uds_path":"/x"}`, "below minimum"},
		{"PUT", "/boot-source", `[]`, "want object"},
		{"PUT", "/boot-source", ``, "body required"},
		{"PUT", "/nosuch", `{}`, "no such path"},
		{"DELETE", "/drives/rootfs", ``, "no DELETE"},
		{"GET", "/", `{}`, "takes no body"},
		{"PUT", "/snapshot/create", `{"snapshot_type":"Full","snapshot_path":"/s","mem_file_path":"/m"}`, ""},
		{"PUT", "/snapshot/create", `{"snapshot_path":"/s"}`, `required property "mem_file_path"`},
		{"PUT", "/snapshot/create", `{"snapshot_type":"Incremental","snapshot_path":"/s","mem_file_path":"/m"}`, "not one of"},
		{"PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"File","backend_path":"/m"},"resume_vm":true,` +
			`"network_overrides":[{"iface_id":"eth0","host_dev_name":"tap1"}],"vsock_override":{"uds_path":"/v"},"clock_realtime":true,"track_dirty_pages":true}`, ""},
		{"PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"File"}}`, `required property "backend_path"`},
		{"PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"Disk","backend_path":"/m"}}`, "not one of"},
		{"PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_file_path":"/m","network_overrides":[{"iface_id":"eth0"}]}`, `required property "host_dev_name"`},
		{"PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_file_path":"/m","vsock_override":{}}`, `required property "uds_path"`},
		{"PUT", "/snapshot/load", `{"mem_file_path":"/m"}`, `required property "snapshot_path"`},
		{"PUT", "/snapshot/load", `{"snapshot_path":"/s","mem_file_path":"/m","resume":true}`, `unknown property "resume"`},
	} {
		err := spec.ValidateRequest(c.method, c.path, []byte(c.body))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s %s %s: unexpected %v", c.method, c.path, c.body, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s %s %s: err %v, want %q", c.method, c.path, c.body, err, c.want)
		}
	}
	if err := spec.ValidateResponse("GET", "/", 200, []byte(`{"id":"x","state":"Booting","vmm_version":"1","app_name":"Firecracker"}`)); err == nil {
		t.Error("an InstanceInfo state outside the enum passed")
	}
	if err := spec.ValidateResponse("PUT", "/actions", 204, []byte(`{"x":1}`)); err == nil {
		t.Error("a 204 with a body passed")
	}
}

// TestFakeSnapshotCallsRejectWhatTheSpecRejects sends snapshot bodies that
// break the spec to a fresh fake (load) and to a paused one (create): each
// must be refused with a 400 Error, as an argument error that does not end
// the process. The exactly-one memory rule, which the spec states only in
// prose, is held to the same standard.
func TestFakeSnapshotCallsRejectWhatTheSpecRejects(t *testing.T) {
	spec := loadSpec(t)
	dir := t.TempDir()
	for _, f := range []string{"vmlinux", "rootfs.ext4"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o600)
	}
	serve := func(name string) *http.Client {
		sock := filepath.Join(dir, name+".sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- fcfake.Serve(ctx, l, fcfake.Options{ID: name}) }()
		t.Cleanup(func() { cancel(); <-done })
		return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	}
	send := func(hc *http.Client, method, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://localhost"+path, strings.NewReader(body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s %s: %v", method, path, body, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}
	fresh := serve("fresh")
	paused := serve("paused")
	for _, step := range []struct{ method, path, body string }{
		{"PUT", "/boot-source", `{"kernel_image_path":"` + filepath.Join(dir, "vmlinux") + `"}`},
		{"PUT", "/drives/rootfs", `{"drive_id":"rootfs","is_root_device":true,"path_on_host":"` + filepath.Join(dir, "rootfs.ext4") + `"}`},
		{"PUT", "/actions", `{"action_type":"InstanceStart"}`},
		{"PATCH", "/vm", `{"state":"Paused"}`},
	} {
		if code, data := send(paused, step.method, step.path, step.body); code != 204 {
			t.Fatalf("%s %s: %d %s", step.method, step.path, code, data)
		}
	}
	cases := []struct {
		path, body  string
		specInvalid bool
	}{
		{"/snapshot/create", `{"snapshot_path":"/s"}`, true},
		{"/snapshot/create", `{"mem_file_path":"/m"}`, true},
		{"/snapshot/create", `{"snapshot_type":"Incremental","snapshot_path":"/s","mem_file_path":"/m"}`, true},
		{"/snapshot/create", `{"snapshot_path":"/s","mem_file_path":"/m","version":"1.10.0"}`, true},
		{"/snapshot/create", `{"snapshot_path":1,"mem_file_path":"/m"}`, true},
		{"/snapshot/load", `{"mem_backend":{"backend_type":"File","backend_path":"/m"}}`, true},
		{"/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"File"}}`, true},
		{"/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_path":"/m"}}`, true},
		{"/snapshot/load", `{"snapshot_path":"/s","mem_backend":{"backend_type":"Disk","backend_path":"/m"}}`, true},
		{"/snapshot/load", `{"snapshot_path":"/s","mem_file_path":"/m","network_overrides":[{"iface_id":"eth0"}]}`, true},
		{"/snapshot/load", `{"snapshot_path":"/s","mem_file_path":"/m","network_overrides":{"iface_id":"eth0"}}`, true},
		{"/snapshot/load", `{"snapshot_path":"/s","mem_file_path":"/m","vsock_override":{}}`, true},
		{"/snapshot/load", `{"snapshot_path":"/s","mem_file_path":"/m","resume_vm":"yes"}`, true},
		{"/snapshot/load", `{"snapshot_path":"/s","mem_file_path":"/m","resume":true}`, true},
		// Valid for the schema, refused by the prose rule: exactly one of
		// mem_backend and mem_file_path.
		{"/snapshot/load", `{"snapshot_path":"/s"}`, false},
		{"/snapshot/load", `{"snapshot_path":"/s","mem_file_path":"/m","mem_backend":{"backend_type":"File","backend_path":"/m"}}`, false},
	}
	for _, c := range cases {
		err := spec.ValidateRequest("PUT", c.path, []byte(c.body))
		if (err != nil) != c.specInvalid {
			t.Errorf("spec verdict on %s %s: %v, want invalid=%v", c.path, c.body, err, c.specInvalid)
		}
		hc := fresh
		if c.path == "/snapshot/create" {
			hc = paused
		}
		code, data := send(hc, "PUT", c.path, c.body)
		if code != 400 {
			t.Errorf("fake accepted %s %s: %d %s", c.path, c.body, code, data)
			continue
		}
		if err := spec.ValidateResponse("PUT", c.path, code, data); err != nil {
			t.Errorf("%s %s: answer %s does not match the spec: %v", c.path, c.body, data, err)
		}
	}
	// Argument errors leave both processes serving, as Firecracker does.
	for _, hc := range []*http.Client{fresh, paused} {
		if code, data := send(hc, "GET", "/", ""); code != 200 {
			t.Fatalf("GET / after refused snapshot calls: %d %s", code, data)
		}
	}
	if _, data := send(paused, "GET", "/", ""); !strings.Contains(string(data), `"state":"Paused"`) {
		t.Errorf("paused instance: %s", data)
	}
}
