package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

// completeNameArgs makes every subcommand of parent whose first argument is
// a NAME ("show NAME", "delete NAME", ...) complete it with the names list
// returns, so `banger vm ssh <TAB>` offers the VMs. A subcommand added later
// with such a Use line completes without further code.
func completeNameArgs(parent *cobra.Command, list func(ctx context.Context) ([]string, error)) {
	for _, c := range parent.Commands() {
		f := strings.Fields(c.Use)
		if len(f) < 2 || f[1] != "NAME" || c.ValidArgsFunction != nil {
			continue
		}
		c.ValidArgsFunction = func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			names, err := list(ctx)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []string
			for _, n := range names {
				if strings.HasPrefix(n, prefix) {
					out = append(out, n)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
	}
}

// vmNames lists the VMs for completion. Status lines are off: the shell
// shows the completion command's output as candidates.
func (a *App) vmNames(ctx context.Context) ([]string, error) {
	a.quiet = true
	var r api.VMListResult
	if err := a.call(ctx, api.MethodVMList, struct{}{}, &r); err != nil {
		return nil, err
	}
	var names []string
	for _, v := range r.VMs {
		names = append(names, v.Name)
	}
	return names, nil
}

// imageNames lists the images for completion.
func (a *App) imageNames(ctx context.Context) ([]string, error) {
	a.quiet = true
	var r api.ImageListResult
	if err := a.call(ctx, api.MethodImageList, struct{}{}, &r); err != nil {
		return nil, err
	}
	var names []string
	for _, im := range r.Images {
		names = append(names, im.Name)
	}
	return names, nil
}
