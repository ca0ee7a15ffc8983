package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
)

// Output limits of vm_exec: what an agent reads back goes into its
// context, so it is capped; bytes past the cap are counted, not kept.
const (
	DefaultOutputBytes = 64 << 10
	MaxOutputBytes     = 1 << 20
	DefaultTimeoutSecs = 600
	MaxTimeoutSecs     = 3600
	maxStdinBytes      = 8 << 20
)

const execDescription = "Run a command in a running VM through its guest agent (no ssh) and return its exit code, " +
	"stdout and stderr. command is a program, not a shell line: for pipes or redirections use command \"sh\" " +
	"with args [\"-c\", \"...\"]. Each stream returns at most max_output_bytes (default 65536); stdout_bytes and " +
	"stderr_bytes count everything the command wrote, and the *_truncated flags say when the rest was cut. " +
	"Output that is not UTF-8 has its invalid bytes replaced. Exit code 124 means timeout_seconds passed, " +
	"127 that the command does not exist, 128+N that signal N ended it."

type ExecInput struct {
	Name           string            `json:"name" jsonschema:"the VM's name"`
	Command        string            `json:"command" jsonschema:"the program to run (looked up in the guest's PATH)"`
	Args           []string          `json:"args,omitempty" jsonschema:"its arguments"`
	Stdin          string            `json:"stdin,omitempty" jsonschema:"text fed to the command's stdin (then closed)"`
	Workdir        string            `json:"workdir,omitempty" jsonschema:"working directory in the guest (default /root)"`
	Env            map[string]string `json:"env,omitempty" jsonschema:"environment variables added to the guest's base environment"`
	User           string            `json:"user,omitempty" jsonschema:"guest user to run as (default root)"`
	TimeoutSeconds int               `json:"timeout_seconds,omitempty" jsonschema:"kill the command and what it started after this many seconds (default 600, at most 3600)"`
	MaxOutputBytes int               `json:"max_output_bytes,omitempty" jsonschema:"bytes of stdout and of stderr returned, each (default 65536, at most 1048576)"`
}

type ExecOutput struct {
	ExitCode         int    `json:"exit_code"`
	Signal           int    `json:"signal,omitempty" jsonschema:"the signal that ended the command, if one did"`
	TimedOut         bool   `json:"timed_out"`
	Stdout           string `json:"stdout"`
	Stderr           string `json:"stderr"`
	StdoutBytes      int64  `json:"stdout_bytes" jsonschema:"bytes the command wrote to stdout, returned or not"`
	StderrBytes      int64  `json:"stderr_bytes" jsonschema:"bytes the command wrote to stderr, returned or not"`
	StdoutTruncated  bool   `json:"stdout_truncated"`
	StderrTruncated  bool   `json:"stderr_truncated"`
	OutputLimitBytes int    `json:"output_limit_bytes" jsonschema:"the cap each stream was held to"`
}

// execLimits checks the agent's numbers and fills in the defaults.
func execLimits(timeoutSecs, maxOut int) (int, int, error) {
	switch {
	case timeoutSecs < 0 || timeoutSecs > MaxTimeoutSecs:
		return 0, 0, api.NewError(api.CodeInvalidArgument,
			fmt.Sprintf("timeout_seconds %d: must be between 1 and %d", timeoutSecs, MaxTimeoutSecs), "omit it for the default of 600")
	case maxOut < 0 || maxOut > MaxOutputBytes:
		return 0, 0, api.NewError(api.CodeInvalidArgument,
			fmt.Sprintf("max_output_bytes %d: must be between 1 and %d", maxOut, MaxOutputBytes), "omit it for the default of 65536")
	}
	if timeoutSecs == 0 {
		timeoutSecs = DefaultTimeoutSecs
	}
	if maxOut == 0 {
		maxOut = DefaultOutputBytes
	}
	return timeoutSecs, maxOut, nil
}

func (s *Server) exec(ctx context.Context, _ *mcp.CallToolRequest, in ExecInput) (ExecOutput, error) {
	if err := s.allowed(in.Name); err != nil {
		return ExecOutput{}, err
	}
	if in.Command == "" {
		return ExecOutput{}, api.NewError(api.CodeInvalidArgument, "command is empty", "e.g. command \"uname\", args [\"-a\"]")
	}
	if len(in.Stdin) > maxStdinBytes {
		return ExecOutput{}, api.NewError(api.CodeInvalidArgument,
			fmt.Sprintf("stdin is %d bytes: at most %d", len(in.Stdin), maxStdinBytes), "write big inputs with vm_write_file and redirect from the file")
	}
	timeout, maxOut, err := execLimits(in.TimeoutSeconds, in.MaxOutputBytes)
	if err != nil {
		return ExecOutput{}, err
	}
	req := agentproto.ExecRequest{Argv: append([]string{in.Command}, in.Args...), WorkDir: in.Workdir, User: in.User,
		TimeoutMillis: int64(timeout) * 1000}
	for k, v := range in.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return ExecOutput{}, api.NewError(api.CodeInvalidArgument, fmt.Sprintf("env name %q is not a variable name", k), "e.g. {\"DEBUG\": \"1\"}")
		}
		req.Env = append(req.Env, k+"="+v)
	}
	return runExec(ctx, s.agent(in.Name), req, in.Stdin, maxOut)
}

// runExec runs req and collects its capped output. A missing or
// non-executable command is an exit status (127, 126), as in a shell.
func runExec(ctx context.Context, c agentclient.Client, req agentproto.ExecRequest, stdin string, maxOut int) (ExecOutput, error) {
	out := ExecOutput{OutputLimitBytes: maxOut}
	conn, err := c.Exec(ctx, req)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && (ae.Code == agentproto.CodeCommandNotFound || ae.Code == agentproto.CodeCommandNotExecutable) {
			out.ExitCode = 126
			if ae.Code == agentproto.CodeCommandNotFound {
				out.ExitCode = 127
			}
			out.Stderr = bound(ae.Message, maxOut)
			out.StderrBytes = int64(len(out.Stderr))
			return out, nil
		}
		return ExecOutput{}, err
	}
	// The tool call's end (the client cancelled) ends the exec too.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	stdout, stderr := newCapped(maxOut), newCapped(maxOut)
	exit, err := agentclient.RunExec(conn, agentclient.ExecIO{Stdin: strings.NewReader(stdin), Stdout: stdout, Stderr: stderr})
	if err != nil {
		if ctx.Err() != nil {
			return ExecOutput{}, ctx.Err()
		}
		return ExecOutput{}, err
	}
	out.ExitCode, out.Signal, out.TimedOut = exit.Code, exit.Signal, exit.TimedOut
	out.Stdout, out.StdoutBytes, out.StdoutTruncated = stdout.result()
	out.Stderr, out.StderrBytes, out.StderrTruncated = stderr.result()
	return out, nil
}

// capped keeps the first limit bytes written to it and counts the rest.
type capped struct {
	mu    sync.Mutex
	limit int
	buf   []byte
	total int64
}

func newCapped(limit int) *capped { return &capped{limit: limit} }

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += int64(len(p))
	if room := c.limit - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// result returns the kept bytes as text (invalid UTF-8 replaced), the
// count of all bytes written and whether some were dropped.
func (c *capped) result() (string, int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.ToValidUTF8(string(c.buf), "\uFFFD"), c.total, c.total > int64(len(c.buf))
}
