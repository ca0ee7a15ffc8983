package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newVMHealthCmd(a *App) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "health NAME",
		Short: "Ask a VM's guest agent whether it is healthy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var h api.VMHealthResult
			if err := a.call(cmd.Context(), api.MethodVMHealth, api.VMRef{Name: args[0]}, &h); err != nil {
				return err
			}
			if output == "json" {
				// The same exit status as the table: scripts test it.
				if err := a.printJSON(h); err != nil || h.Healthy {
					return err
				}
				return &exitError{code: 1}
			}
			t := newTable(a.Stdout, "NAME", "STATE", "HEALTHY", "RTT", "UPTIME", "DETAIL")
			rtt, up, detail := "-", "-", h.Error
			if h.RTTMillis > 0 {
				rtt = fmt.Sprintf("%.1fms", h.RTTMillis)
			}
			if h.Agent != nil {
				up = age(time.Duration(h.Agent.UptimeSeconds * float64(time.Second)))
				if detail == "" {
					detail = "agent " + h.Agent.Version
					if !h.Agent.WorkDiskMounted {
						detail += ", work disk NOT mounted at /root"
					}
				}
			}
			t.row(h.Name, a.stateText(h.State), fmt.Sprint(h.Healthy), rtt, up, dash(detail))
			t.flush()
			if !h.Healthy {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	outputFlag(cmd, &output)
	return cmd
}
