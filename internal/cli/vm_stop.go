package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newVMStopCmd(a *App) *cobra.Command {
	var force bool
	var output string
	cmd := &cobra.Command{
		Use:   "stop NAME",
		Short: "Shut a VM down (its disks and address are kept)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var vm api.VM
			if err := a.call(cmd.Context(), api.MethodVMStop, api.VMStopParams{Name: args[0], Force: force}, &vm); err != nil {
				return err
			}
			return a.emit(output, vm, func() { fmt.Fprintf(a.Stdout, "stopped VM %s\n", vm.Name) })
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill the VMM instead of a graceful shutdown")
	outputFlag(cmd, &output)
	return cmd
}
