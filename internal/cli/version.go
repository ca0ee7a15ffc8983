package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/client"
	"github.com/banger-dev/banger/internal/version"
)

func newVersionCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use: "version", Short: "Print the CLI's and the running daemon's version and build id", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(a.Stdout, "banger  %s (build %s)\n", version.Version, version.ID())
			info, err := runningInfo(cmd.Context(), client.New(a.Layout.DaemonSocket()))
			switch {
			case err != nil:
				fmt.Fprintf(a.Stdout, "bangerd unreachable: %v\n", err)
			case info == nil:
				fmt.Fprintln(a.Stdout, "bangerd not running")
			default:
				stale := ""
				if info.BuildID != client.ExpectedBuildID("") {
					stale = " — a different build; the next banger command restarts it"
				}
				fmt.Fprintf(a.Stdout, "bangerd %s (build %s, pid %d)%s\n", info.Version, info.BuildID, info.PID, stale)
			}
			return nil
		},
	}
}
