package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/ociimage"
)

// Progress steps of an import.
const (
	StepResolve = "resolve" // find the image and its digest
	StepFlatten = "flatten" // layers into one tree archive, cached by digest
)

// ImportRequest describes one `image import`. Zero fields take defaults.
type ImportRequest struct {
	Name      string
	SizeBytes int64 // default: DefaultSizeBytes, more when the tree needs it
	// Packages are installed over the image's tree with its own package
	// manager (apt-get, dnf or apk; see treeKind.PackageTool).
	Packages      []string
	PublicKeyPath string
	AgentPath     string
	ModulesDir    string
	KernelVersion string
	OutputPath    string // default <data>/images/<name>.ext4
	WorkDir       string // default <cache>/build
}

// Origin is where an imported image came from, kept beside its rootfs
// (<rootfs>.origin.json) and shown by `image show`.
type Origin struct {
	Source string `json:"source"`
	Digest string `json:"digest"`
	Init   string `json:"init"` // how it boots: "systemd" or "agent" (banger-agent as PID 1)
	// NoSSH: an agent-booted image without sshd; the VM is running once
	// its agent answers. An agent-booted image with /usr/sbin/sshd has it
	// started by PID 1 and its VMs wait for it as the systemd images' do.
	NoSSH bool `json:"no_ssh,omitempty"`
	// Packages installed over it (--packages).
	Packages []string `json:"packages,omitempty"`
}

// OriginPath is the origin file of an image's rootfs.
func OriginPath(rootfs string) string { return rootfs + ".origin.json" }

// ReadOrigin reads an imported image's origin; ok is false for images not
// imported.
func ReadOrigin(rootfs string) (Origin, bool) {
	data, err := os.ReadFile(OriginPath(rootfs))
	if err != nil {
		return Origin{}, false
	}
	var o Origin
	if json.Unmarshal(data, &o) != nil || o.Digest == "" {
		return Origin{}, false
	}
	return o, true
}

// OpenRef resolves an image reference to one linux/amd64 image, its layers
// cached by digest under the build cache.
func (b *Builder) OpenRef(ctx context.Context, ref string) (*ociimage.Image, error) {
	r, err := ociimage.ParseRef(ref)
	if err != nil {
		return nil, invalid(err.Error(), "e.g. banger image import 127.0.0.1:5000/app:v1 --name app")
	}
	img, err := ociimage.Open(ctx, r, ociimage.Options{LayerCache: filepath.Join(b.Layout.BuildCacheDir(), "oci", "layers")})
	if err != nil {
		return nil, api.NewError(api.CodeFailedPrecondition, err.Error(),
			"check the reference; a private registry needs `docker login` (banger reads ~/.docker/config.json)")
	}
	return img, nil
}

// Import makes an image from an opened OCI image: its layers flattened
// into a tree archive (cached by digest), banger's guest layer added by
// customize.sh, packed with mkfs.ext4 -d as a build packs, rootless where
// the build would be. It returns the image (not yet persisted) and writes
// its origin beside it. On failure nothing is left but the cache.
func (b *Builder) Import(ctx context.Context, req ImportRequest, img *ociimage.Image, progress func(api.Progress)) (api.Image, error) {
	if progress == nil {
		progress = func(api.Progress) {}
	}
	if err := validateName(req.Name); err != nil {
		return api.Image{}, err
	}
	for _, p := range req.Packages {
		if !pkgNameRe.MatchString(p) {
			return api.Image{}, invalid(fmt.Sprintf("%q is not a package name", p), "use names like curl or python3")
		}
	}
	breq := BuildRequest{Name: req.Name, Distro: "debian", SizeBytes: req.SizeBytes, OutputPath: req.OutputPath, WorkDir: req.WorkDir,
		PublicKeyPath: req.PublicKeyPath, AgentPath: req.AgentPath, ModulesDir: req.ModulesDir, KernelVersion: req.KernelVersion}
	if breq.OutputPath == "" {
		breq.OutputPath = filepath.Join(b.Layout.ImagesDir(), req.Name+".ext4")
	}
	if breq.WorkDir == "" {
		breq.WorkDir = b.Layout.BuildCacheDir()
	}
	for _, p := range []string{breq.PublicKeyPath, breq.AgentPath} {
		if _, err := os.Stat(p); err != nil {
			return api.Image{}, api.NewError(api.CodeFailedPrecondition, "the bundle is incomplete: "+err.Error(), "banger bundle build --force")
		}
	}
	archive, err := b.ociArchive(img, progress)
	if err != nil {
		return api.Image{}, err
	}
	kind, err := bootKind(archive)
	if err != nil {
		return api.Image{}, err
	}
	init := kind.Init
	packEnv, err := b.packagesEnv(kind, req.Packages)
	if err != nil {
		return api.Image{}, err
	}
	sb, err := b.sandbox(ctx)
	if err != nil {
		return api.Image{}, err
	}
	info, err := readArchive(archive)
	if err != nil {
		return api.Image{}, err
	}
	if breq.SizeBytes == 0 {
		breq.SizeBytes = max(DefaultSizeBytes, info.Bytes+1<<30)
	}
	if err := os.MkdirAll(breq.WorkDir, 0o700); err != nil {
		return api.Image{}, fmt.Errorf("create work dir parent %s: %w", breq.WorkDir, err)
	}
	work, err := os.MkdirTemp(breq.WorkDir, "import-"+req.Name+"-")
	if err != nil {
		return api.Image{}, fmt.Errorf("create work dir under %s: %w", breq.WorkDir, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if rerr := sb.RemoveAll(cctx, work); rerr != nil {
			progress(api.Progress{Step: StepCleanup, Message: "warning: " + rerr.Error()})
		}
	}()
	scripts := filepath.Join(work, "scripts")
	if err := writeScripts(scripts); err != nil {
		return api.Image{}, err
	}
	if init == InitAgent {
		// What PID 1 runs: the image's ENTRYPOINT/CMD with its ENV,
		// WORKDIR and USER (guestinit.Config's fields).
		cfg := map[string]any{"Entrypoint": img.Config.Entrypoint, "Cmd": img.Config.Cmd, "Env": img.Config.Env,
			"WorkingDir": img.Config.WorkingDir, "User": img.Config.User}
		data, _ := json.MarshalIndent(cfg, "", "  ")
		cfgPath := filepath.Join(work, "oci-config.json")
		if err := os.WriteFile(cfgPath, append(data, '\n'), 0o644); err != nil {
			return api.Image{}, err
		}
		packEnv = append(packEnv, "BANGER_INIT=agent", "BANGER_OCI_CONFIG="+cfgPath)
	}
	progress(api.Progress{Step: StepPrepare, Message: fmt.Sprintf("%s (%s), boots %s, %s", img.Ref, img.Digest, init, sb.Describe())})
	sum, size, err := b.packImage(ctx, sb, breq, packEnv, archive, work, scripts, progress)
	if err != nil {
		return api.Image{}, err
	}
	data, _ := json.MarshalIndent(Origin{Source: img.Ref.String(), Digest: img.Digest, Init: init, NoSSH: init == InitAgent && !kind.HasSSHD, Packages: req.Packages}, "", "  ")
	if err := os.WriteFile(OriginPath(breq.OutputPath), append(data, '\n'), 0o644); err != nil {
		os.Remove(breq.OutputPath)
		return api.Image{}, err
	}
	return api.Image{
		Name: req.Name, Distro: "oci", RootfsPath: breq.OutputPath, SizeBytes: size, SHA256: sum,
		KernelVersion: req.KernelVersion, CreatedAt: time.Now().UTC(),
		Source: img.Ref.String(), Digest: img.Digest,
	}, nil
}

// ociArchive returns the image's flattened tree archive, cached under
// <build cache>/oci/<digest>.tar (published by rename, under a lock), so a
// re-import of the same digest does not read the layers again.
func (b *Builder) ociArchive(img *ociimage.Image, progress func(api.Progress)) (string, error) {
	dir := filepath.Join(b.Layout.BuildCacheDir(), "oci")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	key := strings.ReplaceAll(img.Digest, ":", "-")
	archive := filepath.Join(dir, key+".tar")
	lock, err := os.OpenFile(filepath.Join(dir, key+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("open cache lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock cache entry %s: %w", archive, err)
	}
	// Released before packImage locks the same entry for its unpacked tree.
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if st, err := os.Stat(archive); err == nil && st.Mode().IsRegular() {
		progress(api.Progress{Step: StepFlatten, Message: "reusing the cached tree of " + img.Digest})
		return archive, nil
	}
	progress(api.Progress{Step: StepFlatten, Message: "reading the layers of " + img.Ref.String() + " (whiteouts applied)"})
	f, err := os.CreateTemp(dir, ".tmp-"+key[:min(len(key), 19)]+"-*.tar")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	st, err := ociimage.Flatten(img.Img, f, dir)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("flatten %s: %w", img.Ref, err)
	}
	if err := os.Rename(tmp, archive); err != nil {
		os.Remove(tmp)
		return "", err
	}
	progress(api.Progress{Step: StepFlatten, Message: fmt.Sprintf("%d entries, %d MiB of files", st.Entries, st.Bytes>>20)})
	return archive, nil
}

// pkgNameRe is a package name any of the package managers knows: apk's and
// rpm's names have capitals and underscores, which Debian's do not
// (debPkgRe is checked too for apt images). Never an option or a path.
var pkgNameRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_+.-]*$`)

// Package managers --packages runs inside an image's tree, by the path
// bootKind found them at.
const (
	toolAptGet = "/usr/bin/apt-get"
	toolDnf    = "/usr/bin/dnf"
	toolApk    = "/sbin/apk"
	toolApkUsr = "/usr/sbin/apk"
)

// packagesEnv is pack-image.sh's environment for installing packages with
// the image's own package manager, or a clear refusal when it has none.
func (b *Builder) packagesEnv(kind treeKind, packages []string) ([]string, error) {
	if len(packages) == 0 {
		return nil, nil
	}
	env := []string{"BANGER_EXTRA_PACKAGES=" + strings.Join(packages, ","), "BANGER_PACKAGE_TOOL=" + kind.PackageTool}
	switch kind.PackageTool {
	case "":
		return nil, api.NewError(api.CodeFailedPrecondition,
			"--packages needs a package manager in the image: apt-get (/usr/bin/apt-get), dnf (/usr/bin/dnf) or apk (/sbin/apk), and this image has none",
			"install them in the image itself (RUN ... in its Dockerfile), or drop --packages")
	case toolAptGet:
		for _, p := range packages {
			if !debPkgRe.MatchString(p) {
				return nil, invalid(fmt.Sprintf("%q is not a Debian package name (lower case letters, digits, +, - and .)", p), "use names like curl or python3")
			}
		}
		env = append(env, "BANGER_APT_CACHE="+AptCacheDir(b.Layout))
	}
	return env, nil
}

// How an imported image boots (Origin.Init).
const (
	InitSystemd = "systemd" // its own systemd, with banger's units
	InitAgent   = "agent"   // banger-agent as PID 1 (images without systemd)
)

// treeKind is what bootKind learns from an image's tree.
type treeKind struct {
	Init string
	// PackageTool is the package manager --packages runs: toolAptGet,
	// toolDnf, toolApk or toolApkUsr, the first the tree has; "" for none.
	PackageTool string
	HasSSHD     bool
}

// bootKind says how an image's tree boots: InitSystemd when it has systemd
// and bash (banger's guest layer for systemd images is units and bash
// scripts); InitAgent when it has no systemd (no init at all, as container
// images are, or one such as busybox's that only a container would have
// skipped): banger-agent becomes its /sbin/init. systemd without bash is
// refused, saying so.
func bootKind(archive string) (treeKind, error) {
	f, err := os.Open(archive)
	if err != nil {
		return treeKind{}, err
	}
	defer f.Close()
	have := map[string]bool{}
	links := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return treeKind{}, err
		}
		n := strings.TrimPrefix(strings.TrimSuffix(h.Name, "/"), "./")
		have[n] = true
		if h.Typeflag == tar.TypeSymlink {
			links[n] = h.Linkname
		}
	}
	// usrmerge trees make /bin and /lib links to usr/bin and usr/lib.
	exists := func(p string) bool {
		if have[p] {
			return true
		}
		for _, top := range []string{"bin", "lib", "sbin"} {
			if rest, ok := strings.CutPrefix(p, top+"/"); ok {
				if t, isLink := links[top]; isLink && (t == "usr/"+top || t == "/usr/"+top) {
					return have[path.Join("usr", top, rest)]
				}
			}
		}
		return false
	}
	systemd := exists("lib/systemd/systemd") || exists("usr/lib/systemd/systemd")
	bash := exists("bin/bash") || exists("usr/bin/bash")
	k := treeKind{HasSSHD: exists("usr/sbin/sshd")}
	for _, tool := range []string{toolAptGet, toolDnf, toolApk, toolApkUsr} {
		if exists(tool[1:]) {
			k.PackageTool = tool
			break
		}
	}
	switch {
	case systemd && bash:
		k.Init = InitSystemd
		return k, nil
	case !systemd:
		if !have["etc"] {
			return treeKind{}, api.NewError(api.CodeFailedPrecondition,
				"the image has no /etc directory, which banger-agent as its init needs (/etc/hostname, /etc/hosts)",
				"add one to the image (e.g. COPY or RUN mkdir /etc in its Dockerfile)")
		}
		k.Init = InitAgent
		return k, nil
	default:
		return treeKind{}, api.NewError(api.CodeFailedPrecondition, "the image has systemd but no bash, which banger's guest layer needs",
			"install bash in the image")
	}
}

// withOrigin adds an imported image's source and digest to its record.
func withOrigin(img api.Image) api.Image {
	if o, ok := ReadOrigin(img.RootfsPath); ok {
		img.Source, img.Digest = o.Source, o.Digest
	}
	return img
}

// Import makes an image from an OCI image and records it. A re-import of
// the digest the image already has returns it at once; another digest
// replaces it only with p.Force.
func (s *Service) Import(ctx context.Context, p api.ImageImportParams, progress func(api.Progress)) (api.Image, error) {
	if progress == nil {
		progress = func(api.Progress) {}
	}
	if err := validateName(p.Name); err != nil {
		return api.Image{}, err
	}
	if p.SizeBytes != nil && *p.SizeBytes < MinSizeBytes {
		return api.Image{}, invalid(fmt.Sprintf("size %d MiB is below the minimum of %d MiB", *p.SizeBytes>>20, MinSizeBytes>>20), "")
	}
	progress(api.Progress{Step: StepResolve, Message: p.Ref})
	img, err := s.Builder.OpenRef(ctx, p.Ref)
	if err != nil {
		return api.Image{}, err
	}
	progress(api.Progress{Step: StepResolve, Message: img.Digest})
	if existing, err := s.Get(ctx, p.Name); err == nil {
		o, _ := ReadOrigin(existing.RootfsPath)
		if existing.Digest == img.Digest && existing.Source == img.Ref.String() && slices.Equal(o.Packages, p.Packages) {
			progress(api.Progress{Step: StepResolve, Message: "image " + p.Name + " is already " + img.Digest})
			return existing, nil
		}
		if !p.Force {
			what := "built " + existing.CreatedAt.Format(time.RFC3339)
			if existing.Digest != "" {
				what = "imported from " + existing.Source + " " + existing.Digest
			}
			return api.Image{}, api.NewError(api.CodeAlreadyExists, fmt.Sprintf("image %q already exists (%s)", p.Name, what),
				"replace it with --force (VMs keep /root; their system disk is re-cloned at next start)")
		}
	}
	b, err := s.Bundle()
	if err != nil {
		return api.Image{}, err
	}
	if s.BuildLock != nil {
		s.BuildLock.Lock()
		defer s.BuildLock.Unlock()
	}
	req := ImportRequest{Name: p.Name, Packages: p.Packages, PublicKeyPath: b.SSHPubKeyPath, AgentPath: b.AgentPath,
		ModulesDir: b.ModulesDir, KernelVersion: b.KernelVersion}
	if p.SizeBytes != nil {
		req.SizeBytes = *p.SizeBytes
	}
	out, err := s.Builder.Import(ctx, req, img, progress)
	if err != nil {
		return api.Image{}, err
	}
	saved, err := s.Store.PutImage(ctx, out, p.Force)
	if err != nil {
		return api.Image{}, mapErr(err)
	}
	return withOrigin(saved), nil
}
