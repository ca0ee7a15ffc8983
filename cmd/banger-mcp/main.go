// Command banger-mcp is banger's MCP server for coding agents, run as
// `banger mcp` (which execs it) or directly. It is a program of its own so
// that the MCP SDK, its JSON schemas and its other dependencies are not
// linked into, and initialised at every start of, the banger CLI.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/client"
	"github.com/banger-dev/banger/internal/config"
	"github.com/banger-dev/banger/internal/mcpserver"
	"github.com/banger-dev/banger/internal/paths"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := newMCPCmd(paths.Default())
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		api.Report(os.Stderr, "banger mcp", err)
		os.Exit(1)
	}
}

// newMCPCmd is the MCP server (alias `serve`) on stdin/stdout. The server
// package and the CLI are siblings that may not import each other; both
// reach bangerd through internal/client.
func newMCPCmd(layout paths.Layout) *cobra.Command {
	var (
		readOnly   bool
		onlyPrefix string
	)
	run := func(cmd *cobra.Command, _ []string) error {
		cfg, err := config.Load(layout.ConfigFile())
		if err != nil {
			return api.NewError(api.CodeInvalidArgument, err.Error(), "fix "+layout.ConfigFile())
		}
		if !cmd.Flags().Changed("read-only") {
			readOnly = cfg.MCPReadOnly
		}
		if !cmd.Flags().Changed("only-prefix") {
			onlyPrefix = cfg.MCPOnlyPrefix
		}
		if err := config.CheckMCPPrefix(onlyPrefix); err != nil {
			return api.NewError(api.CodeInvalidArgument, "--only-prefix "+err.Error(), "e.g. banger mcp --only-prefix agent-")
		}
		return mcpserver.Run(cmd.Context(), mcpserver.Options{
			ReadOnly: readOnly, OnlyPrefix: onlyPrefix,
			Connect: func(ctx context.Context) (mcpserver.Daemon, error) {
				// stdout is the protocol's: notes about starting bangerd go to stderr.
				return client.EnsureDaemon(ctx, layout, client.EnsureOptions{Status: func(s string) { fmt.Fprintln(os.Stderr, s) }})
			},
		})
	}
	flags := func(c *cobra.Command) {
		c.Flags().BoolVar(&readOnly, "read-only", false,
			"expose only vm_list, vm_exec, vm_read_file, vm_list_dir and vm_ports (default: mcp_read_only in config.toml)")
		c.Flags().StringVar(&onlyPrefix, "only-prefix", "",
			"touch only VMs whose names start with PREFIX (default: mcp_only_prefix in config.toml)")
	}
	cmd := &cobra.Command{
		Use:   "banger-mcp",
		Short: "Serve banger to coding agents: a Model Context Protocol server on stdin/stdout",
		Long: "banger-mcp (run as `banger mcp`) is an MCP server (stdio transport) for coding agents: tools to list, create, stop and\n" +
			"delete VMs, run commands in them (vm_exec), read, write and list their files, see their ports,\n" +
			"snapshot and restore them. It talks to bangerd like the CLI does; bangerd's limits (max_vms,\n" +
			"max_vm_memory_mib in config.toml) hold for it too. Configure your agent to run `banger mcp`.",
		Example: "  banger mcp\n  banger mcp --read-only\n  banger mcp --only-prefix agent-",
		Args:    cobra.NoArgs,
		RunE:    run,
	}
	flags(cmd)
	serve := &cobra.Command{Use: "serve", Short: "Same as banger-mcp", Args: cobra.NoArgs, RunE: run}
	flags(serve)
	cmd.AddCommand(serve)
	return cmd
}
