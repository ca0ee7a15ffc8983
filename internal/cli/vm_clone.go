package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newVMCloneCmd(a *App) *cobra.Command {
	var p api.VMCloneParams
	cmd := &cobra.Command{
		Use:   "clone SRC NEW",
		Short: "Make a new VM from SRC's current state or one of its snapshots, with its own identity",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Source, p.Name = args[0], args[1]
			var vm api.VM
			if err := a.callProgress(cmd.Context(), api.MethodVMClone, p, &vm, a.printProgress); err != nil {
				return err
			}
			fmt.Fprintf(a.Stdout, "cloned VM %s from %s (%s)\n", vm.Name, p.Source, vm.IP)
			return nil
		},
	}
	cmd.Flags().StringVar(&p.Snapshot, "snapshot", "", "clone this snapshot of SRC instead of its current state")
	return cmd
}
