package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newVMSetCmd(a *App) *cobra.Command {
	var res resourceFlags
	var publish []string
	var unpublish []int
	var autoForward bool
	var output string
	cmd := &cobra.Command{
		Use:   "set NAME [--vcpus N] [--memory SIZE] [--disk SIZE]",
		Short: "Change a VM's resources (CPU/memory apply at next start; the disk grows while stopped)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			p := api.VMSetParams{Name: args[0]}
			var err error
			if p.VCPUs, p.MemoryMiB, p.DiskBytes, err = res.parse(cmd); err != nil {
				return err
			}
			p.Publish, p.Unpublish = publish, unpublish
			if cmd.Flags().Changed("auto-forward") {
				p.AutoForward = &autoForward
			}
			if p.VCPUs == nil && p.MemoryMiB == nil && p.DiskBytes == nil && len(publish) == 0 && len(unpublish) == 0 && p.AutoForward == nil {
				return usageErr("nothing to change", "pass --vcpus, --memory, --disk, --publish, --unpublish or --auto-forward")
			}
			var out api.VMSetResult
			if err := a.call(cmd.Context(), api.MethodVMSet, p, &out); err != nil {
				return err
			}
			return a.emit(output, out, func() {
				fmt.Fprintf(a.Stdout, "updated VM %s: %d vcpus, %s memory, %s disk, published %s\n", out.VM.Name, out.VM.VCPUs,
					bytesStr(int64(out.VM.MemoryMiB)<<20), bytesStr(out.VM.DiskBytes), publishedText(out.VM.Publish))
				if out.Note != "" {
					a.status("note: " + out.Note)
				}
			})
		},
	}
	res.add(cmd)
	cmd.Flags().StringArrayVarP(&publish, "publish", "p", nil,
		"add a forward [HOST_ADDR:]HOST_PORT[:GUEST_PORT] (repeatable; a running VM gets it at once)")
	cmd.Flags().IntSliceVar(&unpublish, "unpublish", nil, "remove the forward on this host port (repeatable)")
	cmd.Flags().BoolVar(&autoForward, "auto-forward", false,
		"follow the guest's listening TCP ports (--auto-forward=false turns it off for this VM)")
	outputFlag(cmd, &output)
	return cmd
}
