package cli

import (
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/termsafe"
)

func newVMLogsCmd(a *App) *cobra.Command {
	var follow, raw, provision bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a VM's serial console log",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tail < 0 {
				return usageErr("--tail must not be negative", "")
			}
			ctx := cmd.Context()
			p := api.VMLogsParams{Name: args[0], Provision: provision}
			if tail > 0 {
				// Fetch generously, then cut to whole lines.
				p.TailBytes = int64(tail) * 1024
			}
			var res api.VMLogsResult
			if err := a.call(ctx, api.MethodVMLogs, p, &res); err != nil {
				return err
			}
			// The console is the guest's output: on a terminal its escape
			// sequences and control characters are dropped (--raw keeps them).
			out := a.Stdout
			if !raw && a.IsTTY(a.Stdout) {
				safe := termsafe.NewWriter(a.Stdout)
				defer safe.Flush()
				out = safe
			}
			data := res.Data
			if tail > 0 {
				data = lastLines(data, tail)
			}
			io.WriteString(out, data)
			if res.Data == "" && !follow {
				if provision {
					a.status("no provisioning output (" + res.Path + ")")
				} else {
					a.status("no console output yet (" + res.Path + ")")
				}
			}
			for follow {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(500 * time.Millisecond):
				}
				p = api.VMLogsParams{Name: args[0], Offset: res.Offset, Provision: provision}
				if err := a.call(ctx, api.MethodVMLogs, p, &res); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				io.WriteString(out, res.Data)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output (Ctrl-C to stop)")
	cmd.Flags().IntVar(&tail, "tail", 0, "print only the last N lines")
	cmd.Flags().BoolVar(&provision, "provision", false, "print the output of the VM's provisioning scripts (vm create --provision) instead of the console")
	cmd.Flags().BoolVar(&raw, "raw", false, "print the console's bytes as they are, escape sequences included (the default on a terminal drops them)")
	return cmd
}

func lastLines(s string, n int) string {
	trimmed := strings.TrimSuffix(s, "\n")
	lines := strings.Split(trimmed, "\n")
	if len(lines) <= n {
		return s
	}
	out := strings.Join(lines[len(lines)-n:], "\n")
	if strings.HasSuffix(s, "\n") {
		out += "\n"
	}
	return out
}
