// Package tui is `banger tui`: a Bubble Tea dashboard of the user's VMs, their
// health, the images and the host's capacity. It talks to the daemon only
// through Backend, which the CLI's client satisfies through an adapter, so the
// TUI never depends on daemon-side packages.
package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/banger-dev/banger/internal/api"
)

// Backend is everything the TUI needs from the daemon.
type Backend interface {
	// Connect ensures the daemon is up; it may start it and take a while.
	Connect(ctx context.Context) error
	ListVMs(ctx context.Context) ([]api.VM, error)
	ListImages(ctx context.Context) ([]api.Image, error)
	HostResources(ctx context.Context) (api.HostResources, error)
	Health(ctx context.Context, name string) (api.VMHealthResult, error)
	CreateVM(ctx context.Context, p api.VMCreateParams) (api.VM, error)
	StartVM(ctx context.Context, name string) error
	StopVM(ctx context.Context, name string) error
	RestartVM(ctx context.Context, name string) error
	// SuspendVM saves a running VM's memory to disk and ends its VMM;
	// ResumeVM continues a suspended one.
	SuspendVM(ctx context.Context, name string) error
	ResumeVM(ctx context.Context, name string) error
	// SnapshotVM takes a snapshot with a default name (memory too when the
	// VM runs) and returns its name.
	SnapshotVM(ctx context.Context, name string) (string, error)
	// CloneVM makes newName from src's current state (vm clone).
	CloneVM(ctx context.Context, src, newName string) error
	DeleteVM(ctx context.Context, name string) error
	// SSHCommand returns the same ssh the CLI runs; the TUI only hands it to
	// tea.ExecProcess, which suspends the UI while it runs.
	SSHCommand(name string) (*exec.Cmd, error)
	// Exec runs a shell command line in the VM through its guest agent and
	// returns the combined output (the end of it, when long) and the exit
	// status.
	Exec(ctx context.Context, name, command string) (ExecResult, error)
}

// ExecResult is what `e` shows: the command's output and exit status.
type ExecResult struct {
	Output    []byte // stdout and stderr as they came, at most MaxExecOutput bytes (the end)
	Truncated bool   // earlier output was dropped
	Code      int
}

// MaxExecOutput bounds what the TUI keeps of a command's output.
const MaxExecOutput = 64 << 10

// Options configure Run and New.
type Options struct {
	Input   io.Reader // default os.Stdin
	Output  io.Writer // default os.Stdout
	NoColor bool      // NO_COLOR or --no-color: no colors, bars still drawn with characters
	// Poll is the refresh interval of the VM list (default 2s). Health is
	// polled less often: one VM at a time, each at most every 5 polls.
	Poll time.Duration
	// Version is shown in the header (e.g. version.Version).
	Version string
	// Now is the clock; tests inject one. Default time.Now.
	Now func() time.Time
	// CallTimeout bounds each daemon call except Connect (default 30s).
	CallTimeout time.Duration
}

const (
	defaultPoll        = 2 * time.Second
	defaultCallTimeout = 30 * time.Second
)

// Run starts the TUI and blocks until the user quits or ctx is cancelled.
// The first frame is drawn before any daemon contact: Connect runs as a
// command after the program has started.
func Run(ctx context.Context, b Backend, opts Options) error {
	if os.Getenv("NO_COLOR") != "" { // https://no-color.org
		opts.NoColor = true
	}
	// Cancelled on return, so calls still in flight when the user quits
	// (a slow Connect, a health check) end with the program.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := New(ctx, b, opts)
	popts := []tea.ProgramOption{tea.WithContext(ctx)}
	if opts.Input != nil {
		popts = append(popts, tea.WithInput(opts.Input))
	}
	if opts.Output != nil {
		popts = append(popts, tea.WithOutput(opts.Output))
	}
	if opts.NoColor {
		// The model already renders without colors; this also keeps Bubble
		// Tea from emitting any.
		popts = append(popts, tea.WithColorProfile(colorprofile.Ascii))
	}
	_, err := tea.NewProgram(m, popts...).Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("tui: %w", err)
	}
	return nil
}
