package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newVMSetCmd(a *App) *cobra.Command {
	var res resourceFlags
	cmd := &cobra.Command{
		Use:   "set NAME [--vcpus N] [--memory SIZE] [--disk SIZE]",
		Short: "Change a VM's resources (CPU/memory apply at next start; the disk grows while stopped)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := api.VMSetParams{Name: args[0]}
			var err error
			if p.VCPUs, p.MemoryMiB, p.DiskBytes, err = res.parse(cmd); err != nil {
				return err
			}
			if p.VCPUs == nil && p.MemoryMiB == nil && p.DiskBytes == nil {
				return usageErr("nothing to change", "pass --vcpus, --memory or --disk")
			}
			var out api.VMSetResult
			if err := a.call(cmd.Context(), api.MethodVMSet, p, &out); err != nil {
				return err
			}
			fmt.Fprintf(a.Stdout, "updated VM %s: %d vcpus, %s memory, %s disk\n", out.VM.Name, out.VM.VCPUs,
				bytesStr(int64(out.VM.MemoryMiB)<<20), bytesStr(out.VM.DiskBytes))
			if out.Note != "" {
				a.status("note: " + out.Note)
			}
			return nil
		},
	}
	res.add(cmd)
	return cmd
}
