package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newVMCloneCmd(a *App) *cobra.Command {
	var p api.VMCloneParams
	var output string
	cmd := &cobra.Command{
		Use:   "clone SRC NEW",
		Short: "Make a new VM from SRC's current state or one of its snapshots, with its own identity",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			p.Source, p.Name = args[0], args[1]
			var vm api.VM
			if err := a.callProgress(cmd.Context(), api.MethodVMClone, p, &vm, a.printProgress); err != nil {
				return err
			}
			return a.emit(output, vm, func() { fmt.Fprintf(a.Stdout, "cloned VM %s from %s (%s)\n", vm.Name, p.Source, vm.IP) })
		},
	}
	cmd.Flags().StringVar(&p.Snapshot, "snapshot", "", "clone this snapshot of SRC instead of its current state")
	outputFlag(cmd, &output)
	return cmd
}
