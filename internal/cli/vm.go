package cli

import "github.com/spf13/cobra"

func newVMCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{Use: "vm", Short: "Create, run and manage development VMs"}
	cmd.AddCommand(newVMCreateCmd(a), newVMListCmd(a), newVMShowCmd(a), newVMSetCmd(a), newVMStartCmd(a),
		newVMStopCmd(a), newVMRestartCmd(a), newVMDeleteCmd(a), newVMLogsCmd(a), newVMSSHCmd(a), newVMHealthCmd(a),
		newVMExecCmd(a), newVMCpCmd(a), newVMPortForwardCmd(a), newVMSnapshotCmd(a), newVMRestoreCmd(a),
		newVMSuspendCmd(a), newVMResumeCmd(a), newVMCloneCmd(a))
	return cmd
}
