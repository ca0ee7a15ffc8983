package cli

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newVMDeleteCmd(a *App) *cobra.Command {
	var yes, force bool
	var output string
	cmd := &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a VM and its disks",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			name := args[0]
			if !yes && !force {
				if !a.IsTTY(a.Stdin) {
					return usageErr("refusing to delete VM "+name+" without confirmation (stdin is not a terminal)",
						"pass --yes: banger vm delete "+name+" --yes")
				}
				fmt.Fprintf(a.Stderr, "Delete VM %s and its disks (including /root)? [y/N] ", name)
				line, _ := bufio.NewReader(a.Stdin).ReadString('\n')
				if ans := strings.ToLower(strings.TrimSpace(line)); ans != "y" && ans != "yes" {
					return usageErr("not deleted", "")
				}
			}
			if err := a.call(cmd.Context(), api.MethodVMDelete, api.VMDeleteParams{Name: name, Force: force}, nil); err != nil {
				return err
			}
			return a.emit(output, DeletedResult{Name: name, Deleted: true}, func() { fmt.Fprintf(a.Stdout, "deleted VM %s\n", name) })
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "stop the VM first if it is running (implies --yes)")
	outputFlag(cmd, &output)
	return cmd
}
