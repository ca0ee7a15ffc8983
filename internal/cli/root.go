// Package cli is the banger command line: Cobra commands, one file per verb,
// that call bangerd and render results as tables or JSON.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/client"
	"github.com/banger-dev/banger/internal/paths"
)

// Caller is how commands reach the daemon (a *client.Client in real use).
type Caller interface {
	Call(ctx context.Context, method string, params, result any, onProgress func(api.Progress)) error
}

// App holds what every command needs.
type App struct {
	Layout paths.Layout
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Connect returns a daemon caller, starting bangerd when needed.
	Connect func(ctx context.Context) (Caller, error)
	// IsTTY reports whether f is a terminal (stdin for prompts, stderr/stdout for colour).
	IsTTY func(f any) bool
	// Width is the column count of the terminal f is, or 0 when f is not a
	// terminal (a pipe gets one row per item, however long).
	Width func(f any) int

	caller Caller
	// quiet silences status lines (shell completion owns the output).
	quiet bool
}

// NewApp returns the real application: XDG layout, process stdio, and a
// daemon started on demand.
func NewApp() *App {
	a := &App{Layout: paths.Default(), Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, IsTTY: isTerminal, Width: termWidth}
	a.Connect = func(ctx context.Context) (Caller, error) {
		return client.EnsureDaemon(ctx, a.Layout, client.EnsureOptions{Status: a.status})
	}
	return a
}

func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(file.Fd()), unix.TCGETS)
	return err == nil
}

func termWidth(f any) int {
	file, ok := f.(*os.File)
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(file.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}

func (a *App) call(ctx context.Context, method string, params, result any) error {
	return a.callProgress(ctx, method, params, result, nil)
}

func (a *App) callProgress(ctx context.Context, method string, params, result any, progress func(api.Progress)) error {
	if a.caller == nil {
		c, err := a.Connect(ctx)
		if err != nil {
			return err
		}
		a.caller = c
	}
	return a.caller.Call(ctx, method, params, result, progress)
}

// status prints a progress/status line to stderr.
func (a *App) status(line string) {
	if !a.quiet {
		fmt.Fprintln(a.Stderr, line)
	}
}

// printProgress renders progress frames as lines on stderr.
func (a *App) printProgress(p api.Progress) {
	line := p.Step
	if p.Message != "" {
		line += ": " + p.Message
	}
	if p.Total > 0 {
		line += fmt.Sprintf(" (%d/%d)", p.Current, p.Total)
	}
	a.status(line)
}

// useColor: ANSI only on a terminal and never with NO_COLOR set.
func (a *App) useColor(w io.Writer) bool {
	if _, set := os.LookupEnv("NO_COLOR"); set {
		return false
	}
	return a.IsTTY != nil && a.IsTTY(w)
}

func (a *App) paint(w io.Writer, s, code string) string {
	if !a.useColor(w) {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// exitError carries an exit status without a message (doctor failures,
// ssh's remote status).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// NewRoot builds the command tree.
func NewRoot(a *App) *cobra.Command {
	root := &cobra.Command{
		Use:           "banger",
		Short:         "Linux development VMs on Firecracker or QEMU",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(a.Stdin)
	root.SetOut(a.Stdout)
	root.SetErr(a.Stderr)
	root.AddCommand(newVMCmd(a), newImageCmd(a), newBundleCmd(a), newHostCmd(a), newDoctorCmd(a), newDaemonCmd(a), newVersionCmd(a), newTUICmd(), newSSHConfigCmd(a), newMCPCmd())
	return root
}

// Main runs banger with args and returns the process exit status.
func Main(a *App, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewRoot(a)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	a.printError(err)
	return 1
}

func (a *App) printError(err error) {
	var ue *client.UnreachableError
	var ae *api.Error
	if !errors.As(err, &ae) && errors.As(err, &ue) {
		err = api.NewError(api.CodeFailedPrecondition, err.Error(), "start it with `banger daemon start`; its log is "+a.Layout.DaemonLog())
	}
	api.Report(a.Stderr, "banger", err)
}

// usageErr is a CLI-side invalid argument, rendered like daemon errors.
func usageErr(msg, hint string) error { return api.NewError(api.CodeInvalidArgument, msg, hint) }

// outputFlag adds --output table|json.
func outputFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVarP(dst, "output", "o", "table", "output format: table or json")
}

func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return usageErr(fmt.Sprintf("unknown output format %q", o), "use --output table or --output json")
	}
	return nil
}

func (a *App) printJSON(v any) error {
	enc := json.NewEncoder(a.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
