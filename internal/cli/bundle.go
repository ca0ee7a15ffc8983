package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newBundleCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{Use: "bundle", Short: "The runtime bundle: kernel, initrd, modules, agent, SSH key"}
	var force bool
	var buildOutput string
	build := &cobra.Command{
		Use: "build", Short: "Build the runtime bundle locally from Debian packages", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(buildOutput); err != nil {
				return err
			}
			var info api.BundleInfo
			if err := a.callProgress(cmd.Context(), api.MethodBundleBuild, api.BundleBuildParams{Force: force}, &info, a.printProgress); err != nil {
				return err
			}
			return a.emit(buildOutput, info, func() {
				fmt.Fprintf(a.Stdout, "bundle ready in %s (kernel %s)\n", info.Dir, dash(info.KernelVersion))
			})
		},
	}
	build.Flags().BoolVar(&force, "force", false, "rebuild even when a complete bundle exists")
	outputFlag(build, &buildOutput)
	var output string
	show := &cobra.Command{
		Use: "show", Short: "Show the runtime bundle in use", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var info api.BundleInfo
			if err := a.call(cmd.Context(), api.MethodBundleShow, nil, &info); err != nil {
				return err
			}
			if output == "json" {
				return a.printJSON(info)
			}
			t := newTable(a.Stdout, "FIELD", "VALUE")
			for _, kv := range [][2]string{
				{"dir", info.Dir}, {"legacy layout", fmt.Sprint(info.Legacy)}, {"kernel", info.KernelPath},
				{"kernel version", dash(info.KernelVersion)}, {"initrd", dash(info.InitrdPath)}, {"modules", dash(info.ModulesDir)},
				{"rootfs", dash(info.RootfsPath)}, {"agent", info.AgentPath}, {"ssh key", info.SSHKeyPath},
			} {
				t.row(kv[0], kv[1])
			}
			t.flush()
			return nil
		},
	}
	outputFlag(show, &output)
	cmd.AddCommand(build, show)
	return cmd
}
