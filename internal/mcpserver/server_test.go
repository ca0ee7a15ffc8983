package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/banger-dev/banger/internal/agent"
	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
)

// fakeDaemon answers the few vm.* calls the tools make and opens agent
// streams to a real agent handler on a Unix socket (running commands on
// this host, as the guest's agent would in the guest).
type fakeDaemon struct {
	mu     sync.Mutex
	calls  []string
	vms    []api.VM
	fail   *api.Error
	params any    // the last snapshot or restore params
	agentN string // agent socket
}

func (d *fakeDaemon) Call(_ context.Context, method string, params, result any, progress func(api.Progress)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, method)
	if d.fail != nil {
		return d.fail
	}
	switch method {
	case api.MethodVMList:
		*result.(*api.VMListResult) = api.VMListResult{VMs: d.vms}
	case api.MethodVMCreate:
		p := params.(api.VMCreateParams)
		if progress != nil {
			progress(api.Progress{Step: "provision", Message: "creating disks"})
			progress(api.Progress{Step: "wait-agent"})
		}
		vm := api.VM{Name: p.Name, State: api.VMRunning, IP: "172.30.0.9", Image: "debian", VCPUs: 2, MemoryMiB: 1024, DiskBytes: 8 << 30}
		d.vms = append(d.vms, vm)
		*result.(*api.VM) = vm
	case api.MethodVMGet:
		for _, v := range d.vms {
			if v.Name == params.(api.VMRef).Name {
				*result.(*api.VM) = v
				return nil
			}
		}
		return api.NewError(api.CodeNotFound, "no VM named "+params.(api.VMRef).Name, "banger vm list")
	case api.MethodSnapshotCreate:
		p := params.(api.SnapshotCreateParams)
		d.params = p
		*result.(*api.Snapshot) = api.Snapshot{VM: p.VM, Name: p.Name, HasMemory: !p.NoMemory, SizeBytes: 42, CreatedAt: time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)}
	case api.MethodVMRestore:
		p := params.(api.VMRestoreParams)
		d.params = p
		*result.(*api.VMRestoreResult) = api.VMRestoreResult{VM: api.VM{Name: p.VM, State: api.VMRunning}, Safety: "safety-1"}
	case api.MethodVMClone:
		p := params.(api.VMCloneParams)
		d.params = p
		*result.(*api.VM) = api.VM{Name: p.Name, State: api.VMRunning, IP: "172.30.0.10"}
	case api.MethodVMDelete:
		name := params.(api.VMDeleteParams).Name
		d.vms = slices.DeleteFunc(d.vms, func(v api.VM) bool { return v.Name == name })
	}
	return nil
}

func (d *fakeDaemon) Stream(ctx context.Context, method string, params any) (net.Conn, error) {
	if method != api.MethodVMAgentConnect {
		return nil, api.NewError(api.CodeUnknownMethod, method, "")
	}
	return (&net.Dialer{}).DialContext(ctx, "unix", d.agentN)
}

func (d *fakeDaemon) called() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

// startAgent serves the real guest agent's handler on a Unix socket.
func startAgent(t *testing.T) string {
	t.Helper()
	return startAgentWith(t, nil)
}

// startOldAgent serves an agent from before GET /v1/dir: it answers that
// path as an agent that does not know it.
func startOldAgent(t *testing.T) string {
	t.Helper()
	return startAgentWith(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == agentproto.DirPath {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprintf(w, `{"code":"not_found","message":"no agent endpoint at %q"}`, r.URL.Path)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
}

func startAgentWith(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bgmcp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	h := agent.NewHandler(agent.Options{Version: "test", WorkDir: dir})
	if wrap != nil {
		h = wrap(h)
	}
	srv := agent.NewServer(h, nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// connect runs a server with opts over an in-memory transport and returns
// a client session to it.
func connect(t *testing.T, d *fakeDaemon, opts Options, copts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	opts.Connect = func(context.Context) (Daemon, error) { return d, nil }
	srv, _ := New(opts)
	ct, st := mcp.NewInMemoryTransports()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test"}, copts).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func call(t *testing.T, cs *mcp.ClientSession, name string, args any, out any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if out != nil && !res.IsError {
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: structured content %s: %v", name, b, err)
		}
	}
	return res
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

type schema struct {
	Type       string                     `json:"type"`
	Required   []string                   `json:"required"`
	Properties map[string]json.RawMessage `json:"properties"`
}

func schemaOf(t *testing.T, s any) schema {
	t.Helper()
	b, _ := json.Marshal(s)
	var sc schema
	if err := json.Unmarshal(b, &sc); err != nil {
		t.Fatal(err)
	}
	return sc
}

// Each tool's schemas: the required inputs an agent must give, and the
// outputs it can rely on.
func TestToolSchemas(t *testing.T) {
	cs := connect(t, &fakeDaemon{}, Options{}, nil)
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ required, outputs []string }{
		"vm_list":       {nil, []string{"vms"}},
		"vm_create":     {[]string{"name"}, []string{"name", "state", "address", "image", "vcpus", "memory_mib", "disk_bytes"}},
		"vm_exec":       {[]string{"name", "command"}, []string{"exit_code", "stdout", "stderr", "stdout_bytes", "stderr_bytes", "stdout_truncated", "stderr_truncated", "output_limit_bytes", "timed_out"}},
		"vm_read_file":  {[]string{"name", "path"}, []string{"content", "encoding", "size_bytes", "truncated"}},
		"vm_write_file": {[]string{"name", "path", "content"}, []string{"path", "bytes_written"}},
		"vm_list_dir":   {[]string{"name", "path"}, []string{"entries", "truncated"}},
		"vm_stop":       {[]string{"name"}, []string{"name", "state"}},
		"vm_delete":     {[]string{"name", "confirm"}, []string{"deleted"}},
		"vm_ports":      {[]string{"name"}, []string{"forwards", "listeners"}},
		"vm_snapshot":   {[]string{"name"}, []string{"vm", "snapshot", "has_memory", "size_bytes", "created_at"}},
		"vm_restore":    {[]string{"name", "snapshot"}, []string{"vm", "safety_snapshot"}},
		"vm_clone":      {[]string{"source", "name"}, []string{"name", "state", "address"}},
	}
	got := map[string]bool{}
	for _, tool := range res.Tools {
		got[tool.Name] = true
		w, ok := want[tool.Name]
		if !ok {
			t.Errorf("unexpected tool %s", tool.Name)
			continue
		}
		if tool.Description == "" {
			t.Errorf("%s has no description", tool.Name)
		}
		in := schemaOf(t, tool.InputSchema)
		if in.Type != "object" {
			t.Errorf("%s input schema type %q", tool.Name, in.Type)
		}
		slices.Sort(in.Required)
		req := slices.Clone(w.required)
		slices.Sort(req)
		if !slices.Equal(in.Required, req) {
			t.Errorf("%s requires %v, want %v", tool.Name, in.Required, req)
		}
		for _, r := range req {
			if _, ok := in.Properties[r]; !ok {
				t.Errorf("%s: required %s is not a property", tool.Name, r)
			}
		}
		out := schemaOf(t, tool.OutputSchema)
		for _, o := range w.outputs {
			if _, ok := out.Properties[o]; !ok {
				t.Errorf("%s output schema lacks %s: %v", tool.Name, o, out.Properties)
			}
		}
		if tool.Name == "vm_delete" && (tool.Annotations == nil || tool.Annotations.DestructiveHint == nil || !*tool.Annotations.DestructiveHint) {
			t.Errorf("vm_delete is not marked destructive")
		}
	}
	for name := range want {
		if !got[name] {
			t.Errorf("tool %s missing", name)
		}
	}
	// The schema is enforced: a missing required argument is a tool error
	// and nothing reaches bangerd.
	d := &fakeDaemon{}
	cs = connect(t, d, Options{}, nil)
	if r := call(t, cs, "vm_delete", map[string]any{"name": "dev"}, nil); !r.IsError || !strings.Contains(text(r), "confirm") {
		t.Errorf("vm_delete without confirm: %v %q", r.IsError, text(r))
	}
	if r := call(t, cs, "vm_exec", map[string]any{"name": "dev", "command": 5}, nil); !r.IsError {
		t.Errorf("vm_exec with a number as command accepted")
	}
	if c := d.called(); len(c) != 0 {
		t.Errorf("invalid calls reached the daemon: %v", c)
	}
}

func TestReadOnlyExposesOnlyReadTools(t *testing.T) {
	d := &fakeDaemon{vms: []api.VM{{Name: "dev", State: api.VMRunning}}}
	cs := connect(t, d, Options{ReadOnly: true}, nil)
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if want := []string{"vm_exec", "vm_list", "vm_list_dir", "vm_ports", "vm_read_file"}; !slices.Equal(names, want) {
		t.Errorf("read-only tools %v, want %v", names, want)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "vm_delete",
		Arguments: map[string]any{"name": "dev", "confirm": "dev"}}); err == nil {
		t.Errorf("vm_delete answered in read-only mode")
	}
	if c := d.called(); len(c) != 0 {
		t.Errorf("refused calls reached the daemon: %v", c)
	}
}

func TestOnlyPrefix(t *testing.T) {
	d := &fakeDaemon{vms: []api.VM{{Name: "dev"}, {Name: "agent-a"}}}
	cs := connect(t, d, Options{OnlyPrefix: "agent-"}, nil)
	var list ListOutput
	call(t, cs, "vm_list", map[string]any{}, &list)
	if len(list.VMs) != 1 || list.VMs[0].Name != "agent-a" {
		t.Errorf("vm_list with prefix agent-: %+v", list.VMs)
	}
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"vm_delete", map[string]any{"name": "dev", "confirm": "dev", "force": true}},
		{"vm_create", map[string]any{"name": "dev2"}},
		{"vm_exec", map[string]any{"name": "dev", "command": "true"}},
		{"vm_write_file", map[string]any{"name": "dev", "path": "/x", "content": "y"}},
	} {
		r := call(t, cs, tc.tool, tc.args, nil)
		if !r.IsError || !strings.Contains(text(r), `must start with "agent-"`) {
			t.Errorf("%s on dev outside the prefix: error %v %q", tc.tool, r.IsError, text(r))
		}
	}
	if c := d.called(); !slices.Equal(c, []string{api.MethodVMList}) {
		t.Errorf("calls reached the daemon: %v", c)
	}
}

func TestDeleteNeedsConfirmation(t *testing.T) {
	d := &fakeDaemon{vms: []api.VM{{Name: "dev"}}}
	cs := connect(t, d, Options{}, nil)
	if r := call(t, cs, "vm_delete", map[string]any{"name": "dev", "confirm": "yes"}, nil); !r.IsError ||
		!strings.Contains(text(r), `pass confirm: "dev"`) {
		t.Errorf("wrong confirm: %v %q", r.IsError, text(r))
	}
	if len(d.called()) != 0 {
		t.Fatalf("an unconfirmed delete reached the daemon: %v", d.called())
	}
	var out DeleteOutput
	if r := call(t, cs, "vm_delete", map[string]any{"name": "dev", "confirm": "dev"}, &out); r.IsError || out.Deleted != "dev" {
		t.Errorf("confirmed delete: %q %+v", text(r), out)
	}
	if len(d.vms) != 0 {
		t.Errorf("dev not deleted")
	}
}

// bangerd's errors reach the agent with their message, hint and code.
func TestErrorsCarryMessageAndHint(t *testing.T) {
	d := &fakeDaemon{fail: api.NewError(api.CodeResourceExhausted, "this host allows 2 VMs (max_vms in config.toml) and has 2",
		"delete a VM (banger vm delete NAME), or raise max_vms")}
	cs := connect(t, d, Options{}, nil)
	r := call(t, cs, "vm_create", map[string]any{"name": "agent-x"}, nil)
	if !r.IsError {
		t.Fatal("not an error")
	}
	for _, want := range []string{"allows 2 VMs", "hint: delete a VM", "code: resource_exhausted"} {
		if !strings.Contains(text(r), want) {
			t.Errorf("error text %q lacks %q", text(r), want)
		}
	}
}

func TestCreateReportsProgress(t *testing.T) {
	var mu sync.Mutex
	var msgs []string
	d := &fakeDaemon{}
	cs := connect(t, d, Options{}, &mcp.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
		mu.Lock()
		msgs = append(msgs, r.Params.Message)
		mu.Unlock()
	}})
	params := &mcp.CallToolParams{Name: "vm_create", Arguments: map[string]any{"name": "agent-a", "memory_mib": 2048}}
	params.SetProgressToken("tok-1")
	res, err := cs.CallTool(context.Background(), params)
	if err != nil || res.IsError {
		t.Fatalf("%v %q", err, text(res))
	}
	var vm VMInfo
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &vm)
	if vm.Name != "agent-a" || vm.State != "running" || vm.Address != "172.30.0.9" {
		t.Errorf("created %+v", vm)
	}
	// Notifications may trail the result: wait for both.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(msgs)
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(msgs, []string{"provision: creating disks", "wait-agent"}) {
		t.Errorf("progress %q", msgs)
	}
}

func TestCappedWriter(t *testing.T) {
	c := newCapped(5)
	c.Write([]byte("abc"))
	c.Write([]byte("defgh"))
	c.Write([]byte("ij"))
	if s, n, cut := c.result(); s != "abcde" || n != 10 || !cut {
		t.Errorf("capped: %q %d %v; want abcde 10 true", s, n, cut)
	}
	c = newCapped(5)
	c.Write([]byte("abcde"))
	if s, n, cut := c.result(); s != "abcde" || n != 5 || cut {
		t.Errorf("exactly at the cap: %q %d %v", s, n, cut)
	}
	// Invalid UTF-8 is replaced, not passed into the JSON result.
	c = newCapped(10)
	c.Write([]byte{'a', 0xff, 'b'})
	if s, _, _ := c.result(); s != "a\uFFFDb" {
		t.Errorf("invalid UTF-8: %q", s)
	}
}

func TestExecLimits(t *testing.T) {
	if to, mo, err := execLimits(0, 0); err != nil || to != DefaultTimeoutSecs || mo != DefaultOutputBytes {
		t.Errorf("defaults: %d %d %v", to, mo, err)
	}
	for _, bad := range [][2]int{{-1, 0}, {MaxTimeoutSecs + 1, 0}, {0, -1}, {0, MaxOutputBytes + 1}} {
		if _, _, err := execLimits(bad[0], bad[1]); err == nil {
			t.Errorf("execLimits%v accepted", bad)
		}
	}
}

// vm_exec through the real agent handler: exit codes, stdin, env, and the
// output cap with its byte counts.
func TestExecThroughAgent(t *testing.T) {
	d := &fakeDaemon{agentN: startAgent(t), vms: []api.VM{{Name: "dev", State: api.VMRunning}}}
	cs := connect(t, d, Options{}, nil)
	var out ExecOutput
	call(t, cs, "vm_exec", map[string]any{"name": "dev", "command": "sh",
		"args": []string{"-c", "head -c 100000 /dev/zero | tr '\\0' a; echo oops >&2; exit 3"}, "max_output_bytes": 1000}, &out)
	if out.ExitCode != 3 || len(out.Stdout) != 1000 || out.StdoutBytes != 100000 || !out.StdoutTruncated ||
		out.Stderr != "oops\n" || out.StderrBytes != 5 || out.StderrTruncated || out.OutputLimitBytes != 1000 {
		t.Errorf("capped exec: exit %d, stdout %d bytes of %d (cut %v), stderr %q (%d, cut %v), limit %d",
			out.ExitCode, len(out.Stdout), out.StdoutBytes, out.StdoutTruncated, out.Stderr, out.StderrBytes, out.StderrTruncated, out.OutputLimitBytes)
	}
	out = ExecOutput{}
	call(t, cs, "vm_exec", map[string]any{"name": "dev", "command": "sh", "args": []string{"-c", "cat; echo $GREETING"},
		"stdin": "from stdin\n", "env": map[string]string{"GREETING": "hello"}}, &out)
	if out.ExitCode != 0 || out.Stdout != "from stdin\nhello\n" || out.OutputLimitBytes != DefaultOutputBytes {
		t.Errorf("stdin and env: %+v", out)
	}
	out = ExecOutput{}
	call(t, cs, "vm_exec", map[string]any{"name": "dev", "command": "no-such-command-here"}, &out)
	if out.ExitCode != 127 || out.Stderr == "" {
		t.Errorf("missing command: %+v", out)
	}
	out = ExecOutput{}
	call(t, cs, "vm_exec", map[string]any{"name": "dev", "command": "sleep", "args": []string{"30"}, "timeout_seconds": 1}, &out)
	if out.ExitCode != 124 || !out.TimedOut {
		t.Errorf("timeout: %+v", out)
	}
}

func TestFilesThroughAgent(t *testing.T) {
	d := &fakeDaemon{agentN: startAgent(t), vms: []api.VM{{Name: "dev", State: api.VMRunning}}}
	cs := connect(t, d, Options{}, nil)
	dir := t.TempDir()
	p := filepath.Join(dir, "notes.txt")
	var w WriteFileOutput
	if r := call(t, cs, "vm_write_file", map[string]any{"name": "dev", "path": p, "content": "héllo\n", "mode": "0600"}, &w); r.IsError {
		t.Fatal(text(r))
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "héllo\n" || w.BytesWritten != 7 {
		t.Fatalf("written %q %v, reported %d bytes", b, err, w.BytesWritten)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	var r ReadFileOutput
	call(t, cs, "vm_read_file", map[string]any{"name": "dev", "path": p}, &r)
	if r.Content != "héllo\n" || r.Encoding != "utf-8" || r.SizeBytes != 7 || r.Truncated {
		t.Errorf("read back %+v", r)
	}
	// Cut inside é: the partial rune is dropped, the rest stays text.
	call(t, cs, "vm_read_file", map[string]any{"name": "dev", "path": p, "max_bytes": 2}, &r)
	if r.Content != "h" || r.Encoding != "utf-8" || !r.Truncated || r.SizeBytes != 7 {
		t.Errorf("cut read %+v", r)
	}
	os.WriteFile(filepath.Join(dir, "bin"), []byte{0, 1, 0xfe, 0xff}, 0o644)
	call(t, cs, "vm_read_file", map[string]any{"name": "dev", "path": filepath.Join(dir, "bin")}, &r)
	if r.Encoding != "base64" || r.Content != "AAH+/w==" {
		t.Errorf("binary read %+v", r)
	}
	if res := call(t, cs, "vm_read_file", map[string]any{"name": "dev", "path": dir}, nil); !res.IsError {
		t.Errorf("reading a directory succeeded")
	}
	checkListDir(t, cs, dir)
}

// vm_list_dir against an agent from before GET /v1/dir runs find instead,
// with the same answers.
func TestListDirWithAnOldAgent(t *testing.T) {
	if _, err := exec.LookPath("find"); err != nil {
		t.Skip("needs GNU find")
	}
	d := &fakeDaemon{agentN: startOldAgent(t), vms: []api.VM{{Name: "dev", State: api.VMRunning}}}
	cs := connect(t, d, Options{}, nil)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("héllo\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "bin"), []byte{0, 1, 0xfe, 0xff}, 0o644)
	checkListDir(t, cs, dir)
}

// checkListDir lists dir, which holds notes.txt (0600) and bin (0644),
// after adding a directory and a symlink.
func checkListDir(t *testing.T, cs *mcp.ClientSession, dir string) {
	t.Helper()
	os.Mkdir(filepath.Join(dir, "sub dir"), 0o755)
	os.Symlink("notes.txt", filepath.Join(dir, "link"))
	var l ListDirOutput
	call(t, cs, "vm_list_dir", map[string]any{"name": "dev", "path": dir}, &l)
	got := map[string]string{}
	for _, e := range l.Entries {
		got[e.Name] = e.Type + " " + e.Mode
	}
	want := map[string]string{"bin": "file 0644", "link": "symlink 0777", "notes.txt": "file 0600", "sub dir": "dir 0755"}
	if !maps.Equal(got, want) || l.Truncated {
		t.Errorf("listing %v, want %v", got, want)
	}
	call(t, cs, "vm_list_dir", map[string]any{"name": "dev", "path": dir, "max_entries": 2}, &l)
	if len(l.Entries) != 2 || !l.Truncated || l.Entries[0].Name != "bin" {
		t.Errorf("capped listing %+v", l)
	}
	if res := call(t, cs, "vm_list_dir", map[string]any{"name": "dev", "path": filepath.Join(dir, "missing")}, nil); !res.IsError {
		t.Errorf("listing a missing directory succeeded")
	}
}

func TestSnapshotAndRestore(t *testing.T) {
	d := &fakeDaemon{}
	cs := connect(t, d, Options{OnlyPrefix: "agent-"}, nil)
	var snap SnapshotOutput
	if r := call(t, cs, "vm_snapshot", map[string]any{"name": "agent-a", "snapshot": "before-upgrade", "no_memory": true}, &snap); r.IsError {
		t.Fatal(text(r))
	}
	if p := d.params.(api.SnapshotCreateParams); p.VM != "agent-a" || p.Name != "before-upgrade" || !p.NoMemory {
		t.Errorf("snapshot params %+v", p)
	}
	if snap.Snapshot != "before-upgrade" || snap.HasMemory || snap.SizeBytes != 42 || snap.CreatedAt != "2026-12-04T18:00:00Z" {
		t.Errorf("snapshot result %+v", snap)
	}
	var res RestoreOutput
	if r := call(t, cs, "vm_restore", map[string]any{"name": "agent-a", "snapshot": "before-upgrade"}, &res); r.IsError {
		t.Fatal(text(r))
	}
	if p := d.params.(api.VMRestoreParams); p.VM != "agent-a" || p.Snapshot != "before-upgrade" || p.NoSafety {
		t.Errorf("restore params %+v (the safety snapshot must stay on)", p)
	}
	if res.VM.State != "running" || res.SafetySnapshot != "safety-1" {
		t.Errorf("restore result %+v", res)
	}
	for _, tool := range []string{"vm_snapshot", "vm_restore"} {
		if r := call(t, cs, tool, map[string]any{"name": "dev", "snapshot": "x"}, nil); !r.IsError {
			t.Errorf("%s outside the prefix accepted", tool)
		}
	}
}

func TestClone(t *testing.T) {
	d := &fakeDaemon{}
	cs := connect(t, d, Options{OnlyPrefix: "agent-"}, nil)
	var vm VMInfo
	if r := call(t, cs, "vm_clone", map[string]any{"source": "agent-a", "name": "agent-b", "snapshot": "s1"}, &vm); r.IsError {
		t.Fatal(text(r))
	}
	if p := d.params.(api.VMCloneParams); p.Source != "agent-a" || p.Name != "agent-b" || p.Snapshot != "s1" {
		t.Errorf("clone params %+v", p)
	}
	if vm.Name != "agent-b" || vm.State != "running" || vm.Address != "172.30.0.10" {
		t.Errorf("clone result %+v", vm)
	}
	// Both names must be inside the prefix.
	for _, args := range []map[string]any{{"source": "dev", "name": "agent-b"}, {"source": "agent-a", "name": "dev"}} {
		if r := call(t, cs, "vm_clone", args, nil); !r.IsError || !strings.Contains(text(r), `must start with "agent-"`) {
			t.Errorf("vm_clone %v outside the prefix: %v %q", args, r.IsError, text(r))
		}
	}
}
