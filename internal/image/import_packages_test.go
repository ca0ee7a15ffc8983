package image_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/image"
	"github.com/banger-dev/banger/internal/image/imagetest"
	"github.com/banger-dev/banger/internal/ociimage/ocitest"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/testneed"
)

// packagesEnv is what the --packages tests share: root (the sandbox
// unpacks and chroots), the shared key and agent, a fresh layout.
type packagesEnv struct {
	t      *testing.T
	ctx    context.Context
	b      *image.Builder
	layout paths.Layout
	in     imagetest.Image
	root   string
}

func newPackagesEnv(t *testing.T) *packagesEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: --packages runs a package manager in an unpacked tree; run without -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: run as root (the import sandbox chroots into the tree)")
	}
	in, _ := imagetest.Inputs(t)
	root := t.TempDir()
	l := paths.UnderRoot(root)
	l.CacheDir = filepath.Join(root, "cache")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	t.Cleanup(cancel)
	return &packagesEnv{t: t, ctx: ctx, b: &image.Builder{Layout: l}, layout: l, in: in, root: root}
}

// ociLayoutRef writes an image of the given layers to an OCI layout and
// returns its reference.
func ociLayoutRef(t *testing.T, cfg v1.Config, layers ...v1.Layer) string {
	t.Helper()
	return "oci:" + ocitest.Layout(t, "v1", ocitest.Image(t, cfg, layers...)) + ":v1"
}

// importPackages imports ref as name with packages.
func (e *packagesEnv) importPackages(ref, name string, packages ...string) (api.Image, []string, error) {
	e.t.Helper()
	opened, err := e.b.OpenRef(e.ctx, ref)
	if err != nil {
		e.t.Fatal(err)
	}
	var steps []string
	req := image.ImportRequest{Name: name, Packages: packages, PublicKeyPath: e.in.PublicKeyPath, AgentPath: e.in.AgentPath,
		OutputPath: filepath.Join(e.root, "images", name+".ext4")}
	out, err := e.b.Import(e.ctx, req, opened, func(p api.Progress) { steps = append(steps, p.Step+": "+p.Message) })
	return out, steps, err
}

// debugfs runs one debugfs request against an image.
func (e *packagesEnv) debugfs(img, req string) string {
	e.t.Helper()
	res, err := sysexec.Exec{}.Run(e.ctx, sysexec.Cmd{Argv: []string{"debugfs", "-R", req, img}})
	if err != nil {
		e.t.Fatalf("debugfs %s: %v", req, err)
	}
	return string(res.Stdout)
}

// checkNothingLeft fails when a failed import of name left an image, its
// origin, a temporary image file or a work directory.
func (e *packagesEnv) checkNothingLeft(name string) {
	e.t.Helper()
	out := filepath.Join(e.root, "images", name+".ext4")
	for _, p := range []string{out, image.OriginPath(out)} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			e.t.Errorf("the failed import left %s (%v)", p, err)
		}
	}
	if tmp, _ := filepath.Glob(filepath.Join(e.root, "images", "."+name+".ext4.tmp-*")); len(tmp) > 0 {
		e.t.Errorf("the failed import left %v", tmp)
	}
	if work, _ := filepath.Glob(filepath.Join(e.layout.BuildCacheDir(), "import-*")); len(work) > 0 {
		e.t.Errorf("the failed import left its work directory %v", work)
	}
	if m, err := image.MountsUnder(e.root); err != nil || len(m) > 0 {
		e.t.Errorf("the failed import left mounts under %s: %v %v", e.root, m, err)
	}
}

// apkStandin behaves like Alpine's `apk add --no-cache PKG...` (apk-tools'
// command line, messages and exit status), which this host cannot have:
// Alpine is not packaged in Debian 12 and its mirrors are unreachable. Its
// "repository" is /var/lib/apk-standin (PKG: the file the package
// installs as /usr/share/PKG/installed). It records its arguments and the
// resolv.conf it saw.
const apkStandin = `#!/bin/sh
echo "$*" >>/var/log/apk-standin.argv
cat /etc/resolv.conf >/var/log/apk-standin.resolv
if [ "$1" != add ]; then
	echo "apk-standin: only 'add' is supported" >&2
	exit 1
fi
shift
pkgs=
for a in "$@"; do
	case $a in
	--no-cache) ;;
	-*)
		echo "apk: unrecognized option '$a'" >&2
		exit 1
		;;
	*) pkgs="$pkgs $a" ;;
	esac
done
missing=
for p in $pkgs; do
	[ -f "/var/lib/apk-standin/$p" ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "ERROR: unable to select packages:" >&2
	for p in $missing; do
		echo "  $p (no such package):" >&2
		echo "    required by: world[$p]" >&2
	done
	exit 1
fi
n=$(echo $pkgs | wc -w)
i=0
mkdir -p /etc/apk
for p in $pkgs; do
	i=$((i + 1))
	echo "($i/$n) Installing $p (1.0-r0)"
	mkdir -p "/usr/share/$p"
	cp "/var/lib/apk-standin/$p" "/usr/share/$p/installed"
	echo "$p" >>/etc/apk/world
done
echo "OK: $n packages"
`

// TestImportPackagesWithApk: an init-less busybox image with apk (the
// stand-in above) gets its --packages through `apk add --no-cache` run in
// the unpacked tree, with the host's resolver; an unknown package fails
// the import with apk's command, exit status and message, leaving nothing.
func TestImportPackagesWithApk(t *testing.T) {
	e := newPackagesEnv(t)
	const busybox = "/bin/busybox"
	bin, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatalf("%s (Debian's busybox-static) builds the test image: %v", busybox, err)
	}
	res, err := sysexec.Exec{}.Run(e.ctx, sysexec.Cmd{Argv: []string{busybox, "--list"}})
	if err != nil {
		t.Fatal(err)
	}
	list := res.Stdout
	entries := []ocitest.Entry{ocitest.Dir("bin", 0o755), ocitest.Dir("sbin", 0o755), ocitest.Dir("etc", 0o755), ocitest.Dir("var", 0o755),
		ocitest.Dir("var/log", 0o755), ocitest.Dir("var/lib", 0o755), ocitest.Dir("var/lib/apk-standin", 0o755),
		ocitest.Dir("usr", 0o755), ocitest.Dir("usr/share", 0o755),
		ocitest.File("bin/busybox", string(bin), 0o755),
		ocitest.File("sbin/apk", apkStandin, 0o755),
		ocitest.File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
		ocitest.File("var/lib/apk-standin/hello", "hello from the apk stand-in\n", 0o644),
		ocitest.File("var/lib/apk-standin/py3-x_y", "another package\n", 0o644),
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" && applet != "init" && applet != "linuxrc" {
			entries = append(entries, ocitest.Symlink("bin/"+applet, "busybox"))
		}
	}
	ref := ociLayoutRef(t, v1.Config{Cmd: []string{"sleep", "3600"}}, ocitest.Layer(t, entries...))

	out, steps, err := e.importPackages(ref, "alp", "hello", "py3-x_y")
	if err != nil {
		t.Fatalf("import with apk packages: %v\n%s", err, strings.Join(steps, "\n"))
	}
	if o, ok := image.ReadOrigin(out.RootfsPath); !ok || !slices.Equal(o.Packages, []string{"hello", "py3-x_y"}) || o.Init != image.InitAgent || !o.NoSSH {
		t.Errorf("origin %+v, %v", o, ok)
	}
	if got := e.debugfs(out.RootfsPath, "cat /var/log/apk-standin.argv"); got != "add --no-cache hello py3-x_y\n" {
		t.Errorf("apk ran as %q, want `apk add --no-cache hello py3-x_y`", got)
	}
	if got := e.debugfs(out.RootfsPath, "cat /usr/share/hello/installed"); got != "hello from the apk stand-in\n" {
		t.Errorf("the package's file: %q", got)
	}
	host, _ := os.ReadFile("/etc/resolv.conf")
	if got := e.debugfs(out.RootfsPath, "cat /var/log/apk-standin.resolv"); got != string(host) {
		t.Errorf("apk saw resolv.conf %q, the host has %q", got, host)
	}
	if got := e.debugfs(out.RootfsPath, "cat /etc/resolv.conf"); !strings.Contains(got, "written by banger-agent") {
		t.Errorf("the image kept the host's resolv.conf: %q", got)
	}
	if s := strings.Join(steps, "\n"); !strings.Contains(s, "installing hello py3-x_y with apk") || !strings.Contains(s, "(2/2) Installing py3-x_y") {
		t.Errorf("the progress does not show apk at work:\n%s", s)
	}

	_, steps, err = e.importPackages(ref, "alp2", "hello", "nosuch")
	if err == nil {
		t.Fatalf("an unknown apk package was imported:\n%s", strings.Join(steps, "\n"))
	}
	for _, want := range []string{"apk add --no-cache hello nosuch exited with status 1", "ERROR: unable to select packages:", "nosuch (no such package):"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	e.checkNothingLeft("alp2")
}

// dnfTreeLayer is a layer of the host's own dnf: the files of every
// installed Debian package dnf needs (docs, manuals and translations
// left out), the top-level usrmerge links included as links. A real dnf
// and rpm then run in the image tree without a whole distribution.
func dnfTreeLayer(t *testing.T, ctx context.Context) v1.Layer {
	t.Helper()
	res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: []string{"apt-cache", "depends", "--recurse", "--installed", "--no-recommends",
		"--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", "dnf"}})
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if line == "" || line[0] == ' ' || line[0] == '<' {
			continue
		}
		files, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: []string{"dpkg", "-L", strings.TrimSuffix(line, ":amd64")}})
		if err != nil {
			continue // a virtual or not installed package
		}
		for _, p := range strings.Split(string(files.Stdout), "\n") {
			if !strings.HasPrefix(p, "/") || p == "/." {
				continue
			}
			if strings.HasPrefix(p, "/usr/share/doc") || strings.HasPrefix(p, "/usr/share/man") || strings.HasPrefix(p, "/usr/share/locale") || strings.HasPrefix(p, "/usr/share/info") {
				continue
			}
			if _, err := os.Lstat(p); err != nil {
				continue
			}
			// Named where it really is (the host's /lib is a link to usr/lib),
			// with every parent directory.
			dir, err := filepath.EvalSymlinks(filepath.Dir(p))
			if err != nil {
				continue
			}
			set[filepath.Join(dir, filepath.Base(p))[1:]] = true
			for ; dir != "/"; dir = filepath.Dir(dir) {
				set[dir[1:]] = true
			}
		}
	}
	if !set["usr/bin/dnf"] {
		t.Fatalf("the host's dnf package lists no /usr/bin/dnf")
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	dir := t.TempDir()
	list := filepath.Join(dir, "files")
	if err := os.WriteFile(list, []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	layerTar := filepath.Join(dir, "dnf.tar")
	if _, err := sysexec.Run(ctx, "tar", "--create", "--file", layerTar, "--directory", "/", "--no-recursion", "--numeric-owner", "--files-from", list); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromFile(layerTar)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestImportPackagesWithDnf runs a real dnf (Debian's, which builds the
// image tree) in an init-less image: a noarch rpm made with rpmbuild, in a
// repository made with createrepo_c and baked into the image with a
// file:// .repo, is installed by `dnf install -y
// --setopt=install_weak_deps=False` and the caches cleaned; an unknown
// package fails the import with dnf's command, status and message.
func TestImportPackagesWithDnf(t *testing.T) {
	e := newPackagesEnv(t)
	testneed.Program(t, "dnf", "dnf")
	rpmbuild := testneed.Program(t, "rpmbuild", "rpm")
	createrepo := testneed.Program(t, "createrepo_c", "createrepo-c")

	top := t.TempDir()
	spec := filepath.Join(top, "banger-hello.spec")
	if err := os.WriteFile(spec, []byte(`Name: banger-hello
Version: 1.0
Release: 1
Summary: A file for banger's --packages test
License: MIT
BuildArch: noarch

%description
One file, installed by dnf in banger's image import test.

%install
mkdir -p %{buildroot}/usr/share/banger-hello
echo "installed by dnf" > %{buildroot}/usr/share/banger-hello/hello.txt

%files
/usr/share/banger-hello/hello.txt
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sysexec.Run(e.ctx, rpmbuild, "--define", "_topdir "+top, "-bb", spec); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(top, "repo")
	os.MkdirAll(repo, 0o755)
	rpms, _ := filepath.Glob(filepath.Join(top, "RPMS", "noarch", "banger-hello-*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("rpmbuild made %v", rpms)
	}
	if err := os.Rename(rpms[0], filepath.Join(repo, filepath.Base(rpms[0]))); err != nil {
		t.Fatal(err)
	}
	if _, err := sysexec.Run(e.ctx, createrepo, "-q", repo); err != nil {
		t.Fatal(err)
	}
	// The repository and its .repo file, and what a Fedora tree has that
	// Debian's rpm is configured otherwise: the rpm database in /var/lib/rpm
	// (Debian's rpm keeps a per-user one in ~/.rpmdb).
	extra := []ocitest.Entry{ocitest.Dir("srv", 0o755), ocitest.Dir("srv/repo", 0o755), ocitest.Dir("srv/repo/repodata", 0o755),
		ocitest.Dir("etc", 0o755), ocitest.Dir("etc/yum.repos.d", 0o755), ocitest.Dir("etc/rpm", 0o755), ocitest.Dir("tmp", 0o1777),
		ocitest.File("etc/yum.repos.d/banger-test.repo", "[banger-test]\nname=banger test\nbaseurl=file:///srv/repo\ngpgcheck=0\nenabled=1\n", 0o644),
		ocitest.File("etc/rpm/macros.dbpath", "%_dbpath /var/lib/rpm\n", 0o644),
		ocitest.File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
		ocitest.File("etc/group", "root:x:0:\n", 0o644),
	}
	err := filepath.WalkDir(repo, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(repo, p)
		extra = append(extra, ocitest.File("srv/repo/"+rel, string(data), 0o644))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ref := ociLayoutRef(t, v1.Config{Cmd: []string{"sleep", "infinity"}}, dnfTreeLayer(t, e.ctx), ocitest.Layer(t, extra...))

	out, steps, err := e.importPackages(ref, "rpmish", "banger-hello")
	if err != nil {
		t.Fatalf("import with dnf packages: %v\n%s", err, strings.Join(steps, "\n"))
	}
	if got := e.debugfs(out.RootfsPath, "cat /usr/share/banger-hello/hello.txt"); got != "installed by dnf\n" {
		t.Errorf("the rpm's file: %q\n%s", got, strings.Join(steps, "\n"))
	}
	if st := e.debugfs(out.RootfsPath, "stat /var/lib/rpm/rpmdb.sqlite"); !strings.Contains(st, "Type: regular") {
		t.Errorf("no rpm database recorded the install:\n%s", st)
	}
	// dnf clean all ran: no repository metadata is left in its cache.
	dump := t.TempDir()
	e.debugfs(out.RootfsPath, "rdump /var/cache/dnf "+dump)
	filepath.WalkDir(dump, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".xml") || strings.HasSuffix(p, ".solv") || strings.HasSuffix(p, ".rpm") || strings.Contains(p, ".xml.")) {
			t.Errorf("dnf's cache kept %s", p)
		}
		return nil
	})
	if s := strings.Join(steps, "\n"); !strings.Contains(s, "installing banger-hello with dnf") || !strings.Contains(s, "Installing       : banger-hello-1.0-1.noarch") {
		t.Errorf("the progress does not show dnf at work:\n%s", s)
	}

	_, steps, err = e.importPackages(ref, "rpmish2", "nosuch")
	if err == nil {
		t.Fatalf("an unknown rpm was imported:\n%s", strings.Join(steps, "\n"))
	}
	for _, want := range []string{"dnf install -y --setopt=install_weak_deps=False nosuch exited with status 1", "Unable to find a match: nosuch"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	e.checkNothingLeft("rpmish2")
}
