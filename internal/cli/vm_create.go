package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/validate"
)

func newVMCreateCmd(a *App) *cobra.Command {
	var (
		name, image string
		res         resourceFlags
		noStart     bool
		publish     []string
		autoForward bool
		output      string
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create a VM (and boot it unless --no-start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if err := validate.VMName(name); err != nil {
				return usageErr(err.Error(), "pass --name NAME")
			}
			p := api.VMCreateParams{Name: name, NoStart: noStart, Publish: publish}
			if cmd.Flags().Changed("auto-forward") {
				p.AutoForward = &autoForward
			}
			if cmd.Flags().Changed("image") {
				if err := validate.ImageName(image); err != nil {
					return usageErr(err.Error(), "")
				}
				p.Image = &image
			}
			var err error
			if p.VCPUs, p.MemoryMiB, p.DiskBytes, err = res.parse(cmd); err != nil {
				return err
			}
			var vm api.VM
			if err := a.callProgress(cmd.Context(), api.MethodVMCreate, p, &vm, a.printProgress); err != nil {
				return err
			}
			return a.emit(output, vm, func() { fmt.Fprintf(a.Stdout, "created VM %s (%s, %s)\n", vm.Name, vm.IP, vm.State) })
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "VM name (a DNS label: lower-case letters, digits, '-')")
	cmd.Flags().StringVar(&image, "image", "", "image to boot (default: default_image from config.toml)")
	res.add(cmd)
	cmd.Flags().BoolVar(&noStart, "no-start", false, "create the VM without booting it")
	cmd.Flags().StringArrayVarP(&publish, "publish", "p", nil,
		"forward [HOST_ADDR:]HOST_PORT[:GUEST_PORT] to the guest while it runs (repeatable; kept across restarts)")
	cmd.Flags().BoolVar(&autoForward, "auto-forward", false,
		"forward every TCP port the guest listens on (1024 and up) to the same port on 127.0.0.1 (default: auto_forward in config.toml)")
	outputFlag(cmd, &output)
	return cmd
}
