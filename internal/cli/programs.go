package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
)

// The MCP server and the TUI are programs of their own, installed beside
// banger: their libraries (the MCP SDK; Bubble Tea and Lip Gloss) would
// otherwise be initialised at every start of every banger command, which
// cost `banger vm list` about a sixth of its time (docs/benchmarks.md).

func newMCPCmd() *cobra.Command {
	return programCmd("banger-mcp", "mcp [--read-only] [--only-prefix P]",
		"Serve banger to coding agents: a Model Context Protocol server on stdin/stdout")
}

func newTUICmd() *cobra.Command {
	return programCmd("banger-tui", "tui [--poll 2s]", "Every VM, its health and the host's capacity at a glance")
}

// programCmd is a command that runs program in place of this process (the
// same stdin, stdout and stderr), with every argument as given: the
// program parses them and answers --help.
func programCmd(program, use, short string) *cobra.Command {
	name, _, _ := strings.Cut(use, " ")
	return &cobra.Command{
		Use:                use,
		Short:              short,
		Long:               short + ".\n\nRuns " + program + ", installed beside banger; `banger " + name + " --help` shows its options.",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := sysexec.Sibling(program)
			if err != nil {
				return api.NewError(api.CodeFailedPrecondition, program+" is not installed next to banger nor in PATH",
					"install banger's programs together (make install)")
			}
			return sysexec.Replace(append([]string{bin}, args...))
		},
	}
}
