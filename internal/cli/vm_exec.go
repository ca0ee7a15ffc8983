package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
)

func newVMExecCmd(a *App) *cobra.Command {
	var (
		env     []string
		workdir string
		user    string
		timeout time.Duration
		tty     bool
		output  string
	)
	cmd := &cobra.Command{
		Use:   "exec NAME [flags] -- COMMAND [ARG...]",
		Short: "Run a command in a VM through the guest agent (no ssh)",
		Long: "Run a command in a running VM through its guest agent: no sshd, no network, no keys needed.\n" +
			"stdout and stderr stay separate, stdin is forwarded (its end closes the guest's stdin), and\n" +
			"banger exits with the command's status: 128+N when signal N ended it, 124 after --timeout,\n" +
			"127 when the command does not exist, 126 when it is not executable. Ctrl-C sends SIGINT to\n" +
			"the guest process. -t allocates a pty that follows this terminal's size.\n\n" +
			"--output json writes one JSON object a line (see the README): started, stdout, stderr\n" +
			"(data in base64), exit, or error.",
		Example: "  banger vm exec dev -- uname -a\n" +
			"  echo hi | banger vm exec dev -- cat\n" +
			"  banger vm exec dev -t -- bash\n" +
			"  banger vm exec dev --workdir /tmp --env DEBUG=1 --timeout 30s -- make test",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			name, argv := args[0], args[1:]
			if dash := cmd.ArgsLenAtDash(); dash != 1 || len(argv) == 0 {
				return usageErr("vm exec needs NAME, then -- and the command",
					"banger vm exec "+name+" -- COMMAND [ARG...]")
			}
			if timeout < 0 {
				return usageErr("--timeout must be positive", "e.g. --timeout 30s")
			}
			for _, kv := range env {
				if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
					return usageErr(fmt.Sprintf("--env %q is not KEY=VALUE", kv), "e.g. --env DEBUG=1")
				}
			}
			req := agentproto.ExecRequest{Argv: argv, Env: env, WorkDir: workdir, User: user,
				TimeoutMillis: timeout.Milliseconds(), TTY: tty}
			code, err := a.exec(cmd.Context(), name, req, output == "json")
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&env, "env", "e", nil, "set KEY=VALUE in the command's environment (repeatable)")
	f.StringVarP(&workdir, "workdir", "w", "", "working directory in the guest (default /root, or the --user's home)")
	f.StringVarP(&user, "user", "u", "", "run as this guest user (default root)")
	f.DurationVar(&timeout, "timeout", 0, "kill the command (and what it started) after this long; exit status 124")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a pty in the guest (interactive programs: bash, top)")
	outputFlag(cmd, &output)
	return cmd
}

// exec runs req in the VM and returns the exit status banger should end
// with. Failures before the command started come back as errors, except a
// missing (127) or non-executable (126) command, reported as a shell would.
func (a *App) exec(ctx context.Context, name string, req agentproto.ExecRequest, jsonOut bool) (int, error) {
	var out execOutput = plainOutput{stdout: a.Stdout, stderr: a.Stderr}
	if jsonOut {
		out = newJSONOutput(a.Stdout)
	}
	fd, isTerm := terminalFD(a.Stdin)
	if req.TTY {
		if isTerm {
			req.Rows, req.Cols = termSize(fd)
		}
		req.Term = os.Getenv("TERM")
	}

	conn, err := a.agent(name).Exec(ctx, req)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && jsonOut {
			out.error(ae)
		}
		if errors.As(err, &ae) && (ae.Code == agentproto.CodeCommandNotFound || ae.Code == agentproto.CodeCommandNotExecutable) {
			a.printError(err)
			if ae.Code == agentproto.CodeCommandNotFound {
				return 127, nil
			}
			return 126, nil
		}
		return 0, err
	}

	// From here on Ctrl-C belongs to the guest: it is forwarded, and the
	// exit status says what became of the command.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGWINCH)
	defer signal.Stop(sigs)
	fwd := make(chan int, 4)
	resize := make(chan agentproto.Resize, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				if s == syscall.SIGWINCH {
					if req.TTY && isTerm {
						if r, c := termSize(fd); r > 0 && c > 0 {
							select {
							case resize <- agentproto.Resize{Rows: r, Cols: c}:
							default:
							}
						}
					}
					continue
				}
				select {
				case fwd <- int(s.(syscall.Signal)):
				default:
				}
			}
		}
	}()
	if req.TTY && isTerm {
		restore, err := makeRaw(fd)
		if err != nil {
			conn.Close()
			return 0, fmt.Errorf("put the terminal in raw mode: %w", err)
		}
		defer restore()
	}

	exit, err := agentclient.RunExec(conn, agentclient.ExecIO{
		Stdin: a.Stdin, Stdout: out.stream(agentproto.TypeStdout), Stderr: out.stream(agentproto.TypeStderr),
		OnStarted: out.started, Signals: fwd, Resize: resize,
	})
	if err != nil {
		return 0, err
	}
	out.exit(exit)
	return exit.Code, nil
}

// execOutput renders an exec for people (the streams as they are) or for
// scripts (--output json).
type execOutput interface {
	started(pid int)
	stream(t agentproto.Type) io.Writer
	exit(agentproto.Exit)
	error(*api.Error)
}

type plainOutput struct{ stdout, stderr io.Writer }

func (p plainOutput) started(int) {}
func (p plainOutput) stream(t agentproto.Type) io.Writer {
	if t == agentproto.TypeStderr {
		return p.stderr
	}
	return p.stdout
}
func (p plainOutput) exit(agentproto.Exit) {}
func (p plainOutput) error(*api.Error)     {}

// ExecEvent is one line of `vm exec --output json`.
type ExecEvent struct {
	Type     string `json:"type"` // started | stdout | stderr | exit | error
	PID      int    `json:"pid,omitempty"`
	Data     []byte `json:"data,omitempty"` // base64 in JSON
	Code     *int   `json:"code,omitempty"`
	Signal   int    `json:"signal,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	// Error events: the error code, message and hint.
	ErrorCode string `json:"error_code,omitempty"`
	Message   string `json:"message,omitempty"`
	Hint      string `json:"hint,omitempty"`
}

type jsonOutput struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newJSONOutput(w io.Writer) *jsonOutput { return &jsonOutput{enc: json.NewEncoder(w)} }

func (j *jsonOutput) emit(e ExecEvent) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.enc.Encode(e)
}

func (j *jsonOutput) started(pid int) { _ = j.emit(ExecEvent{Type: "started", PID: pid}) }

func (j *jsonOutput) stream(t agentproto.Type) io.Writer {
	name := "stdout"
	if t == agentproto.TypeStderr {
		name = "stderr"
	}
	return writerFunc(func(p []byte) (int, error) {
		return len(p), j.emit(ExecEvent{Type: name, Data: p})
	})
}

func (j *jsonOutput) exit(e agentproto.Exit) {
	code := e.Code
	_ = j.emit(ExecEvent{Type: "exit", Code: &code, Signal: e.Signal, TimedOut: e.TimedOut})
}

func (j *jsonOutput) error(ae *api.Error) {
	_ = j.emit(ExecEvent{Type: "error", ErrorCode: string(ae.Code), Message: ae.Message, Hint: ae.Hint})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
