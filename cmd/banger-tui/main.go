// Command banger-tui is banger's terminal UI, run as `banger tui` (which
// execs it) or directly. It is a program of its own so that Bubble Tea,
// Lip Gloss and their terminal libraries are not linked into, and
// initialised at every start of, the banger CLI.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/client"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sshcmd"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/tui"
	"github.com/banger-dev/banger/internal/version"
)

const prog = "banger tui"

func main() {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported below, help goes to stdout
	poll := fs.Duration("poll", 2*time.Second, "how often to refresh the VM list")
	err := fs.Parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Print("Every VM, its health and the host's capacity at a glance.\n\nUsage:\n  banger tui [--poll 2s]\n\nFlags:\n")
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
		return
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		api.Report(os.Stderr, prog, api.NewError(api.CodeInvalidArgument, err.Error(), "banger tui takes only --poll DURATION (e.g. --poll 5s)"))
		os.Exit(2)
	}
	if _, err := unix.IoctlGetTermios(int(os.Stdout.Fd()), unix.TCGETS); err != nil {
		api.Report(os.Stderr, prog, api.NewError(api.CodeInvalidArgument, "banger tui needs a terminal on stdout",
			"run it in a terminal; for scripts use `banger vm list --output json`"))
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, noColor := os.LookupEnv("NO_COLOR")
	err = tui.Run(ctx, &backend{layout: paths.Default()}, tui.Options{
		Input: os.Stdin, Output: os.Stdout, NoColor: noColor, Poll: *poll, Version: version.Version,
	})
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		api.Report(os.Stderr, prog, err)
		os.Exit(1)
	}
}

// backend reaches bangerd through the same client as the CLI, so both
// show and do the same things.
type backend struct {
	layout paths.Layout
	c      *client.Client // nil until Connect
}

func (b *backend) Connect(ctx context.Context) error {
	if b.c != nil {
		return nil
	}
	// No status lines: "starting bangerd" would scribble over the TUI.
	c, err := client.EnsureDaemon(ctx, b.layout, client.EnsureOptions{})
	if err != nil {
		return err
	}
	b.c = c
	return nil
}

func (b *backend) call(ctx context.Context, method string, params, result any) error {
	if err := b.Connect(ctx); err != nil {
		return err
	}
	return b.c.Call(ctx, method, params, result, nil)
}

func (b *backend) ListVMs(ctx context.Context) ([]api.VM, error) {
	var r api.VMListResult
	err := b.call(ctx, api.MethodVMList, struct{}{}, &r)
	return r.VMs, err
}

func (b *backend) ListImages(ctx context.Context) ([]api.Image, error) {
	var r api.ImageListResult
	err := b.call(ctx, api.MethodImageList, struct{}{}, &r)
	return r.Images, err
}

func (b *backend) HostResources(ctx context.Context) (api.HostResources, error) {
	var r api.HostResources
	err := b.call(ctx, api.MethodHostResources, struct{}{}, &r)
	return r, err
}

func (b *backend) Health(ctx context.Context, name string) (api.VMHealthResult, error) {
	var r api.VMHealthResult
	err := b.call(ctx, api.MethodVMHealth, api.VMRef{Name: name}, &r)
	return r, err
}

func (b *backend) CreateVM(ctx context.Context, p api.VMCreateParams) (api.VM, error) {
	var vm api.VM
	err := b.call(ctx, api.MethodVMCreate, p, &vm)
	return vm, err
}

func (b *backend) StartVM(ctx context.Context, name string) error {
	return b.call(ctx, api.MethodVMStart, api.VMRef{Name: name}, &api.VM{})
}

func (b *backend) StopVM(ctx context.Context, name string) error {
	return b.call(ctx, api.MethodVMStop, api.VMStopParams{Name: name}, &api.VM{})
}

func (b *backend) RestartVM(ctx context.Context, name string) error {
	return b.call(ctx, api.MethodVMRestart, api.VMRef{Name: name}, &api.VM{})
}

func (b *backend) SuspendVM(ctx context.Context, name string) error {
	return b.call(ctx, api.MethodVMSuspend, api.VMRef{Name: name}, &api.VM{})
}

func (b *backend) ResumeVM(ctx context.Context, name string) error {
	return b.call(ctx, api.MethodVMResume, api.VMRef{Name: name}, &api.VM{})
}

func (b *backend) SnapshotVM(ctx context.Context, name string) (string, error) {
	var snap api.Snapshot
	err := b.call(ctx, api.MethodSnapshotCreate, api.SnapshotCreateParams{VM: name}, &snap)
	return snap.Name, err
}

func (b *backend) CloneVM(ctx context.Context, src, newName string) error {
	return b.call(ctx, api.MethodVMClone, api.VMCloneParams{Source: src, Name: newName}, &api.VM{})
}

func (b *backend) DeleteVM(ctx context.Context, name string) error {
	return b.call(ctx, api.MethodVMDelete, api.VMDeleteParams{Name: name}, &struct{}{})
}

// SSHCommand builds the same ssh `banger vm ssh` runs. The TUI hands it to
// Bubble Tea, which runs it with the terminal attached.
func (b *backend) SSHCommand(name string) (*exec.Cmd, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var info api.VMSSHInfo
	if err := b.call(ctx, api.MethodVMSSHInfo, api.VMRef{Name: name}, &info); err != nil {
		return nil, err
	}
	argv := sshcmd.Argv(info, "")
	path, err := sysexec.LookPath(argv[0])
	if err != nil {
		return nil, errors.New("ssh not found in PATH: install openssh-client")
	}
	// Built here, never run here: tea.ExecProcess runs it.
	return &exec.Cmd{Path: path, Args: argv}, nil
}

// Exec runs command with sh -c in the VM through the guest agent, keeping
// the end of its combined output.
func (b *backend) Exec(ctx context.Context, name, command string) (tui.ExecResult, error) {
	agent := agentclient.ViaDaemon(name, func(ctx context.Context) (agentclient.Streamer, error) {
		if err := b.Connect(ctx); err != nil {
			return nil, err
		}
		return b.c, nil
	})
	conn, err := agent.Exec(ctx, agentproto.ExecRequest{Argv: []string{"sh", "-c", command}})
	if err != nil {
		return tui.ExecResult{}, err
	}
	out := &tailWriter{max: tui.MaxExecOutput}
	exit, err := agentclient.RunExec(conn, agentclient.ExecIO{Stdout: out, Stderr: out})
	if err != nil {
		return tui.ExecResult{}, err
	}
	return tui.ExecResult{Output: out.buf, Truncated: out.dropped, Code: exit.Code}, nil
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	max     int
	buf     []byte
	dropped bool
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.dropped = true
	}
	return len(p), nil
}
