package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/banger-dev/banger/images"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/disk"
	"github.com/banger-dev/banger/internal/paths"
)

// StepVoidRootfs is the progress step of making a Void tree (xbps or tarball).
const StepVoidRootfs = "void-rootfs"

// rootfsRecipe is how one distro's base tree is made and cached: the
// script, its parameters, and the cache key they add up to.
type rootfsRecipe struct {
	script   string // make-rootfs-<distro>.sh in images/
	cacheDir string // below Layout.BuildCacheDir()
	step     string // progress step while the script runs
	key      string // cache entry name
	env      []string
	// packEnv is added to pack-image.sh's parameters: the extra packages
	// installed over the cached tree (Debian), and the .deb cache.
	packEnv  []string
	describe string
	explain  func(tail []string, err error) error // turns a script failure into an error that says what to do
}

func newRecipe(req BuildRequest, tool string, rootless bool, layout paths.Layout) (rootfsRecipe, error) {
	switch req.Distro {
	case "debian":
		// The cached tree holds the default packages; extra packages are
		// installed over it at each build, so one more package costs its
		// apt install, not a new bootstrap.
		packages, err := DebianPackages(nil)
		if err != nil {
			return rootfsRecipe{}, err
		}
		extra := extraPackages(packages, req.ExtraPackages)
		script, err := fs.ReadFile(images.FS, ScriptDebian)
		if err != nil {
			return rootfsRecipe{}, err
		}
		mode := "root"
		if rootless {
			mode = "unshare"
		}
		env := []string{
			"BANGER_SUITE=" + req.Suite,
			"BANGER_MIRROR=" + req.Mirror,
			"BANGER_PACKAGES=" + strings.Join(packages, ","),
			"BANGER_TOOL=" + tool,
			"BANGER_MODE=" + mode,
		}
		describe := fmt.Sprintf("debian %s from %s with %s, %d packages", req.Suite, req.Mirror, tool, len(packages))
		key := CacheKey(tool, req.Suite, req.Mirror, packages, script)
		// The .debs are kept between builds, so a rebuild with one more
		// package downloads that one package (mmdebstrap's hooks take the
		// directory as a space-separated argument); so is apt's parsed
		// index of the base tree's package lists, so that it does not
		// parse them again at each build with extra packages.
		var packEnv []string
		if cache := AptCacheDir(layout); tool == ToolMmdebstrap && !strings.ContainsAny(cache, " \t\n") {
			env = append(env, "BANGER_APT_CACHE="+cache)
			packEnv = append(packEnv, "BANGER_APT_CACHE="+cache, "BANGER_APT_INDEX="+AptIndexDir(layout, key))
			describe += ", package cache " + cache
		}
		if len(extra) > 0 {
			packEnv = append(packEnv, "BANGER_EXTRA_PACKAGES="+strings.Join(extra, ","))
			describe += ", then " + strings.Join(extra, " ")
		}
		return rootfsRecipe{
			script: ScriptDebian, cacheDir: "rootfs", step: StepBootstrap,
			key:      key,
			env:      env,
			packEnv:  packEnv,
			describe: describe,
			explain:  func(tail []string, err error) error { return bootstrapError(req, tool, tail, err) },
		}, nil
	case "void":
		r, err := voidRecipe(req)
		if err == nil && rootless {
			r.env = append(r.env, "BANGER_MODE=unshare")
		}
		return r, err
	}
	return rootfsRecipe{}, invalid(fmt.Sprintf("distro %q cannot be built", req.Distro), "use --distro debian or --distro void")
}

// extraPackages is the sorted, de-duplicated list of requested packages the
// default set lacks.
func extraPackages(base, requested []string) []string {
	have := map[string]bool{}
	for _, p := range base {
		have[p] = true
	}
	var out []string
	for _, p := range requested {
		if !have[p] {
			have[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// AptCacheDir holds the Debian packages downloaded by earlier builds.
func AptCacheDir(l paths.Layout) string { return filepath.Join(l.BuildCacheDir(), "apt-archives") }

// AptIndexDir holds apt's parsed index (srcpkgcache.bin) of the package
// lists in the base tree cached under key: apt makes it at the first build
// that installs extra packages over that tree and reuses it at the next
// ones. It is only good for those lists (apt checks their sizes and
// modification times), hence one per base tree; a new mirror or suite is a
// new key.
func AptIndexDir(l paths.Layout, key string) string {
	return filepath.Join(l.BuildCacheDir(), "apt-index", key)
}

// VoidArch is Void's name for the host's architecture (images run on the
// host's CPU).
func VoidArch(goarch string) (string, error) {
	switch goarch {
	case "amd64":
		return "x86_64", nil
	case "arm64":
		return "aarch64", nil
	}
	return "", api.NewError(api.CodeFailedPrecondition, "Void images cannot be built for "+goarch, "build on an x86_64 or aarch64 host")
}

func voidRecipe(req BuildRequest) (rootfsRecipe, error) {
	packages, err := VoidPackages(req.ExtraPackages)
	if err != nil {
		return rootfsRecipe{}, err
	}
	script, err := fs.ReadFile(images.FS, "make-rootfs-void.sh")
	if err != nil {
		return rootfsRecipe{}, err
	}
	arch, err := VoidArch(runtime.GOARCH)
	if err != nil {
		return rootfsRecipe{}, err
	}
	// The tree depends on the tarball's content, not on its name.
	source, describe := req.VoidRepo, fmt.Sprintf("void %s/%s from %s", arch, req.Libc, req.VoidRepo)
	if req.FromTarball != "" {
		sum, _, err := disk.SHA256(req.FromTarball)
		if err != nil {
			return rootfsRecipe{}, invalid("read tarball: "+err.Error(), "pass a readable Void ROOTFS tarball")
		}
		source = "tarball sha256:" + sum + " repo:" + req.VoidRepo
		describe = fmt.Sprintf("void %s/%s from %s (sha256 %s)", arch, req.Libc, req.FromTarball, sum[:12])
	}
	return rootfsRecipe{
		script: ScriptVoid, cacheDir: "void", step: StepVoidRootfs,
		key: CacheKey("xbps", "void-"+arch+"-"+req.Libc, source, packages, script),
		env: []string{
			"BANGER_REPO=" + req.VoidRepo,
			"BANGER_LIBC=" + req.Libc,
			"BANGER_ARCH=" + arch,
			"BANGER_XBPS=" + req.XBPSStatic,
			"BANGER_TARBALL=" + req.FromTarball,
			"BANGER_PACKAGES=" + strings.Join(packages, ","),
		},
		describe: fmt.Sprintf("%s, %d packages", describe, len(packages)),
		explain:  func(tail []string, err error) error { return voidError(req, tail, err) },
	}, nil
}

// voidError explains a failed Void tree: unknown packages are the user's to
// fix; the script's own refusals already say what to do; anything else is
// most often the repository.
func voidError(req BuildRequest, tail []string, err error) error {
	var unknown []string
	for _, line := range tail {
		// xbps: "Package `foo' not found in repository pool."
		if strings.Contains(line, "not found in repository pool") {
			unknown = append(unknown, strings.TrimSpace(line))
		}
	}
	if len(unknown) > 0 {
		return invalid("the Void repository has no such package: "+strings.Join(unknown, "; "),
			"check the package names (xbps-query -Rs NAME, or https://voidlinux.org/packages/) and drop or fix them")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("make the Void tree: stopped: %w", err)
	}
	// The script's refusals say what is wrong and what to do.
	for _, line := range tail {
		if msg, ok := strings.CutPrefix(line, "make-rootfs-void: error: "); ok {
			return api.NewError(api.CodeFailedPrecondition, msg,
				"fix the cause above and run the build again")
		}
	}
	from := "repository " + req.VoidRepo
	if req.FromTarball != "" {
		from = "tarball " + req.FromTarball
	}
	return fmt.Errorf("make the Void tree from %s failed (%s): %w; check that the repository is reachable (void_repo in config.toml) and retry",
		from, strings.Join(tail, " / "), err)
}
