package cli

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/tui"
	"github.com/banger-dev/banger/internal/version"
)

func newTUICmd(a *App) *cobra.Command {
	var poll time.Duration
	cmd := &cobra.Command{
		Use:   "tui",
		Short: "Every VM, its health and the host's capacity at a glance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.IsTTY == nil || !a.IsTTY(a.Stdout) {
				return api.NewError(api.CodeInvalidArgument, "banger tui needs a terminal on stdout",
					"run it in a terminal; for scripts use `banger vm list --output json`")
			}
			_, noColor := os.LookupEnv("NO_COLOR")
			a.quiet = true // "starting bangerd" would scribble over the TUI
			return tui.Run(cmd.Context(), tuiBackend{a}, tui.Options{
				Input: a.Stdin, Output: a.Stdout, NoColor: noColor, Poll: poll, Version: version.Version,
			})
		},
	}
	cmd.Flags().DurationVar(&poll, "poll", 2*time.Second, "how often to refresh the VM list")
	return cmd
}

// tuiBackend lets the TUI reach the daemon through the CLI's own client, so
// both show and do the same things.
type tuiBackend struct{ a *App }

func (b tuiBackend) Connect(ctx context.Context) error {
	if b.a.caller != nil {
		return nil
	}
	c, err := b.a.Connect(ctx)
	if err != nil {
		return err
	}
	b.a.caller = c
	return nil
}

func (b tuiBackend) ListVMs(ctx context.Context) ([]api.VM, error) {
	var r api.VMListResult
	err := b.a.call(ctx, api.MethodVMList, struct{}{}, &r)
	return r.VMs, err
}

func (b tuiBackend) ListImages(ctx context.Context) ([]api.Image, error) {
	var r api.ImageListResult
	err := b.a.call(ctx, api.MethodImageList, struct{}{}, &r)
	return r.Images, err
}

func (b tuiBackend) HostResources(ctx context.Context) (api.HostResources, error) {
	var r api.HostResources
	err := b.a.call(ctx, api.MethodHostResources, struct{}{}, &r)
	return r, err
}

func (b tuiBackend) Health(ctx context.Context, name string) (api.VMHealthResult, error) {
	var r api.VMHealthResult
	err := b.a.call(ctx, api.MethodVMHealth, api.VMRef{Name: name}, &r)
	return r, err
}

func (b tuiBackend) CreateVM(ctx context.Context, p api.VMCreateParams) (api.VM, error) {
	var vm api.VM
	err := b.a.call(ctx, api.MethodVMCreate, p, &vm)
	return vm, err
}

func (b tuiBackend) StartVM(ctx context.Context, name string) error {
	return b.a.call(ctx, api.MethodVMStart, api.VMRef{Name: name}, &api.VM{})
}

func (b tuiBackend) StopVM(ctx context.Context, name string) error {
	return b.a.call(ctx, api.MethodVMStop, api.VMStopParams{Name: name}, &api.VM{})
}

func (b tuiBackend) RestartVM(ctx context.Context, name string) error {
	return b.a.call(ctx, api.MethodVMRestart, api.VMRef{Name: name}, &api.VM{})
}

func (b tuiBackend) SuspendVM(ctx context.Context, name string) error {
	return b.a.call(ctx, api.MethodVMSuspend, api.VMRef{Name: name}, &api.VM{})
}

func (b tuiBackend) ResumeVM(ctx context.Context, name string) error {
	return b.a.call(ctx, api.MethodVMResume, api.VMRef{Name: name}, &api.VM{})
}

func (b tuiBackend) SnapshotVM(ctx context.Context, name string) (string, error) {
	var snap api.Snapshot
	err := b.a.call(ctx, api.MethodSnapshotCreate, api.SnapshotCreateParams{VM: name}, &snap)
	return snap.Name, err
}

func (b tuiBackend) CloneVM(ctx context.Context, src, newName string) error {
	return b.a.call(ctx, api.MethodVMClone, api.VMCloneParams{Source: src, Name: newName}, &api.VM{})
}

func (b tuiBackend) DeleteVM(ctx context.Context, name string) error {
	return b.a.call(ctx, api.MethodVMDelete, api.VMDeleteParams{Name: name}, &struct{}{})
}

// SSHCommand builds the same ssh `banger vm ssh` runs. The TUI hands it to
// Bubble Tea, which runs it with the terminal attached.
func (b tuiBackend) SSHCommand(name string) (*exec.Cmd, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var info api.VMSSHInfo
	if err := b.a.call(ctx, api.MethodVMSSHInfo, api.VMRef{Name: name}, &info); err != nil {
		return nil, err
	}
	argv := sshArgv(info, nil)
	path, err := sysexec.LookPath(argv[0])
	if err != nil {
		return nil, errors.New("ssh not found in PATH: install openssh-client")
	}
	// Built here, never run here: tea.ExecProcess runs it.
	return &exec.Cmd{Path: path, Args: argv}, nil
}

// Exec runs command with sh -c in the VM through the guest agent, keeping
// the end of its combined output.
func (b tuiBackend) Exec(ctx context.Context, name, command string) (tui.ExecResult, error) {
	conn, err := b.a.agent(name).Exec(ctx, agentproto.ExecRequest{Argv: []string{"sh", "-c", command}})
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
