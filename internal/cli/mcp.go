package cli

import (
	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
)

// mcpProgram is the MCP server, a program of its own (cmd/banger-mcp) so
// that its SDK is not initialised at every start of the CLI.
const mcpProgram = "banger-mcp"

// newMCPCmd is `banger mcp`: it runs banger-mcp in place of this process
// (same stdin, stdout and stderr, which are the protocol's), with every
// argument as given; banger-mcp parses them and answers --help.
func newMCPCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:                "mcp [--read-only] [--only-prefix P]",
		Short:              "Serve banger to coding agents: a Model Context Protocol server on stdin/stdout",
		Long:               "banger mcp runs banger-mcp, the MCP server for coding agents (see `banger mcp --help`).",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := sysexec.Sibling(mcpProgram)
			if err != nil {
				return api.NewError(api.CodeFailedPrecondition, mcpProgram+" is not installed next to banger nor in PATH",
					"install banger's programs together (make install)")
			}
			return sysexec.Replace(append([]string{bin}, args...))
		},
	}
}
