package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/client"
	"github.com/banger-dev/banger/internal/version"
)

func newVersionCmd(a *App) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use: "version", Short: "Print the CLI's and the running daemon's version and build id", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			res := VersionResult{CLI: BuildInfo{Version: version.Version, BuildID: version.ID()}}
			info, err := runningInfo(cmd.Context(), client.New(a.Layout.DaemonSocket()))
			if err != nil {
				res.DaemonError = err.Error()
			} else if info != nil {
				res.Daemon = info
				res.DaemonStale = info.BuildID != client.ExpectedBuildID("")
			}
			return a.emit(output, res, func() {
				fmt.Fprintf(a.Stdout, "banger  %s (build %s)\n", res.CLI.Version, res.CLI.BuildID)
				switch {
				case res.DaemonError != "":
					fmt.Fprintf(a.Stdout, "bangerd unreachable: %v\n", res.DaemonError)
				case info == nil:
					fmt.Fprintln(a.Stdout, "bangerd not running")
				default:
					stale := ""
					if res.DaemonStale {
						stale = " — a different build; the next banger command restarts it"
					}
					fmt.Fprintf(a.Stdout, "bangerd %s (build %s, pid %d)%s\n", info.Version, info.BuildID, info.PID, stale)
				}
			})
		},
	}
	outputFlag(cmd, &output)
	return cmd
}
