package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sshconfig"
)

func newSSHConfigCmd(a *App) *cobra.Command {
	var install, uninstall bool
	var sshConfigPath string
	cmd := &cobra.Command{
		Use:   "ssh-config [NAME]",
		Short: "Print OpenSSH Host blocks for the VMs, or include them in ~/.ssh/config",
		Long: "Print a Host block per VM (aliases NAME and NAME.<dns_domain>, banger's key, banger's\n" +
			"known_hosts), or the named VM's. bangerd keeps the same blocks for all VMs in a file it\n" +
			"rewrites when VMs change; --install adds one Include of that file at the top of\n" +
			"~/.ssh/config (once; the file is backed up to config.banger-backup and keeps its mode),\n" +
			"so plain ssh, scp, rsync, git remotes and VS Code Remote-SSH reach VMs by name.\n" +
			"--uninstall removes exactly that line.",
		Example: "  banger ssh-config dev >> ~/.ssh/config.d/dev\n" +
			"  banger ssh-config --install && ssh dev",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if install && uninstall {
				return usageErr("--install and --uninstall together", "pick one")
			}
			if sshConfigPath == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return fmt.Errorf("find your home directory for ~/.ssh/config: %w", err)
				}
				sshConfigPath = filepath.Join(home, ".ssh", "config")
			}
			if uninstall {
				changed, err := sshconfig.Uninstall(sshConfigPath, a.Layout.SSHConfig())
				if err != nil {
					return err
				}
				if changed {
					a.status("removed banger's Include from " + sshConfigPath)
				}
				return nil
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			var res api.VMSSHConfigResult
			if err := a.call(cmd.Context(), api.MethodVMSSHConfig, api.VMRef{Name: name}, &res); err != nil {
				return err
			}
			if !install {
				fmt.Fprint(a.Stdout, res.Text)
				return nil
			}
			if name != "" {
				return usageErr("--install includes every VM's blocks, not one VM's", "banger ssh-config --install")
			}
			changed, backup, err := sshconfig.Install(sshConfigPath, res.Path)
			if err != nil {
				return err
			}
			if changed {
				msg := "added Include " + res.Path + " to " + sshConfigPath
				if backup != "" {
					msg += " (backup: " + backup + ")"
				}
				a.status(msg)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&install, "install", false, "include banger's Host blocks from ~/.ssh/config (idempotent)")
	cmd.Flags().BoolVar(&uninstall, "uninstall", false, "remove the Include --install added")
	cmd.Flags().StringVar(&sshConfigPath, "ssh-config", "", "the ssh client config to edit (default ~/.ssh/config)")
	return cmd
}
