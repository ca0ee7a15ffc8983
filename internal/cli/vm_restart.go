package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newVMRestartCmd(a *App) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "restart NAME",
		Short: "Stop and start a VM (applies pending vm set changes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var vm api.VM
			if err := a.callProgress(cmd.Context(), api.MethodVMRestart, api.VMRef{Name: args[0]}, &vm, a.printProgress); err != nil {
				return err
			}
			return a.emit(output, vm, func() { fmt.Fprintf(a.Stdout, "restarted VM %s (%s)\n", vm.Name, vm.IP) })
		},
	}
	outputFlag(cmd, &output)
	return cmd
}
