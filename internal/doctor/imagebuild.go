package doctor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/image"
	"github.com/banger-dev/banger/internal/privhelper"
	"github.com/banger-dev/banger/internal/userns"
)

// checkBootstrapTool reports the tool Debian images are bootstrapped with:
// mmdebstrap (as root, or as a normal user in a user namespace), else the
// slower, root-only debootstrap.
func checkBootstrapTool(ctx context.Context, e *Env) api.CheckResult {
	if e.Distro == "void" {
		return ok("not needed: building a Void image")
	}
	const fix = "sudo apt-get install mmdebstrap uidmap"
	if p, err := e.lookPath(image.ToolMmdebstrap); err == nil {
		v := "mmdebstrap"
		if out, err := e.runVersion(ctx, p, "--version"); err == nil && firstLine(out) != "" {
			v = firstLine(out)
		}
		return ok(v + " at " + p + ": Debian images are bootstrapped with it")
	}
	if p, err := e.lookPath(image.ToolDebootstrap); err == nil {
		return warn("mmdebstrap not found: Debian images fall back to debootstrap at "+p+", which is slower and needs root", fix)
	}
	return fail("neither mmdebstrap nor debootstrap is installed: Debian images cannot be built", fix)
}

// checkBuildRights tells whether this user can build images, and how: as
// root, or without any sudo in a user namespace with subordinate ids; when
// not, every missing piece with the exact fix.
func checkBuildRights(ctx context.Context, e *Env) api.CheckResult {
	if e.euid() == 0 {
		return ok("running as root: builds make device nodes and root-owned files directly")
	}
	uid := e.euid()

	name := e.getenv("USER")
	if name == "" && e.Root == "" {
		name, _ = image.CurrentUser()
	}
	if name == "" {
		name = strconv.Itoa(uid)
	}
	h := userns.Host{Root: e.Root, LookPath: e.lookPath, Run: e.RunVersion}
	if e.RunVersion == nil {
		h.Run = runVersion
	}
	if problems := h.Check(ctx, name, uid); len(problems) > 0 {
		var what []string
		for _, p := range problems {
			what = append(what, p.What)
		}
		why := strings.Join(what, "; ")
		herr := helperBuildRights(ctx, e)
		if herr == nil && e.Distro != "void" {
			return ok("path: the privileged helper (sudo -n " + e.HelperPath + " image-build), because no user namespace can be made here (" + why +
				"): Debian images build as root in a root-owned directory under ~/.cache/banger/helper-build; Void images need root here, because " + image.VoidNoHelper)
		}
		fixes := userns.Fixes(problems)
		helper := ""
		if herr != nil {
			helper = "; or " + helperInstallFix + " (the privileged helper's image-build verb: " + herr.Error() + ")"
		}
		if e.Distro == "void" {
			helper = "; or build it as root (sudo banger image build --distro void ...): " + image.VoidNoHelper
		}
		return fail("a normal user builds images in a user namespace with subordinate ids, or through the privileged helper, and here: "+why,
			strings.Join(fixes, "; then ")+helper+"; or build as root")
	}
	if _, err := e.lookPath(image.ToolMmdebstrap); err != nil && e.Distro != "void" {
		return fail("user namespaces work, but mmdebstrap is not installed and debootstrap cannot build as a normal user",
			"sudo apt-get install mmdebstrap uidmap")
	}
	detail := "path: rootless, no sudo needed: builds run as you, in a user namespace with the subordinate ids of /etc/subuid and /etc/subgid"
	if e.Distro != "debian" {
		detail += " (" + image.VoidRootless + ")"
	}
	return ok(detail)
}

// helperBuildRights says why the privileged helper's image-build verb is
// not available to this user (nil: sudo -n grants it).
func helperBuildRights(ctx context.Context, e *Env) error {
	if e.HelperPath == "" {
		return errors.New("not checked: the helper path was not provided")
	}
	if e.HelperCheck != nil {
		if err := e.HelperCheck(); err != nil {
			return err
		}
	}
	argv := append([]string{e.HelperPath}, privhelper.ImageBuildArgs(image.DefaultSuite, image.DefaultMirror, image.DefaultSizeBytes, nil, "/x")...)
	if err := e.sudoAllowed(ctx, argv); err != nil {
		return fmt.Errorf("sudo -n does not allow %s: %v", strings.Join(argv, " "), err)
	}
	return nil
}
