// Package mcpserver is `banger mcp`: a Model Context Protocol server (over
// stdio) whose tools let a coding agent create VMs, run commands in them,
// read and write their files, snapshot and delete them. Every tool calls
// bangerd through the client the CLI uses (internal/client): the daemon
// validates and enforces its limits (max_vms, max_vm_memory_mib) for the
// agent exactly as for a person. The server adds what only an agent needs:
// bounded outputs, a read-only mode and a VM name prefix it may touch.
package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/version"
)

// Daemon is how tools reach bangerd (a *client.Client).
type Daemon interface {
	Call(ctx context.Context, method string, params, result any, onProgress func(api.Progress)) error
	Stream(ctx context.Context, method string, params any) (net.Conn, error)
}

// Options configure a server.
type Options struct {
	// Connect returns the daemon client, starting bangerd when needed. It
	// is called on the first tool call, not at start: a client listing the
	// tools does not start a daemon.
	Connect func(ctx context.Context) (Daemon, error)
	// ReadOnly exposes only the tools that change nothing in banger:
	// vm_list, vm_exec, vm_read_file, vm_list_dir, vm_ports. (vm_exec runs
	// what the agent asks inside the guest; read-only is about VMs, not
	// the guest's own files.)
	ReadOnly bool
	// OnlyPrefix, when set, is the VM name prefix every tool may touch:
	// other VMs are neither listed nor reachable.
	OnlyPrefix string
}

// Server holds the tools' shared state.
type Server struct {
	opts Options

	mu     sync.Mutex
	daemon Daemon
}

// New builds the MCP server with the tools opts allow.
func New(opts Options) (*mcp.Server, *Server) {
	s := &Server{opts: opts}
	srv := mcp.NewServer(&mcp.Implementation{Name: "banger", Version: version.Version}, &mcp.ServerOptions{
		Instructions: instructions(opts),
	})
	for _, t := range s.tools() {
		if opts.ReadOnly && !t.readOnly {
			continue
		}
		t.add(srv)
	}
	return srv, s
}

func instructions(opts Options) string {
	var b strings.Builder
	b.WriteString("banger runs Linux VMs on this host. ")
	if opts.ReadOnly {
		b.WriteString("This server is read-only: vm_list lists VMs, vm_exec runs commands in them, vm_read_file and " +
			"vm_list_dir read their files; it cannot create, stop or delete VMs.")
	} else {
		b.WriteString("Create one with vm_create, run commands with vm_exec, move files with vm_write_file/vm_read_file, " +
			"snapshot it with vm_snapshot before a risky step, delete it with vm_delete when done.")
	}
	if opts.OnlyPrefix != "" {
		fmt.Fprintf(&b, " It may only touch VMs whose names start with %q.", opts.OnlyPrefix)
	}
	return b.String()
}

// Run serves MCP on stdin/stdout until the client goes away.
func Run(ctx context.Context, opts Options) error {
	srv, _ := New(opts)
	return srv.Run(ctx, &mcp.StdioTransport{})
}

// tool is one registration: its name, whether read-only mode keeps it,
// and how to add it (generic over its input and output types).
type tool struct {
	name     string
	readOnly bool
	add      func(*mcp.Server)
}

func newTool[In, Out any](name, desc string, readOnly, destructive bool, h func(context.Context, *mcp.CallToolRequest, In) (Out, error)) tool {
	t := &mcp.Tool{Name: name, Description: desc, Annotations: &mcp.ToolAnnotations{
		ReadOnlyHint: readOnly, DestructiveHint: &destructive,
	}}
	return tool{name: name, readOnly: readOnly, add: func(srv *mcp.Server) {
		mcp.AddTool(srv, t, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
			out, err := h(ctx, req, in)
			if err != nil {
				var zero Out
				return nil, zero, toolError(err)
			}
			return nil, out, nil
		})
	}}
}

// toolErr is a failure as the agent reads it: banger's message, its hint
// (the fix) and its code, one per line.
type toolErr struct{ text string }

func (e *toolErr) Error() string { return e.text }

func toolError(err error) error {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return &toolErr{text: err.Error()}
	}
	text := ae.Message
	if ae.Hint != "" {
		text += "\nhint: " + ae.Hint
	}
	if ae.Code != "" {
		text += "\ncode: " + string(ae.Code)
	}
	return &toolErr{text: text}
}

// call reaches bangerd, connecting on first use.
func (s *Server) call(ctx context.Context, method string, params, result any, progress func(api.Progress)) error {
	d, err := s.connect(ctx)
	if err != nil {
		return err
	}
	return d.Call(ctx, method, params, result, progress)
}

func (s *Server) connect(ctx context.Context) (Daemon, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.daemon == nil {
		d, err := s.opts.Connect(ctx)
		if err != nil {
			return nil, err
		}
		s.daemon = d
	}
	return s.daemon, nil
}

// agent is the VM's guest agent through bangerd (vm.agent_connect), as
// the CLI's vm exec and vm cp reach it.
func (s *Server) agent(name string) agentclient.Client {
	return agentclient.ViaDaemon(name, func(ctx context.Context) (agentclient.Streamer, error) {
		d, err := s.connect(ctx)
		if err != nil {
			return nil, err
		}
		return d, nil
	})
}

// allowed refuses a VM name outside --only-prefix, before anything is
// asked of bangerd.
func (s *Server) allowed(name string) error {
	if name == "" {
		return api.NewError(api.CodeInvalidArgument, "name is empty", "pass the VM's name (vm_list lists them)")
	}
	if p := s.opts.OnlyPrefix; p != "" && !strings.HasPrefix(name, p) {
		return api.NewError(api.CodeInvalidArgument,
			fmt.Sprintf("VM %q is outside what this server may touch: names must start with %q", name, p),
			fmt.Sprintf("use a VM named %s..., e.g. %sdev", p, p))
	}
	return nil
}

// progress forwards bangerd's progress frames as MCP progress
// notifications when the client asked for them (a progress token).
func progress(ctx context.Context, req *mcp.CallToolRequest) func(api.Progress) {
	if req == nil || req.Params == nil || req.Session == nil {
		return nil
	}
	token := req.Params.GetProgressToken()
	if token == nil {
		return nil
	}
	var n float64
	return func(p api.Progress) {
		n++
		msg := p.Step
		if p.Message != "" {
			msg += ": " + p.Message
		}
		_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
			ProgressToken: token, Message: bound(msg, 512), Progress: n,
		})
	}
}

// bound cuts s to at most n bytes (guest-derived text).
func bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
