package image

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/banger-dev/banger/images"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/disk"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/userns"
)

// Builder builds, registers and checks images. Build steps run as external
// programs through Runner; the privileged part of a build (bootstrapping,
// customizing and packing a tree whose files root owns) runs through
// Sandbox; base trees are cached under Layout.BuildCacheDir().
type Builder struct {
	Layout paths.Layout
	Runner sysexec.Runner // nil = sysexec.Exec{}
	// Sandbox runs the build scripts; nil = RootSandbox when banger runs as
	// root, else UserNSSandbox when this user can make a user namespace
	// with subordinate ids (else Build fails saying what to fix).
	Sandbox Sandbox
	// HostMirror names the host's Debian mirror; nil = HostDebianMirror.
	HostMirror func() string
	// LookPath finds the bootstrap tools; nil = sysexec.LookPath.
	LookPath func(string) (string, error)
	// HelperPath is the privileged helper a normal user builds through when
	// no user namespace can be made ("" = privhelper.DefaultPath); NoHelper
	// turns that fallback off.
	HelperPath string
	NoHelper   bool
}

func (b *Builder) runner() sysexec.Runner { return runner(b.Runner) }

func (b *Builder) lookPath(name string) (string, error) {
	if b.LookPath != nil {
		return b.LookPath(name)
	}
	return sysexec.LookPath(name)
}

// Progress steps reported by Build.
const (
	StepPrepare   = "prepare"
	StepBootstrap = "bootstrap"
	StepUnpack    = "unpack"
	StepPackages  = "packages" // extra packages installed over the base tree
	StepCustomize = "customize"
	StepPack      = "mkfs"
	StepDevices   = "devices"
	StepChecksum  = "checksum"
	StepCleanup   = "cleanup"
)

// The Debian bootstrap tools, in order of preference.
const (
	ToolMmdebstrap  = "mmdebstrap"
	ToolDebootstrap = "debootstrap"
)

// CacheKey names a cached base tree: it changes whenever anything that
// shapes the tree changes (tool, suite, mirror, packages, the script).
func CacheKey(tool, suite, mirror string, packages []string, script []byte) string {
	h := sha256.New()
	scriptSum := sha256.Sum256(script)
	fmt.Fprintf(h, "banger-rootfs-v2\ntool=%s\nsuite=%s\nmirror=%s\npackages=%s\nscript=%x\n",
		tool, suite, mirror, strings.Join(packages, ","), scriptSum)
	return hex.EncodeToString(h.Sum(nil))
}

// MkfsArgv is the command that packs dir into a new ext4 image of size bytes
// without mounting anything (pack-image.sh runs the same).
func MkfsArgv(dir, img string, size int64) []string {
	return []string{"mkfs.ext4", "-F", "-q", "-L", RootfsLabel, "-m", "1", "-d", dir, img, strconv.FormatInt(size/1024, 10) + "k"}
}

// sandboxArgv runs a script in private mount and PID namespaces: mounts made
// by the script vanish with it, and every process it started dies with it,
// even if banger is killed mid-build.
func sandboxArgv(script string) []string {
	return []string{"unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--", "bash", script}
}

// DebianTool is the bootstrap tool a Debian build uses here: mmdebstrap
// when installed, else debootstrap (root only), else "" with the fix.
func DebianTool(lookPath func(string) (string, error)) (string, error) {
	if lookPath == nil {
		lookPath = sysexec.LookPath
	}
	for _, t := range []string{ToolMmdebstrap, ToolDebootstrap} {
		if _, err := lookPath(t); err == nil {
			return t, nil
		}
	}
	return "", api.NewError(api.CodeFailedPrecondition, "a Debian image build needs mmdebstrap (or debootstrap), and neither is installed",
		"sudo apt-get install mmdebstrap uidmap")
}

// Build makes an image from req and returns it (not yet persisted: the
// caller records it). On failure nothing is left: no output file, no work
// directory, no mounts, no processes.
func (b *Builder) Build(ctx context.Context, req BuildRequest, progress func(api.Progress)) (img api.Image, err error) {
	if progress == nil {
		progress = func(api.Progress) {}
	}
	hostMirror := b.HostMirror
	if hostMirror == nil {
		hostMirror = HostDebianMirror
	}
	req = req.withDefaults(b.Layout, hostMirror)
	if err := req.Validate(); err != nil {
		return api.Image{}, err
	}
	sb, err := b.sandbox(ctx)
	if errors.Is(err, errUseHelper) {
		return b.buildWithHelper(ctx, req, progress)
	}
	if err != nil {
		return api.Image{}, err
	}
	tool, err := b.checkBuildHost(req, sb)
	if err != nil {
		return api.Image{}, err
	}
	if err := checkInputs(req); err != nil {
		return api.Image{}, err
	}
	if err := checkRootBuildDirs(req.WorkDir, b.Layout.BuildCacheDir(), filepath.Dir(req.OutputPath)); err != nil {
		return api.Image{}, err
	}
	recipe, err := newRecipe(req, tool, sb.Rootless(), b.Layout)
	if err != nil {
		return api.Image{}, err
	}

	if err := os.MkdirAll(req.WorkDir, 0o700); err != nil {
		return api.Image{}, fmt.Errorf("create work dir parent %s: %w", req.WorkDir, err)
	}
	work, err := os.MkdirTemp(req.WorkDir, "build-"+req.Name+"-")
	if err != nil {
		return api.Image{}, fmt.Errorf("create work dir under %s: %w", req.WorkDir, err)
	}
	defer func() {
		progress(api.Progress{Step: StepCleanup, Message: "removing " + work})
		// The build's own context may be cancelled: cleaning up must not be.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if rerr := sb.RemoveAll(cctx, work); rerr != nil {
			if err == nil {
				// The image is good; the leftover is only reported.
				progress(api.Progress{Step: StepCleanup, Message: "warning: " + rerr.Error()})
			} else {
				err = fmt.Errorf("%w; also: %v", err, rerr)
			}
		}
	}()

	scripts := filepath.Join(work, "scripts")
	if err := writeScripts(scripts); err != nil {
		return api.Image{}, err
	}
	progress(api.Progress{Step: StepPrepare, Message: recipe.describe + ", " + sb.Describe() + ", cache key " + recipe.key[:12]})

	base, err := b.cachedBase(ctx, sb, recipe, scripts, progress)
	if err != nil {
		return api.Image{}, err
	}
	sum, size, err := b.packImage(ctx, sb, req, recipe.packEnv, base, work, scripts, progress)
	if err != nil {
		return api.Image{}, err
	}
	suite := req.Suite
	if req.Distro == "void" {
		suite = req.Libc
	}
	return api.Image{
		Name:          req.Name,
		Distro:        req.Distro,
		Suite:         suite,
		RootfsPath:    req.OutputPath,
		SizeBytes:     size,
		SHA256:        sum,
		KernelVersion: req.KernelVersion,
		CreatedAt:     time.Now().UTC(),
	}, nil
}

// packImage makes req.OutputPath from a base tree archive: pack-image.sh
// (overlay or unpack, extra packages, customize.sh, mkfs.ext4 -d) in the
// sandbox, device nodes written with debugfs when rootless, then the
// checksum. work is the build's work directory (removed by the caller).
func (b *Builder) packImage(ctx context.Context, sb Sandbox, req BuildRequest, packEnv []string, base, work, scripts string, progress func(api.Progress)) (sum string, size int64, err error) {
	info, err := readArchive(base)
	if err != nil {
		return "", 0, err
	}
	need := info.Bytes
	for _, extra := range []string{req.AgentPath, req.ModulesDir} {
		if extra != "" {
			n, err := treeBytes(extra)
			if err != nil {
				return "", 0, err
			}
			need += n - 128<<20 // treeBytes adds the fixed headroom once more
		}
	}
	if need > req.SizeBytes {
		return "", 0, invalid(fmt.Sprintf("the image needs about %d MiB but its size is %d MiB", need>>20, req.SizeBytes>>20),
			fmt.Sprintf("pass a size of at least %d MiB (the file is sparse)", (need>>20)+1))
	}

	if err := os.MkdirAll(filepath.Dir(req.OutputPath), 0o700); err != nil {
		return "", 0, fmt.Errorf("create image dir: %w", err)
	}
	// The image file is made here, as the user, so the user owns it; the
	// sandbox only writes into it.
	tmpImg := filepath.Join(filepath.Dir(req.OutputPath), "."+filepath.Base(req.OutputPath)+".tmp-"+randHex(4))
	f, err := os.OpenFile(tmpImg, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", 0, fmt.Errorf("create the image file: %w", err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmpImg)
		}
	}()

	env := []string{
		"BANGER_BASE=" + base,
		"BANGER_ROOTFS=" + filepath.Join(work, "rootfs"),
		"BANGER_IMAGE=" + tmpImg,
		"BANGER_IMAGE_KB=" + strconv.FormatInt(req.SizeBytes/1024, 10),
		"BANGER_LABEL=" + RootfsLabel,
		"BANGER_DISTRO=" + req.Distro,
		"BANGER_PUBKEY=" + req.PublicKeyPath,
		"BANGER_AGENT=" + req.AgentPath,
		"BANGER_MODULES_DIR=" + req.ModulesDir,
		"BANGER_KERNEL_VERSION=" + req.KernelVersion,
	}
	env = append(env, packEnv...)
	// A user namespace cannot make device nodes: they are left out of the
	// unpacked tree and written into the image afterwards.
	exclude := ""
	if sb.Rootless() && len(info.Devices) > 0 {
		exclude = filepath.Join(work, "devices.exclude")
		if err := os.WriteFile(exclude, []byte(excludeList(info.Devices)), 0o644); err != nil {
			return "", 0, err
		}
		env = append(env, "BANGER_EXCLUDE="+exclude)
	}
	tree, err := b.cachedTree(ctx, sb, base, exclude, scripts, progress)
	if err != nil {
		return "", 0, err
	}
	env = append(env, "BANGER_LOWER="+tree)
	if tail, err := b.runScript(ctx, sb, Script{Dir: scripts, Name: ScriptPack, Env: env}, packStep, progress); err != nil {
		return "", 0, packError(req, tail, err)
	}
	if sb.Rootless() && len(info.Devices) > 0 {
		progress(api.Progress{Step: StepDevices, Message: fmt.Sprintf("writing %d device nodes into the image (debugfs)", len(info.Devices))})
		if err := writeDevices(ctx, b.runner(), tmpImg, info.Devices); err != nil {
			return "", 0, err
		}
	}

	progress(api.Progress{Step: StepChecksum, Message: "sha256"})
	sum, size, err = disk.SHA256(tmpImg)
	if err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmpImg, req.OutputPath); err != nil {
		return "", 0, fmt.Errorf("move the image into place: %w", err)
	}
	return sum, size, nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// packError explains a failed pack-image.sh: an extra package apt does not
// know is the user's to fix.
func packError(req BuildRequest, tail []string, err error) error {
	for _, line := range tail {
		if _, pkg, ok := strings.Cut(line, "Unable to locate package "); ok {
			return invalid(fmt.Sprintf("Debian %s has no package named: %s", req.Suite, strings.TrimSpace(pkg)),
				"check the package names (apt-cache show NAME on a Debian "+req.Suite+" host) and drop or fix them")
		}
	}
	// pack-image.sh names the package manager's command and exit status
	// on its last line; the lines before it are the manager's own.
	for i, line := range tail {
		what, ok := strings.CutPrefix(line, "pack: packages: ")
		if !ok {
			continue
		}
		last := slices.Delete(slices.Clone(tail), i, i+1)
		return api.NewError(api.CodeFailedPrecondition,
			fmt.Sprintf("installing the extra packages failed: %s; its last lines: %s", what, strings.Join(last, " / ")),
			"check the package names against the image's own repositories and that they are reachable from this host; nothing was made")
	}
	return fmt.Errorf("make the image from the base tree: %s: %w", strings.Join(tail, " / "), err)
}

// packStep names the progress step of a line of pack-image.sh's output.
func packStep(line string) string {
	switch {
	case strings.HasPrefix(line, "customize:"):
		return StepCustomize
	case strings.HasPrefix(line, "pack: mkfs"), line == "pack: done":
		return StepPack
	case strings.HasPrefix(line, "pack: unpacking"), strings.HasPrefix(line, "pack: mounting"), strings.HasPrefix(line, "pack: overlayfs"):
		return StepUnpack
	}
	return StepPackages // apt's output while extra packages are installed
}

// cachedBase returns the base tree archive of recipe, making it when
// missing. An archive is published by renaming a finished file, so a cache
// entry is always complete; a lock file keeps two builds from bootstrapping
// the same tree at once.
func (b *Builder) cachedBase(ctx context.Context, sb Sandbox, recipe rootfsRecipe, scripts string, progress func(api.Progress)) (string, error) {
	dir := filepath.Join(b.Layout.BuildCacheDir(), recipe.cacheDir)
	key := recipe.key
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create cache dir: %w", err)
	}
	archive := filepath.Join(dir, key+".tar")
	lock, err := os.OpenFile(filepath.Join(dir, key+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("open cache lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock cache entry %s: %w", archive, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	if st, err := os.Stat(archive); err == nil && st.Mode().IsRegular() {
		progress(api.Progress{Step: recipe.step, Message: "reusing cached tree " + key[:12]})
		return archive, nil
	}
	tmp := filepath.Join(dir, ".tmp-"+key[:12]+"-"+randHex(4))
	// The scripts write the archive at tmp.tar, may work in tmp (a tree),
	// and keep their temporary files in tmp.scratch (mmdebstrap's, which
	// a killed build would otherwise leave in /tmp).
	scratch := tmp + ".scratch"
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return "", fmt.Errorf("create scratch dir: %w", err)
	}
	env := append([]string{"BANGER_OUTPUT=" + tmp + ".tar", "BANGER_ROOTFS=" + tmp, "TMPDIR=" + scratch}, recipe.env...)
	if tail, err := b.runScript(ctx, sb, Script{Dir: scripts, Name: recipe.script, Env: env}, func(string) string { return recipe.step }, progress); err != nil {
		err = recipe.explain(tail, err)
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for _, p := range []string{tmp, tmp + ".tar", tmp + ".tar.tree", scratch} {
			if rerr := sb.RemoveAll(cctx, p); rerr != nil {
				err = fmt.Errorf("%w; also: %v", err, rerr)
			}
		}
		return "", err
	}
	if err := sb.RemoveAll(ctx, scratch); err != nil {
		return "", err
	}
	if err := os.Rename(tmp+".tar", archive); err != nil {
		_ = os.Remove(tmp + ".tar")
		return "", fmt.Errorf("publish cached tree: %w", err)
	}
	return archive, nil
}

// cachedTree returns the base tree archive unpacked (next to it, as
// <key>.tree), making it when missing: builds mount it read-only under an
// overlay instead of unpacking the archive each time. Published by rename,
// under the archive's lock.
func (b *Builder) cachedTree(ctx context.Context, sb Sandbox, archive, exclude, scripts string, progress func(api.Progress)) (string, error) {
	key := strings.TrimSuffix(archive, ".tar")
	tree := key + ".tree"
	if sb.Rootless() {
		// The tree's owners on disk are this user's subordinate ids: a tree
		// is only good for the same mapping.
		uid, subuid, subgid, err := idMapping()
		if err != nil {
			return "", err
		}
		tree = fmt.Sprintf("%s.tree-%d-%d-%d", key, uid, subuid, subgid)
	}
	lock, err := os.OpenFile(key+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("open cache lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock cache entry %s: %w", tree, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if dirExists(tree) {
		return tree, nil
	}
	tmp := filepath.Join(filepath.Dir(key), ".tmp-"+filepath.Base(key)[:12]+"-"+randHex(4)+".tree")
	env := []string{"BANGER_BASE=" + archive, "BANGER_ROOTFS=" + tmp}
	if exclude != "" {
		env = append(env, "BANGER_EXCLUDE="+exclude)
	}
	if tail, err := b.runScript(ctx, sb, Script{Dir: scripts, Name: ScriptUnpack, Env: env}, func(string) string { return StepUnpack }, progress); err != nil {
		err = fmt.Errorf("unpack the cached tree: %s: %w", strings.Join(tail, " / "), err)
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if rerr := sb.RemoveAll(cctx, tmp); rerr != nil {
			err = fmt.Errorf("%w; also: %v", err, rerr)
		}
		return "", err
	}
	if err := os.Rename(tmp, tree); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		_ = sb.RemoveAll(cctx, tmp)
		return "", fmt.Errorf("publish the cached tree: %w", err)
	}
	return tree, nil
}

// idMapping is the mapping a user namespace sandbox uses: the user's uid
// and the starts of its first subordinate uid and gid ranges (what unshare
// --map-auto maps).
func idMapping() (uid int, subuid, subgid int64, err error) {
	name, uid := CurrentUser()
	first := func(file string) (int64, error) {
		ranges, err := userns.ReadRanges(file)
		if err != nil {
			return 0, err
		}
		for _, r := range ranges {
			if r.Owner == name || r.Owner == strconv.Itoa(uid) {
				return r.Start, nil
			}
		}
		return 0, fmt.Errorf("%s has no subordinate ids for %s", file, name)
	}
	if subuid, err = first("/etc/subuid"); err != nil {
		return 0, 0, 0, err
	}
	if subgid, err = first("/etc/subgid"); err != nil {
		return 0, 0, 0, err
	}
	return uid, subuid, subgid, nil
}

// runScript runs one of our scripts in the sandbox, streaming every output
// line as a progress event of the step stepOf names. It returns what says
// why a failed script failed: the first few apt/mmdebstrap error lines ("E:
// ...", which mmdebstrap prints long before it gives up) and the last lines.
func (b *Builder) runScript(ctx context.Context, sb Sandbox, s Script, stepOf func(string) string, progress func(api.Progress)) ([]string, error) {
	const keep = 6
	var tail, errs []string
	lw := &lineWriter{emit: func(line string) {
		tail = append(tail, line)
		if len(tail) > keep {
			tail = tail[1:]
		}
		if strings.HasPrefix(line, "E: ") && len(errs) < keep {
			errs = append(errs, line)
		}
		progress(api.Progress{Step: stepOf(line), Message: line})
	}}
	s.Stdout, s.Stderr = lw.stream(), lw.stream()
	err := sb.Run(ctx, s)
	lw.flush()
	if err == nil {
		return tail, nil
	}
	out := errs
	for _, l := range tail {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out, err
}

// bootstrapError explains a failed Debian bootstrap: unknown packages are
// the user's to fix; anything else is most often the mirror.
func bootstrapError(req BuildRequest, tool string, tail []string, err error) error {
	for _, line := range tail {
		_, pkgs, ok := strings.Cut(line, "Couldn't find these debs:") // debootstrap
		if !ok {
			_, pkgs, ok = strings.Cut(line, "Unable to locate package ") // apt, under mmdebstrap
		}
		if ok {
			return invalid(fmt.Sprintf("Debian %s has no package named: %s", req.Suite, strings.TrimSpace(pkgs)),
				"check the package names (apt-cache show NAME on a Debian "+req.Suite+" host) and drop or fix them")
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: stopped: %w", tool, req.Suite, err)
	}
	return fmt.Errorf("%s %s from %s failed (%s): %w; check that the mirror is reachable and retry",
		tool, req.Suite, req.Mirror, strings.Join(tail, " / "), err)
}

// checkBuildHost reports missing tools and privileges before anything is
// made, and returns the bootstrap tool a Debian build uses.
func (b *Builder) checkBuildHost(req BuildRequest, sb Sandbox) (string, error) {
	type tool struct{ name, pkg string }
	var tools []tool
	chosen := ""
	if req.Distro == "void" {
		if req.FromTarball == "" {
			if err := checkXBPS(req.XBPSStatic); err != nil {
				return "", err
			}
		} else {
			tools = append(tools, tool{"tar", "tar"})
			for ext, t := range map[string]tool{".xz": {"xz", "xz-utils"}, ".zst": {"zstd", "zstd"}, ".lz4": {"lz4", "lz4"}, ".gz": {"gzip", "gzip"}} {
				if strings.HasSuffix(req.FromTarball, ext) {
					tools = append(tools, t)
				}
			}
		}
	} else {
		t, err := DebianTool(b.lookPath)
		if err != nil {
			return "", err
		}
		if t == ToolDebootstrap && sb.Rootless() {
			return "", api.NewError(api.CodeFailedPrecondition,
				"mmdebstrap is not installed, and its fallback debootstrap cannot build as a normal user (it makes device nodes and root-owned files)",
				"sudo apt-get install mmdebstrap uidmap; or build as root")
		}
		chosen = t
	}
	tools = append(tools, tool{"mkfs.ext4", "e2fsprogs"}, tool{"debugfs", "e2fsprogs"}, tool{"unshare", "util-linux"}, tool{"tar", "tar"}, tool{"bash", "bash"})
	if req.ModulesDir != "" {
		tools = append(tools, tool{"depmod", "kmod"})
	}
	for _, t := range tools {
		if _, err := b.lookPath(t.name); err != nil {
			return "", api.NewError(api.CodeFailedPrecondition, "image build needs "+t.name+", which is not installed",
				"sudo apt-get install "+t.pkg)
		}
	}
	return chosen, nil
}

// VoidRootless says what a Void build as a normal user can and cannot do.
const VoidRootless = "Void images build as a normal user in the user namespace too (xbps-install -r runs as root of the " +
	"namespace); a ROOTFS tarball only when it carries no device nodes, which a user namespace cannot make " +
	"(build a tarball that has some as root)"

// VoidNoHelper says why the privileged helper does not build Void images.
const VoidNoHelper = "the privileged helper builds Debian images only: a Void build runs the xbps-install.static " +
	"that config.toml names, which root must not run for a user"

// XBPSFix says how to install static xbps, which builds Void trees on any
// Linux host.
const XBPSFix = "download https://repo-default.voidlinux.org/static/xbps-static-latest.x86_64-musl.tar.xz, " +
	"extract all of it (mkdir -p /opt/xbps && tar -xJf FILE -C /opt/xbps: it carries the repository keys too) and set " +
	"xbps_static = \"/opt/xbps/usr/bin/xbps-install.static\" in banger's config.toml; or build offline with --from-tarball"

// checkXBPS makes sure a Void build from a repository can run xbps-install.
func checkXBPS(static string) error {
	if static != "" {
		if sysexec.CheckExecutable(static) != nil {
			return api.NewError(api.CodeFailedPrecondition,
				fmt.Sprintf("xbps_static %s is not an executable file, so a Void tree cannot be installed", static), XBPSFix)
		}
		return nil
	}
	if _, err := sysexec.LookPath("xbps-install"); err != nil {
		return api.NewError(api.CodeFailedPrecondition,
			"building a Void image from a repository needs xbps, which is not installed (no xbps_static set and no xbps-install in PATH)", XBPSFix)
	}
	return nil
}

// checkInputs makes sure the bundle files exist before a long bootstrap.
func checkInputs(req BuildRequest) error {
	if st, err := os.Stat(req.PublicKeyPath); err != nil || !st.Mode().IsRegular() {
		return invalid("public key "+req.PublicKeyPath+" is not a readable file", "pass the bundle's SSH public key (banger bundle show)")
	}
	if sysexec.CheckExecutable(req.AgentPath) != nil {
		return invalid("agent "+req.AgentPath+" is not an executable file", "rebuild the bundle: banger bundle build")
	}
	if req.ModulesDir != "" {
		if st, err := os.Stat(req.ModulesDir); err != nil || !st.IsDir() {
			return invalid("modules dir "+req.ModulesDir+" is not a directory", "rebuild the bundle: banger bundle build")
		}
	}
	if req.FromTarball != "" {
		f, err := os.Open(req.FromTarball)
		if err != nil {
			return invalid("tarball "+req.FromTarball+" is not readable: "+err.Error(), "pass a Void ROOTFS tarball, e.g. void-x86_64-ROOTFS-20250202.tar.xz")
		}
		st, err := f.Stat()
		f.Close()
		if err != nil || !st.Mode().IsRegular() {
			return invalid("tarball "+req.FromTarball+" is not a regular file", "pass a Void ROOTFS tarball, e.g. void-x86_64-ROOTFS-20250202.tar.xz")
		}
	}
	return nil
}

// writeScripts writes the embedded images/ tree to dir, scripts executable.
func writeScripts(dir string) error {
	return fs.WalkDir(images.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, p)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := fs.ReadFile(images.FS, p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") || strings.HasPrefix(p, "guest/banger-") {
			mode = 0o755
		}
		return os.WriteFile(dst, data, mode)
	})
}

// removeTree removes dir, but refuses when something is still mounted below
// it: removing through a mount would delete the host's files.
func removeTree(dir string) error {
	if m, err := MountsUnder(dir); err != nil {
		return err
	} else if len(m) > 0 {
		return fmt.Errorf("not removing %s: still mounted below it: %s (unmount them with umount -R, then remove it)", dir, strings.Join(m, ", "))
	}
	// Processes of a killed sandbox may still be exiting (and writing) for a
	// moment after it is gone: retry briefly before giving up.
	var err error
	for range 10 {
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("remove %s: %w (remove it by hand)", dir, err)
}

// MountsUnder lists the mount points at or below dir in this mount namespace.
func MountsUnder(dir string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	dir = filepath.Clean(dir)
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, nil
}

// unescapeMount decodes the octal escapes (\040 for space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// treeBytes estimates the ext4 space a tree needs: file data rounded up to
// 4 KiB blocks, an inode per entry, plus journal and metadata headroom.
func treeBytes(dir string) (int64, error) {
	var total, entries int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		entries++
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += (info.Size() + 4095) &^ 4095
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure %s: %w", dir, err)
	}
	return total + entries*256 + total/10 + 128<<20, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// lineWriter turns streamed output into one callback per line. stdout and
// stderr are copied by separate goroutines, hence the lock.
type lineWriter struct {
	mu   sync.Mutex
	emit func(string)
	bufs []*[]byte
}

type lineStream struct {
	w   *lineWriter
	buf *[]byte
}

func (w *lineWriter) stream() io.Writer {
	buf := new([]byte)
	w.mu.Lock()
	w.bufs = append(w.bufs, buf)
	w.mu.Unlock()
	return lineStream{w: w, buf: buf}
}

func (s lineStream) Write(p []byte) (int, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	*s.buf = append(*s.buf, p...)
	for {
		i := strings.IndexByte(string(*s.buf), '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string((*s.buf)[:i]), "\r")
		*s.buf = (*s.buf)[i+1:]
		if line != "" {
			s.w.emit(line)
		}
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.bufs {
		if len(*b) > 0 {
			w.emit(string(*b))
			*b = nil
		}
	}
}
