package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/provision"
	"github.com/banger-dev/banger/internal/validate"
)

func newVMCreateCmd(a *App) *cobra.Command {
	var (
		name, image string
		res         resourceFlags
		noStart     bool
		publish     []string
		autoForward bool
		prov        provisionFlags
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
			if err := prov.apply(&p); err != nil {
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
	prov.add(cmd)
	outputFlag(cmd, &output)
	return cmd
}

// provisionFlags are vm create's --provision, --copy, --ready and --config.
type provisionFlags struct {
	scripts, copies []string
	ready, config   string
}

func (f *provisionFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.scripts, "provision", nil,
		"shell script run once, as root in /root, at the first boot (repeatable; run in order, output shown here)")
	cmd.Flags().StringArrayVar(&f.copies, "copy", nil,
		"SRC:DST: copy a host file or directory into the guest before the scripts run (repeatable)")
	cmd.Flags().StringVar(&f.ready, "ready", "",
		"tcp:PORT or cmd:COMMAND: the VM is running only once something listens on PORT (or COMMAND exits 0), within agent_timeout")
	cmd.Flags().StringVar(&f.config, "config", "",
		"TOML file with provision, copy and ready keys (paths relative to it); flags add to it, --ready replaces its ready")
}

// apply checks the provisioning flags (and --config) here, before the
// daemon is asked: a missing file or a bad spec creates nothing.
func (f *provisionFlags) apply(p *api.VMCreateParams) error {
	var fromFile provision.Spec
	if f.config != "" {
		var err error
		if fromFile, err = provision.LoadFile(f.config); err != nil {
			return usageErr(err.Error(), "see `banger vm create --help`")
		}
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	var flags provision.Spec
	for _, s := range f.scripts {
		flags.Scripts = append(flags.Scripts, hostPath(s, cwd))
	}
	for _, c := range f.copies {
		cp, err := provision.ParseCopy(c, cwd)
		if err != nil {
			return usageErr(err.Error(), "")
		}
		flags.Copies = append(flags.Copies, cp)
	}
	flags.Ready = f.ready
	spec := provision.Merge(fromFile, flags)
	if err := provision.Check(spec); err != nil {
		return usageErr(err.Error(), "")
	}
	p.Provision, p.Copy, p.Ready = spec.Scripts, spec.Copies, spec.Ready
	return nil
}

func hostPath(p, cwd string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(cwd, p)
}
