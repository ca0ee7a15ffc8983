package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newHostCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{Use: "host", Short: "Host networking and capacity"}
	var natOutput, teardownOutput string
	nat := &cobra.Command{
		Use: "nat on|off", Short: "Enable or disable NAT for the VM subnet", Args: cobra.ExactArgs(1),
		ValidArgs: []string{"on", "off"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(natOutput); err != nil {
				return err
			}
			if args[0] != "on" && args[0] != "off" {
				return usageErr("unknown argument "+args[0], "use: banger host nat on  or  banger host nat off")
			}
			if err := a.call(cmd.Context(), api.MethodHostNAT, api.HostNATParams{Enable: args[0] == "on"}, nil); err != nil {
				return err
			}
			return a.emit(natOutput, HostNATResult{NAT: args[0] == "on"}, func() { fmt.Fprintf(a.Stdout, "NAT %s\n", args[0]) })
		},
	}
	var force bool
	teardown := &cobra.Command{
		Use: "teardown", Short: "Remove banger's bridge, taps and NAT rules", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(teardownOutput); err != nil {
				return err
			}
			var res api.HostTeardownResult
			if err := a.call(cmd.Context(), api.MethodHostTeardown, api.HostTeardownParams{Force: force}, &res); err != nil {
				return err
			}
			if res.Removed == nil {
				res.Removed = []string{}
			}
			return a.emit(teardownOutput, res, func() {
				for _, r := range res.Removed {
					a.status("removed " + r)
				}
				fmt.Fprintf(a.Stdout, "host teardown done (%d items removed)\n", len(res.Removed))
			})
		},
	}
	teardown.Flags().BoolVar(&force, "force", false, "tear down even while VMs are running (they lose networking)")
	outputFlag(nat, &natOutput)
	outputFlag(teardown, &teardownOutput)
	var output string
	resources := &cobra.Command{
		Use: "resources", Short: "Host capacity and what VMs hold of it", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var r api.HostResources
			if err := a.call(cmd.Context(), api.MethodHostResources, nil, &r); err != nil {
				return err
			}
			if output == "json" {
				return a.printJSON(r)
			}
			t := newTable(a.Stdout, "RESOURCE", "HOST", "AVAILABLE", "RESERVED BY RUNNING VMS")
			t.row("cpus", fmt.Sprint(r.CPUs), "-", fmt.Sprint(r.VCPUsReserved))
			t.row("memory", bytesStr(r.MemoryBytes), bytesStr(r.MemoryAvailBytes), bytesStr(r.MemoryReservedBytes))
			t.row("disk", bytesStr(r.FSBytes), bytesStr(r.FSFreeBytes), bytesStr(r.DiskAllocatedBytes)+" allocated by all VMs")
			t.flush()
			return nil
		},
	}
	outputFlag(resources, &output)
	cmd.AddCommand(nat, teardown, resources)
	return cmd
}
