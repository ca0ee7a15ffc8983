package cli

import (
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newVMListCmd(a *App) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List VMs",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if output == "json" {
				// Scripts get the full records.
				var res api.VMListResult
				if err := a.call(cmd.Context(), api.MethodVMList, nil, &res); err != nil {
					return err
				}
				return a.printJSON(res.VMs)
			}
			// The table needs only its columns: vm.summaries reads and
			// sends half as much as vm.list.
			var res api.VMSummariesResult
			if err := a.call(cmd.Context(), api.MethodVMSummaries, nil, &res); err != nil {
				return err
			}
			if len(res.VMs) == 0 {
				a.status("no VMs yet: create one with `banger vm create --name dev`")
			}
			t := newTable(a.Stdout, "NAME", "STATE", "IP", "VCPUS", "MEMORY", "DISK", "IMAGE", "AGE")
			now := time.Now()
			for _, vm := range res.VMs {
				t.row(vm.Name, a.stateText(vm.State), dash(vm.IP), strconv.Itoa(vm.VCPUs), bytesStr(int64(vm.MemoryMiB)<<20),
					bytesStr(vm.DiskAllocatedBytes)+"/"+bytesStr(vm.DiskBytes), vm.Image, age(now.Sub(vm.CreatedAt)))
			}
			t.flush()
			return nil
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func (a *App) stateText(s api.VMState) string {
	switch s {
	case api.VMRunning:
		return a.paint(a.Stdout, string(s), "32")
	case api.VMError:
		return a.paint(a.Stdout, string(s), "31")
	}
	return string(s)
}
