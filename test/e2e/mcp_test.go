package e2e

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/banger-dev/banger/internal/e2etest"
	"github.com/banger-dev/banger/internal/mcpserver"
)

// mcpSession runs `banger mcp ARGS...` as a subprocess in the test's
// namespace and connects the go-sdk's MCP client to its stdin/stdout.
func mcpSession(t *testing.T, env *e2etest.Env, ctx context.Context, copts *mcp.ClientOptions, args ...string) *mcp.ClientSession {
	t.Helper()
	inR, inW := io.Pipe()   // client -> server's stdin
	outR, outW := io.Pipe() // server's stdout -> client
	exited := make(chan string, 1)
	go func() {
		stderr, code := env.BangerIO(ctx, inR, outW, append([]string{"mcp"}, args...)...)
		outW.Close()
		exited <- stderr
		if code != 0 && ctx.Err() == nil {
			t.Logf("banger mcp %v: exit %d: %s", args, code, stderr)
		}
	}()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e"}, copts).Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatalf("connect to banger mcp %v: %v", args, err)
	}
	t.Cleanup(func() {
		cs.Close()
		inW.Close()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("banger mcp %v did not exit when its stdin closed", args)
		}
	})
	return cs
}

// callTool calls a tool and decodes its structured result into out; it
// returns the result's text and whether it is a tool error.
func callTool(t *testing.T, ctx context.Context, cs *mcp.ClientSession, name string, args map[string]any, out any) (string, bool) {
	t.Helper()
	params := &mcp.CallToolParams{Name: name, Arguments: args}
	params.SetProgressToken(name)
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	if out != nil && !res.IsError {
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: structured content %s: %v", name, b, err)
		}
	}
	return text.String(), res.IsError
}

// TestMCPServer is issue 18's proof: `banger mcp` driven by the go-sdk's
// client over stdio against a real guest (QEMU): create (with progress),
// exec, write then read a file, list a directory, clone; the daemon's memory
// limit refuses an oversized VM; --read-only and --only-prefix refuse a
// delete and leave the VM as it was; then the delete.
func TestMCPServer(t *testing.T) {
	env := e2etest.New(t, e2etest.Options{Subnet: "172.30.94.0/24", Bridge: "bangermcp",
		Config: "nat = false\nmax_vm_memory_mib = 1024\n"})
	mcpScenario(t, env, "/root", true)
}

// TestMCPServerOverFakeFirecracker runs the same scenario through the
// Firecracker path (fake-firecracker, a real banger-agent on this host as
// the "guest"): no guest boots, so it needs no guest lock.
func TestMCPServerOverFakeFirecracker(t *testing.T) {
	env := newAgentFCEnv(t, "172.30.95.0/24", "bangermcpfc")
	if err := os.WriteFile(filepath.Join(env.Root, "config", "config.toml"),
		append(mustRead(t, filepath.Join(env.Root, "config", "config.toml")), "max_vm_memory_mib = 1024\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	env.MustBanger("daemon", "stop") // the next command starts one that reads the limit
	dir := filepath.Join(env.Root, "guest-files")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mcpScenario(t, env, dir, false)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mcpScenario drives one VM through banger mcp; dir is a writable
// directory in the guest. withClone also forks it with vm_clone (QEMU
// only: fake-firecracker does not save state).
func mcpScenario(t *testing.T, env *e2etest.Env, dir string, withClone bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var progressSeen atomic.Int32
	cs := mcpSession(t, env, ctx, &mcp.ClientOptions{ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) {
		progressSeen.Add(1)
	}})

	var vm mcpserver.VMInfo
	if text, isErr := callTool(t, ctx, cs, "vm_create", map[string]any{"name": "agent-dev"}, &vm); isErr {
		t.Fatalf("vm_create: %s", text)
	}
	if vm.Name != "agent-dev" || vm.State != "running" || vm.Address == "" {
		t.Fatalf("vm_create returned %+v; want agent-dev running with an address", vm)
	}
	if progressSeen.Load() == 0 {
		t.Errorf("vm_create sent no progress notifications")
	}

	t.Run("exec", func(t *testing.T) {
		var out mcpserver.ExecOutput
		callTool(t, ctx, cs, "vm_exec", map[string]any{"name": "agent-dev", "command": "uname", "args": []string{"-s"}}, &out)
		if out.ExitCode != 0 || out.Stdout != "Linux\n" || out.StdoutBytes != 6 || out.StdoutTruncated {
			t.Errorf("uname -s: %+v", out)
		}
		out = mcpserver.ExecOutput{}
		callTool(t, ctx, cs, "vm_exec", map[string]any{"name": "agent-dev", "command": "sh",
			"args": []string{"-c", "echo failing >&2; exit 3"}}, &out)
		if out.ExitCode != 3 || out.Stderr != "failing\n" {
			t.Errorf("failing command: %+v", out)
		}
		out = mcpserver.ExecOutput{}
		callTool(t, ctx, cs, "vm_exec", map[string]any{"name": "agent-dev", "command": "seq", "args": []string{"100000"},
			"max_output_bytes": 100}, &out)
		if out.ExitCode != 0 || len(out.Stdout) != 100 || out.StdoutBytes != 588895 || !out.StdoutTruncated {
			t.Errorf("capped seq 100000: exit %d, %d bytes of %d, truncated %v", out.ExitCode, len(out.Stdout), out.StdoutBytes, out.StdoutTruncated)
		}
	})

	t.Run("files", func(t *testing.T) {
		var w struct {
			BytesWritten int64 `json:"bytes_written"`
		}
		if text, isErr := callTool(t, ctx, cs, "vm_write_file", map[string]any{"name": "agent-dev", "path": dir + "/from-mcp.txt",
			"content": "written by an agent\n"}, &w); isErr || w.BytesWritten != 20 {
			t.Fatalf("vm_write_file: %s %+v", text, w)
		}
		var r struct {
			Content  string `json:"content"`
			Encoding string `json:"encoding"`
		}
		callTool(t, ctx, cs, "vm_read_file", map[string]any{"name": "agent-dev", "path": dir + "/from-mcp.txt"}, &r)
		if r.Content != "written by an agent\n" || r.Encoding != "utf-8" {
			t.Errorf("vm_read_file: %+v", r)
		}
		var out mcpserver.ExecOutput
		callTool(t, ctx, cs, "vm_exec", map[string]any{"name": "agent-dev", "command": "cat", "args": []string{dir + "/from-mcp.txt"}}, &out)
		if out.Stdout != "written by an agent\n" {
			t.Errorf("the guest's own cat reads %q", out.Stdout)
		}
		var l struct {
			Entries []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"entries"`
		}
		callTool(t, ctx, cs, "vm_list_dir", map[string]any{"name": "agent-dev", "path": dir}, &l)
		if !slices.ContainsFunc(l.Entries, func(e struct {
			Name string `json:"name"`
			Type string `json:"type"`
		}) bool {
			return e.Name == "from-mcp.txt" && e.Type == "file"
		}) {
			t.Errorf("vm_list_dir %s: %+v", dir, l.Entries)
		}
	})

	if withClone {
		t.Run("clone", func(t *testing.T) {
			var c mcpserver.VMInfo
			if text, isErr := callTool(t, ctx, cs, "vm_clone", map[string]any{"source": "agent-dev", "name": "agent-copy"}, &c); isErr {
				t.Fatalf("vm_clone: %s", text)
			}
			if c.Name != "agent-copy" || c.State != "running" || c.Address == "" || c.Address == vm.Address {
				t.Fatalf("vm_clone returned %+v (source address %s)", c, vm.Address)
			}
			var out mcpserver.ExecOutput
			callTool(t, ctx, cs, "vm_exec", map[string]any{"name": "agent-copy", "command": "cat", "args": []string{dir + "/from-mcp.txt"}}, &out)
			if out.ExitCode != 0 || out.Stdout != "written by an agent\n" {
				t.Errorf("the clone lacks the source's file: %+v", out)
			}
			var del struct {
				Deleted string `json:"deleted"`
			}
			if text, isErr := callTool(t, ctx, cs, "vm_delete", map[string]any{"name": "agent-copy", "confirm": "agent-copy", "force": true}, &del); isErr {
				t.Errorf("vm_delete agent-copy: %s", text)
			}
		})
	}

	t.Run("daemon-limit", func(t *testing.T) {
		text, isErr := callTool(t, ctx, cs, "vm_create", map[string]any{"name": "agent-big", "memory_mib": 2048}, nil)
		if !isErr || !strings.Contains(text, "max_vm_memory_mib") || !strings.Contains(text, "hint:") {
			t.Errorf("vm_create over max_vm_memory_mib: error %v, %q", isErr, text)
		}
		if out, _, _ := env.Banger("vm", "list"); strings.Contains(out, "agent-big") {
			t.Errorf("a refused VM was created:\n%s", out)
		}
	})

	unchanged := func(t *testing.T, what string) {
		t.Helper()
		if got := env.VM("agent-dev"); got.State != "running" {
			t.Errorf("after %s agent-dev is %s", what, got.State)
		}
	}

	t.Run("read-only", func(t *testing.T) {
		ro := mcpSession(t, env, ctx, nil, "--read-only")
		tools, err := ro.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tool := range tools.Tools {
			if tool.Name == "vm_delete" || tool.Name == "vm_create" || tool.Name == "vm_stop" {
				t.Errorf("--read-only lists %s", tool.Name)
			}
		}
		if _, err := ro.CallTool(ctx, &mcp.CallToolParams{Name: "vm_delete",
			Arguments: map[string]any{"name": "agent-dev", "confirm": "agent-dev", "force": true}}); err == nil {
			t.Errorf("--read-only answered vm_delete")
		}
		var out mcpserver.ExecOutput
		callTool(t, ctx, ro, "vm_exec", map[string]any{"name": "agent-dev", "command": "true"}, &out)
		if out.ExitCode != 0 {
			t.Errorf("--read-only vm_exec: %+v", out)
		}
		unchanged(t, "a read-only vm_delete")
	})

	t.Run("only-prefix", func(t *testing.T) {
		other := mcpSession(t, env, ctx, nil, "--only-prefix", "other-")
		var list struct {
			VMs []mcpserver.VMInfo `json:"vms"`
		}
		callTool(t, ctx, other, "vm_list", map[string]any{}, &list)
		if len(list.VMs) != 0 {
			t.Errorf("--only-prefix other- lists %+v", list.VMs)
		}
		for _, tc := range []struct {
			tool string
			args map[string]any
		}{
			{"vm_delete", map[string]any{"name": "agent-dev", "confirm": "agent-dev", "force": true}},
			{"vm_stop", map[string]any{"name": "agent-dev"}},
			{"vm_exec", map[string]any{"name": "agent-dev", "command": "touch", "args": []string{dir + "/touched"}}},
		} {
			if text, isErr := callTool(t, ctx, other, tc.tool, tc.args, nil); !isErr || !strings.Contains(text, `must start with "other-"`) {
				t.Errorf("%s outside the prefix: error %v, %q", tc.tool, isErr, text)
			}
		}
		unchanged(t, "refusals outside the prefix")
		var out mcpserver.ExecOutput
		callTool(t, ctx, cs, "vm_exec", map[string]any{"name": "agent-dev", "command": "test", "args": []string{"-e", dir + "/touched"}}, &out)
		if out.ExitCode != 1 {
			t.Errorf("a refused vm_exec ran: test -e touched exits %d", out.ExitCode)
		}
	})

	var del struct {
		Deleted string `json:"deleted"`
	}
	if text, isErr := callTool(t, ctx, cs, "vm_delete", map[string]any{"name": "agent-dev", "confirm": "agent-dev", "force": true}, &del); isErr || del.Deleted != "agent-dev" {
		t.Fatalf("vm_delete: %s %+v", text, del)
	}
	if vms := env.VMs(); len(vms) != 0 {
		t.Errorf("after vm_delete: %+v", vms)
	}
}
