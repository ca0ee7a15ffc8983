package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/client"
)

func newDaemonCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{Use: "daemon", Short: "Control bangerd, the per-user daemon"}
	var startOutput, stopOutput string
	start := &cobra.Command{
		Use: "start", Short: "Start bangerd (banger starts it on demand anyway)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(startOutput); err != nil {
				return err
			}
			var info DaemonStartResult
			if err := a.call(cmd.Context(), api.MethodDaemonInfo, nil, &info); err != nil {
				return err
			}
			return a.emit(startOutput, info, func() { fmt.Fprintln(a.Stdout, "bangerd is running") })
		},
	}
	var stopVMs bool
	stop := &cobra.Command{
		Use: "stop", Short: "Stop bangerd (VMs keep running unless --stop-vms)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(stopOutput); err != nil {
				return err
			}
			c := client.New(a.Layout.DaemonSocket())
			info, err := runningInfo(cmd.Context(), c)
			if err != nil {
				return err
			}
			if info == nil {
				return a.emit(stopOutput, DaemonStopResult{}, func() { fmt.Fprintln(a.Stdout, "bangerd is not running") })
			}
			if err := client.StopDaemon(cmd.Context(), c, info.PID, stopVMs); err != nil {
				return err
			}
			return a.emit(stopOutput, DaemonStopResult{WasRunning: true, PID: info.PID}, func() {
				fmt.Fprintf(a.Stdout, "stopped bangerd (pid %d)\n", info.PID)
			})
		},
	}
	stop.Flags().BoolVar(&stopVMs, "stop-vms", false, "stop every running VM first")
	outputFlag(start, &startOutput)
	outputFlag(stop, &stopOutput)
	var output string
	status := &cobra.Command{
		Use: "status", Short: "Show whether bangerd runs, and its build", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			info, err := runningInfo(cmd.Context(), client.New(a.Layout.DaemonSocket()))
			if err != nil {
				return err
			}
			if output == "json" {
				return a.printJSON(info)
			}
			if info == nil {
				fmt.Fprintf(a.Stdout, "bangerd is not running (socket %s)\n", a.Layout.DaemonSocket())
				return nil
			}
			t := newTable(a.Stdout, "FIELD", "VALUE")
			for _, kv := range [][2]string{
				{"pid", fmt.Sprint(info.PID)}, {"version", info.Version}, {"build", info.BuildID},
				{"api", fmt.Sprint(info.APIVersion)}, {"up", age(time.Since(info.StartedAt))}, {"socket", info.Socket},
				{"state dir", info.StateDir}, {"log", info.LogPath}, {"vmm", dash(info.VMM)}, {"vmm reason", dash(info.VMMReason)},
				{"test switches", dash(strings.Join(info.TestSwitches, " "))},
			} {
				t.row(kv[0], kv[1])
			}
			t.flush()
			return nil
		},
	}
	outputFlag(status, &output)
	cmd.AddCommand(start, stop, status)
	return cmd
}

// runningInfo returns nil when no daemon answers (without starting one).
func runningInfo(ctx context.Context, c *client.Client) (*api.DaemonInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := c.Info(ctx)
	var ue *client.UnreachableError
	if errors.As(err, &ue) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &info, nil
}
