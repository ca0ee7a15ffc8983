package image

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/validate"
)

const (
	// DefaultSuite is the Debian suite built when none is asked for.
	DefaultSuite = "bookworm"
	// DefaultMirror is used when the host names no Debian mirror of its own.
	DefaultMirror = "http://deb.debian.org/debian"
	// DefaultSizeBytes fits the dev baseline (about 1 GiB unpacked) with room
	// for the user's packages; the image file is sparse, so unused space
	// costs nothing on the host.
	DefaultSizeBytes int64 = 4 << 30
	// MinSizeBytes is the smallest image worth building.
	MinSizeBytes int64 = 512 << 20
	// RootfsLabel is the ext4 label of every built image.
	RootfsLabel = "banger-rootfs"
	// DefaultVoidRepo is the Void repository used when the config names none
	// (musl builds use its /musl subdirectory, as every Void mirror does).
	DefaultVoidRepo = "https://repo-default.voidlinux.org/current"
	// DefaultLibc is the C library of Void images unless musl is asked for.
	DefaultLibc = "glibc"
)

// BuildRequest describes one image build. Zero fields take defaults.
type BuildRequest struct {
	Name          string
	Distro        string // "debian" (default) | "void"
	Suite         string // Debian suite, default DefaultSuite (Debian only)
	Mirror        string // default: the host's configured Debian mirror, else DefaultMirror (Debian only)
	Libc          string // Void: "glibc" (default) | "musl"
	FromTarball   string // Void: make the tree from this ROOTFS tarball instead of the repository
	VoidRepo      string // Void repository (URL or absolute path), default DefaultVoidRepo
	XBPSStatic    string // Void: the xbps-install to run (config xbps_static); "" = xbps-install from PATH
	SizeBytes     int64  // image size (sparse), default DefaultSizeBytes
	ExtraPackages []string
	PublicKeyPath string // SSH public key the image trusts for root (the bundle key)
	AgentPath     string // guest agent binary
	ModulesDir    string // optional kernel modules tree, installed as /lib/modules/<KernelVersion>
	KernelVersion string
	OutputPath    string // default <data>/images/<name>.ext4
	WorkDir       string // parent of the temporary build dir, default <cache>/build
}

var (
	suiteRe    = regexp.MustCompile(`^[a-z][a-z0-9-]{1,30}$`)
	debPkgRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	voidPkgRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
	kernelVrRe = regexp.MustCompile(`^[A-Za-z0-9._+-]+$`)
)

func invalid(msg, hint string) *api.Error { return api.NewError(api.CodeInvalidArgument, msg, hint) }

// validateName checks an image name with the one rule everything uses
// (validate.ImageName: the CLI, vm create, the TUI).
func validateName(name string) error {
	if err := validate.ImageName(name); err != nil {
		return invalid(err.Error(), "pick a name like debian-dev")
	}
	return nil
}

// withDefaults fills the zero fields from the layout and the host.
func (r BuildRequest) withDefaults(l paths.Layout, hostMirror func() string) BuildRequest {
	if r.Distro == "" {
		r.Distro = "debian"
	}
	switch r.Distro {
	case "debian":
		if r.Suite == "" {
			r.Suite = DefaultSuite
		}
		if r.Mirror == "" && hostMirror != nil {
			r.Mirror = hostMirror()
		}
		if r.Mirror == "" {
			r.Mirror = DefaultMirror
		}
	case "void":
		if r.Libc == "" {
			r.Libc = DefaultLibc
		}
		if r.VoidRepo == "" {
			r.VoidRepo = DefaultVoidRepo
		}
	}
	if r.SizeBytes == 0 {
		r.SizeBytes = DefaultSizeBytes
	}
	if r.OutputPath == "" && r.Name != "" {
		r.OutputPath = filepath.Join(l.ImagesDir(), r.Name+".ext4")
	}
	if r.WorkDir == "" {
		r.WorkDir = l.BuildCacheDir()
	}
	return r
}

// Validate checks a request after defaults are applied. Every error says
// what is wrong and how to fix it.
func (r BuildRequest) Validate() error {
	if err := validateName(r.Name); err != nil {
		return err
	}
	switch r.Distro {
	case "debian":
		if err := r.validateDebian(); err != nil {
			return err
		}
	case "void":
		if err := r.validateVoid(); err != nil {
			return err
		}
	default:
		return invalid(fmt.Sprintf("distro %q cannot be built", r.Distro), "use --distro debian or --distro void")
	}
	if r.SizeBytes < MinSizeBytes {
		return invalid(fmt.Sprintf("image size %d bytes is below the minimum of %d MiB", r.SizeBytes, MinSizeBytes>>20),
			fmt.Sprintf("omit the size for the default %d GiB (the file is sparse)", DefaultSizeBytes>>30))
	}
	if r.SizeBytes%4096 != 0 {
		return invalid(fmt.Sprintf("image size %d bytes is not a multiple of 4096", r.SizeBytes), "round the size to whole MiB, e.g. 4G")
	}
	for _, f := range []struct{ what, path, hint string }{
		{"public key", r.PublicKeyPath, "pass the runtime bundle's SSH public key (banger bundle show)"},
		{"agent", r.AgentPath, "pass the runtime bundle's banger-agent binary (banger bundle build)"},
		{"output path", r.OutputPath, "pass an absolute output path"},
		{"work dir", r.WorkDir, "pass an absolute work directory"},
	} {
		if f.path == "" {
			return invalid("no "+f.what+" given", f.hint)
		}
		if !filepath.IsAbs(f.path) {
			return invalid(fmt.Sprintf("%s %q is not an absolute path", f.what, f.path), f.hint)
		}
	}
	if r.ModulesDir != "" {
		if !filepath.IsAbs(r.ModulesDir) {
			return invalid(fmt.Sprintf("modules dir %q is not an absolute path", r.ModulesDir), "pass the bundle's modules directory")
		}
		if !kernelVrRe.MatchString(r.KernelVersion) {
			return invalid(fmt.Sprintf("kernel version %q is invalid", r.KernelVersion),
				"pass the version the modules belong to, e.g. 6.1.0-28-amd64 (the bundle records it)")
		}
	}
	return nil
}

func (r BuildRequest) validateDebian() error {
	if !suiteRe.MatchString(r.Suite) {
		return invalid(fmt.Sprintf("suite %q is not a Debian suite name", r.Suite), "use e.g. bookworm or trixie")
	}
	if !strings.HasPrefix(r.Mirror, "http://") && !strings.HasPrefix(r.Mirror, "https://") && !strings.HasPrefix(r.Mirror, "file://") ||
		strings.ContainsAny(r.Mirror, " \t\n'\"") {
		return invalid(fmt.Sprintf("mirror %q is not an http(s):// or file:// URL", r.Mirror), "use e.g. "+DefaultMirror)
	}
	if r.Libc != "" || r.FromTarball != "" {
		return invalid("--libc and --from-tarball are for Void images", "add --distro void, or drop them for a Debian image")
	}
	for _, p := range r.ExtraPackages {
		if !debPkgRe.MatchString(p) {
			return invalid(fmt.Sprintf("package name %q is not a Debian package name", p),
				"Debian package names use lowercase letters, digits, '+', '-' and '.', e.g. build-essential")
		}
	}
	return nil
}

func (r BuildRequest) validateVoid() error {
	if r.Suite != "" {
		return invalid(fmt.Sprintf("suite %q: Void is a rolling release and has no suites", r.Suite), "drop --suite for a Void image")
	}
	if r.Libc != "glibc" && r.Libc != "musl" {
		return invalid(fmt.Sprintf("libc %q is not glibc or musl", r.Libc), "use --libc glibc (the default) or --libc musl")
	}
	repoOK := strings.HasPrefix(r.VoidRepo, "http://") || strings.HasPrefix(r.VoidRepo, "https://") || filepath.IsAbs(r.VoidRepo)
	if !repoOK || strings.ContainsAny(r.VoidRepo, " \t\n'\"") {
		return invalid(fmt.Sprintf("Void repository %q is not an http(s):// URL or an absolute path", r.VoidRepo),
			"set void_repo in config.toml to e.g. "+DefaultVoidRepo)
	}
	if r.XBPSStatic != "" && !filepath.IsAbs(r.XBPSStatic) {
		return invalid(fmt.Sprintf("xbps_static %q is not an absolute path", r.XBPSStatic),
			"set xbps_static in config.toml to the absolute path of xbps-install.static, e.g. /opt/xbps/usr/bin/xbps-install.static")
	}
	if r.FromTarball != "" && !filepath.IsAbs(r.FromTarball) {
		return invalid(fmt.Sprintf("tarball %q is not an absolute path", r.FromTarball), "pass the tarball's absolute path")
	}
	for _, p := range r.ExtraPackages {
		if !voidPkgRe.MatchString(p) {
			return invalid(fmt.Sprintf("package name %q is not a Void package name", p),
				"Void package names use letters, digits, '.', '_', '+' and '-', e.g. base-devel (xbps-query -Rs NAME searches)")
		}
	}
	return nil
}
