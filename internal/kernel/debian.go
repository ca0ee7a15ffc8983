package kernel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/banger-dev/banger/internal/sysexec"
)

// DefaultMetaPackage is Debian's package that depends on the current kernel.
const DefaultMetaPackage = "linux-image-amd64"

var packageName = regexp.MustCompile(`^linux-image-[a-z0-9][a-z0-9.+~-]*$`)

// ValidPackageName reports whether name looks like a Debian kernel image
// package; it keeps arbitrary strings (options, paths) away from apt.
func ValidPackageName(name string) error {
	if !packageName.MatchString(name) {
		return fmt.Errorf("%q is not a Debian kernel package name: expected linux-image-<version>-<flavour>, e.g. linux-image-6.1.0-27-amd64", name)
	}
	return nil
}

// ResolvePackage asks apt which versioned kernel package the meta package
// (e.g. linux-image-amd64) currently depends on.
func ResolvePackage(ctx context.Context, run sysexec.Runner, meta string) (string, error) {
	if err := ValidPackageName(meta); err != nil {
		return "", err
	}
	res, err := run.Run(ctx, sysexec.Cmd{Argv: []string{"apt-cache", "depends", meta}})
	if err != nil {
		return "", fmt.Errorf("resolving the kernel package behind %s: %w (is this a Debian system with apt lists? try `apt-get update`, or pass the package name explicitly)", meta, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(res.Stdout))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		line = strings.TrimPrefix(line, "|")
		if dep, ok := strings.CutPrefix(line, "Depends: "); ok {
			dep = strings.TrimSpace(dep)
			if strings.HasPrefix(dep, "linux-image-") && ValidPackageName(dep) == nil {
				return dep, nil
			}
		}
	}
	return "", fmt.Errorf("apt-cache depends %s names no linux-image-* package (run `apt-get update`, or pass the package name explicitly)", meta)
}

// DownloadPackage returns the path of pkg's .deb in cacheDir, fetching it
// with `apt-get download` (no root needed) when it is not cached yet. The
// download happens in a private directory and is moved into the cache only
// when complete, so an interrupted download is never mistaken for a package.
func DownloadPackage(ctx context.Context, run sysexec.Runner, pkg, cacheDir string) (string, error) {
	if err := ValidPackageName(pkg); err != nil {
		return "", err
	}
	if deb, ok := cachedDeb(cacheDir, pkg); ok {
		return deb, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("creating the download cache: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, ".download-")
	if err != nil {
		return "", fmt.Errorf("creating the download cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := run.Run(ctx, sysexec.Cmd{Argv: []string{"apt-get", "download", pkg}, Dir: tmp}); err != nil {
		return "", fmt.Errorf("downloading %s: %w (check network access to the Debian mirror and run `apt-get update`)", pkg, err)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d matching .deb files in %s, want 1", pkg, len(debs), tmp)
	}
	dst := filepath.Join(cacheDir, filepath.Base(debs[0]))
	if err := os.Rename(debs[0], dst); err != nil {
		return "", fmt.Errorf("moving the download into the cache: %w", err)
	}
	return dst, nil
}

// cachedDeb finds an already downloaded .deb of pkg (newest name wins).
func cachedDeb(cacheDir, pkg string) (string, bool) {
	debs, _ := filepath.Glob(filepath.Join(cacheDir, pkg+"_*.deb"))
	if len(debs) == 0 {
		return "", false
	}
	sort.Strings(debs)
	return debs[len(debs)-1], true
}

// Unpacked is a kernel package extracted into a directory.
type Unpacked struct {
	Root       string // the directory dpkg-deb extracted into
	Version    string // e.g. 6.1.0-27-amd64
	Vmlinuz    string // boot/vmlinuz-<version>
	ModulesDir string // lib/modules/<version> (or usr/lib/modules/<version>)
}

// UnpackPackage extracts a kernel .deb into dest with `dpkg-deb -x` and
// locates its vmlinuz and modules tree.
func UnpackPackage(ctx context.Context, run sysexec.Runner, deb, dest string) (*Unpacked, error) {
	if _, err := run.Run(ctx, sysexec.Cmd{Argv: []string{"dpkg-deb", "-x", deb, dest}}); err != nil {
		return nil, fmt.Errorf("unpacking %s: %w (delete the file to download it again)", deb, err)
	}
	return FindUnpacked(dest)
}

// FindUnpacked locates vmlinuz and the modules tree in an extracted package.
func FindUnpacked(root string) (*Unpacked, error) {
	var modBase string
	for _, cand := range []string{"lib/modules", "usr/lib/modules"} {
		if st, err := os.Stat(filepath.Join(root, cand)); err == nil && st.IsDir() {
			modBase = filepath.Join(root, cand)
			break
		}
	}
	if modBase == "" {
		return nil, fmt.Errorf("%s has no lib/modules directory: not a kernel image package", root)
	}
	ents, err := os.ReadDir(modBase)
	if err != nil {
		return nil, err
	}
	var vers []string
	for _, e := range ents {
		if e.IsDir() {
			vers = append(vers, e.Name())
		}
	}
	if len(vers) != 1 {
		return nil, fmt.Errorf("%s holds %d kernel versions (%s), want exactly 1", modBase, len(vers), strings.Join(vers, ", "))
	}
	u := &Unpacked{Root: root, Version: vers[0], ModulesDir: filepath.Join(modBase, vers[0])}
	u.Vmlinuz = filepath.Join(root, "boot", "vmlinuz-"+u.Version)
	if _, err := os.Stat(u.Vmlinuz); err != nil {
		return nil, fmt.Errorf("kernel package has no boot/vmlinuz-%s: %w", u.Version, err)
	}
	return u, nil
}

// Depmod writes modules.dep (and the other index files) for the modules tree
// at <base>/lib/modules/<version>. Debian's package ships without them: its
// postinst runs depmod on install.
func Depmod(ctx context.Context, run sysexec.Runner, base, version string) error {
	prog, err := findSbin("depmod")
	if err != nil {
		return fmt.Errorf("%w (install the kmod package)", err)
	}
	if _, err := run.Run(ctx, sysexec.Cmd{Argv: []string{prog, "-b", base, version}}); err != nil {
		return fmt.Errorf("indexing kernel modules: %w", err)
	}
	return nil
}

// findSbin looks a program up in PATH and then in the sbin directories a
// non-root user's PATH often lacks.
func findSbin(name string) (string, error) {
	if p, err := sysexec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if sysexec.CheckExecutable(p) == nil {
			return p, nil
		}
	}
	return "", errors.New(name + " not found in PATH, /usr/sbin or /sbin")
}
