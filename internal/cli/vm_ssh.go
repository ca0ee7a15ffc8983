package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sshcmd"
	"github.com/banger-dev/banger/internal/sysexec"
)

func newVMSSHCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use: "ssh NAME [-- COMMAND [ARG...]]",
		Long: "Open a shell in a VM, or run a command there. Several arguments after -- are passed as they are\n" +
			"(-- sh -c 'exit 7' runs sh with two arguments); a single argument is a shell command line\n" +
			"(-- 'ls | wc -l'). The exit status is the remote command's.",
		Short: "Open a shell (or run a command) in a VM with the system ssh",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			name := args[0]
			var info api.VMSSHInfo
			if err := a.call(ctx, api.MethodVMSSHInfo, api.VMRef{Name: name}, &info); err != nil {
				return err
			}
			argv := sshArgv(info, args[1:])
			res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: argv, Stdin: a.Stdin, Stdout: a.Stdout, Stderr: a.Stderr, NoCapture: true})
			a.remindRunning(name)
			if err != nil && res.ExitCode < 0 {
				return fmt.Errorf("run ssh: %w", err)
			}
			if res.ExitCode != 0 {
				return &exitError{code: res.ExitCode} // the remote command's status
			}
			return nil
		},
	}
}

// sshArgv builds the system ssh command line for a VM.
func sshArgv(info api.VMSSHInfo, remote []string) []string {
	cmd := ""
	if len(remote) > 0 {
		cmd = remoteCommand(remote)
	}
	return sshcmd.Argv(info, cmd)
}

// remoteCommand makes the command line ssh hands to the guest's shell. ssh
// joins its arguments with spaces, so `-- sh -c 'exit 7'` would run
// `sh -c exit 7` there; several arguments are therefore quoted one by one
// (argv semantics, like docker exec). A single argument stays a shell
// command line, as with ssh: `-- 'ls | wc -l'`.
func remoteCommand(remote []string) string {
	if len(remote) == 1 {
		return remote[0]
	}
	return sysexec.Quote(remote)
}

// remindRunning prints one line when the VM is still running after ssh, so
// VMs are not forgotten. It uses a fresh context: Ctrl-C may have ended ssh.
func (a *App) remindRunning(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var h api.VMHealthResult
	if err := a.call(ctx, api.MethodVMHealth, api.VMRef{Name: name}, &h); err != nil || h.State != api.VMRunning {
		return
	}
	health := "unhealthy"
	if h.Healthy {
		health = "healthy"
	}
	var vm api.VM
	if err := a.call(ctx, api.MethodVMGet, api.VMRef{Name: name}, &vm); err == nil && vm.StartedAt != nil {
		health += ", up " + age(time.Since(*vm.StartedAt))
	}
	fmt.Fprintf(a.Stderr, "%s is still running (%s) — stop it with: banger vm stop %s\n", name, health, name)
}
