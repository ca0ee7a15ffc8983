package cli

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/ociref"
	"github.com/banger-dev/banger/internal/validate"
)

func newImageCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Build, register and manage root filesystem images"}
	cmd.AddCommand(newImageListCmd(a), newImageShowCmd(a), newImageDeleteCmd(a), newImageRegisterCmd(a),
		newImageBuildCmd(a), newImageVerifyCmd(a), newImageImportCmd(a))
	completeNameArgs(cmd, a.imageNames)
	return cmd
}

func newImageListCmd(a *App) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List images", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var res api.ImageListResult
			if err := a.call(cmd.Context(), api.MethodImageList, nil, &res); err != nil {
				return err
			}
			if output == "json" {
				return a.printJSON(res.Images)
			}
			if len(res.Images) == 0 {
				a.status("no images yet: build one with `banger image build --name debian`")
			}
			t := newTable(a.Stdout, "NAME", "DISTRO", "SUITE", "SIZE", "KERNEL", "AGE")
			for _, img := range res.Images {
				t.row(img.Name, img.Distro, dash(img.Suite), bytesStr(img.SizeBytes), dash(img.KernelVersion), age(time.Since(img.CreatedAt)))
			}
			t.flush()
			return nil
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newImageShowCmd(a *App) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use: "show NAME", Short: "Show one image", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var img api.Image
			if err := a.call(cmd.Context(), api.MethodImageGet, api.ImageRef{Name: args[0]}, &img); err != nil {
				return err
			}
			if output == "json" {
				return a.printJSON(img)
			}
			t := newTable(a.Stdout, "FIELD", "VALUE")
			for _, kv := range [][2]string{
				{"name", img.Name}, {"distro", img.Distro}, {"suite", dash(img.Suite)}, {"rootfs", img.RootfsPath},
				{"kernel", dash(img.KernelPath)}, {"initrd", dash(img.InitrdPath)}, {"kernel version", dash(img.KernelVersion)},
				{"size", bytesStr(img.SizeBytes)}, {"sha256", dash(img.SHA256)}, {"created", img.CreatedAt.Local().Format(time.DateTime)},
				{"source", dash(img.Source)}, {"digest", dash(img.Digest)},
			} {
				t.row(kv[0], kv[1])
			}
			t.flush()
			return nil
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newImageDeleteCmd(a *App) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use: "delete NAME", Aliases: []string{"rm"}, Short: "Delete an image no VM uses", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if err := a.call(cmd.Context(), api.MethodImageDelete, api.ImageRef{Name: args[0]}, nil); err != nil {
				return err
			}
			return a.emit(output, DeletedResult{Name: args[0], Deleted: true}, func() { fmt.Fprintf(a.Stdout, "deleted image %s\n", args[0]) })
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newImageRegisterCmd(a *App) *cobra.Command {
	var p api.ImageRegisterParams
	var output string
	cmd := &cobra.Command{
		Use: "register --name NAME --rootfs FILE", Short: "Register an existing ext4 root filesystem as an image", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if err := validate.ImageName(p.Name); err != nil {
				return usageErr(err.Error(), "pass --name NAME")
			}
			if p.RootfsPath == "" {
				return usageErr("--rootfs is required", "pass --rootfs PATH (an ext4 image file)")
			}
			// The daemon resolves nothing against our working directory.
			for _, f := range []*string{&p.RootfsPath, &p.KernelPath, &p.InitrdPath} {
				if err := absPath(f); err != nil {
					return err
				}
			}
			var img api.Image
			if err := a.callProgress(cmd.Context(), api.MethodImageRegister, p, &img, a.printProgress); err != nil {
				return err
			}
			return a.emit(output, img, func() { fmt.Fprintf(a.Stdout, "registered image %s (%s)\n", img.Name, bytesStr(img.SizeBytes)) })
		},
	}
	cmd.Flags().StringVar(&p.Name, "name", "", "image name")
	cmd.Flags().StringVar(&p.RootfsPath, "rootfs", "", "ext4 root filesystem file")
	cmd.Flags().StringVar(&p.KernelPath, "kernel", "", "uncompressed vmlinux (default: the bundle's)")
	cmd.Flags().StringVar(&p.InitrdPath, "initrd", "", "initramfs (default: the bundle's)")
	cmd.Flags().StringVar(&p.Distro, "distro", "", "distro label (debian, void, custom)")
	outputFlag(cmd, &output)
	return cmd
}

func newImageBuildCmd(a *App) *cobra.Command {
	var (
		p      api.ImageBuildParams
		size   string
		output string
	)
	cmd := &cobra.Command{
		Use: "build --name NAME", Short: "Build an image (Debian by default, or Void)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if err := validate.ImageName(p.Name); err != nil {
				return usageErr(err.Error(), "pass --name NAME")
			}
			if cmd.Flags().Changed("size") {
				n, err := validate.ParseSize(size)
				if err != nil {
					return usageErr("--size: "+err.Error(), "")
				}
				p.SizeBytes = &n
			}
			if p.Distro != "" && p.Distro != "debian" && p.Distro != "void" {
				return usageErr(fmt.Sprintf("unknown --distro %q", p.Distro), "use --distro debian or --distro void")
			}
			if p.Libc != "" && p.Libc != "glibc" && p.Libc != "musl" {
				return usageErr(fmt.Sprintf("unknown --libc %q", p.Libc), "use --libc glibc or --libc musl")
			}
			if err := absPath(&p.FromTarball); err != nil {
				return err
			}
			var img api.Image
			if err := a.callProgress(cmd.Context(), api.MethodImageBuild, p, &img, a.printProgress); err != nil {
				return err
			}
			return a.emit(output, img, func() {
				fmt.Fprintf(a.Stdout, "built image %s (%s %s, %s)\n", img.Name, img.Distro, img.Suite, bytesStr(img.SizeBytes))
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.Name, "name", "", "image name")
	f.StringVar(&p.Distro, "distro", "", "debian (default) or void")
	f.StringVar(&p.Suite, "suite", "", "Debian suite (default bookworm)")
	f.StringVar(&size, "size", "", "root filesystem size, e.g. 4G")
	f.StringSliceVar(&p.Packages, "packages", nil, "extra packages (comma-separated)")
	f.StringVar(&p.Libc, "libc", "", "Void only: glibc (default) or musl")
	f.StringVar(&p.FromTarball, "from-tarball", "", "Void only: build from a local rootfs tarball (offline)")
	f.BoolVar(&p.Force, "force", false, "rebuild even if the image exists")
	outputFlag(cmd, &output)
	return cmd
}

func newImageVerifyCmd(a *App) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use: "verify NAME", Short: "Boot an image and prove it works (agent, SSH, baseline tools)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var res api.ImageVerifyResult
			if err := a.callProgress(cmd.Context(), api.MethodImageVerify, api.ImageRef{Name: args[0]}, &res, a.printProgress); err != nil {
				return err
			}
			if output == "json" {
				a.printJSON(res)
			} else {
				a.printChecks(res.Checks)
			}
			if !res.Passed {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

// absPath makes a non-empty path absolute.
func absPath(p *string) error {
	if *p == "" {
		return nil
	}
	abs, err := filepath.Abs(*p)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", *p, err)
	}
	*p = abs
	return nil
}

func newImageImportCmd(a *App) *cobra.Command {
	var (
		p    api.ImageImportParams
		size string
	)
	cmd := &cobra.Command{
		Use:   "import REF --name NAME",
		Short: "Make an image from an OCI image (registry, OCI layout or docker save archive)",
		Long: "Make an image from an OCI container image: REF is a registry reference (registry.example/app:tag;\n" +
			"credentials from ~/.docker/config.json), oci:DIR[:TAG] (an OCI image layout) or\n" +
			"docker-archive:FILE (docker save). The linux/amd64 image is used. Its layers are flattened\n" +
			"(whiteouts applied, owners and modes kept), banger's guest layer is added (agent, boot\n" +
			"scripts, /root work disk, sshd trusting the bundle key) and the tree is packed with\n" +
			"mkfs.ext4 -d. The image must have systemd and bash. A re-import of the same digest is instant.",
		Example: "  banger image import 127.0.0.1:5000/dev/debian:12 --name deb\n  banger image import oci:./layout:v1 --name app",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validate.ImageName(p.Name); err != nil {
				return usageErr(err.Error(), "pass --name NAME")
			}
			ref, err := ociref.Parse(args[0])
			if err != nil {
				return usageErr(err.Error(), "")
			}
			// The daemon has its own working directory: paths go absolute.
			if ref.Transport != ociref.Registry {
				if err := absPath(&ref.Name); err != nil {
					return err
				}
			}
			p.Ref = ref.String()
			if cmd.Flags().Changed("size") {
				n, err := validate.ParseSize(size)
				if err != nil {
					return usageErr("--size: "+err.Error(), "")
				}
				p.SizeBytes = &n
			}
			var img api.Image
			if err := a.callProgress(cmd.Context(), api.MethodImageImport, p, &img, a.printProgress); err != nil {
				return err
			}
			fmt.Fprintf(a.Stdout, "imported image %s from %s (%s, %s)\n", img.Name, img.Source, img.Digest, bytesStr(img.SizeBytes))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.Name, "name", "", "image name")
	f.StringVar(&size, "size", "", "root filesystem size, e.g. 4G (default: 4G, or more when the image needs it)")
	f.BoolVar(&p.Force, "force", false, "replace an image of that name imported from another digest")
	f.StringSliceVar(&p.Packages, "packages", nil, "extra packages installed with the image's own package manager: apt-get, dnf or apk (comma-separated)")
	return cmd
}
