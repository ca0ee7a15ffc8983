package cli

import (
	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
)

func newDoctorCmd(a *App) *cobra.Command {
	var (
		scopes []string
		output string
	)
	cmd := &cobra.Command{
		Use: "doctor", Short: "Check that this host can run banger VMs, and say how to fix what is missing", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var res api.DoctorResult
			if err := a.call(cmd.Context(), api.MethodDoctorRun, api.DoctorParams{Scopes: scopes}, &res); err != nil {
				return err
			}
			if output == "json" {
				a.printJSON(res)
			} else {
				a.printChecks(res.Checks)
			}
			for _, c := range res.Checks {
				if c.Status == api.CheckFail {
					return &exitError{code: 1}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&scopes, "scope", nil, "only run checks of this scope (repeatable)")
	outputFlag(cmd, &output)
	return cmd
}
