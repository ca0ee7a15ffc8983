package image

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sysexec"
)

// voidTree fabricates a small Void-shaped tree from the host's own files:
// the real bash with its libraries (so the tree runs under chroot), busybox
// standing in for every other command, Void's merged /usr (everything in
// /usr/bin, /usr/sbin -> bin), a runit layout as runit-void ships it
// (stage scripts, core services, /etc/sv with supervise links, gettys
// enabled in runsvdir/default), Void's skel (.bash_profile, no .profile), a
// stock sshd_config without Include, and the openssh package's run script.
// Commands listed in omit are left out.
func voidTree(t *testing.T, omit ...string) (tree, pub, agent string) {
	t.Helper()
	tree, pub, agent = filepath.Join(t.TempDir(), "void"), "", ""
	bb, err := sysexec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox is not installed (apt-get install busybox-static)")
	}
	for _, tool := range []string{"mkfs.ext4", "debugfs", "depmod", "e2fsck", "ldd", "tar", "xz", "unshare"} {
		if _, err := sysexec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install e2fsprogs kmod libc-bin tar xz-utils util-linux)", tool)
		}
	}
	bbData, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{{"bin", "usr/bin"}, {"sbin", "usr/bin"}, {"usr/sbin", "bin"}, {"lib", "usr/lib"}, {"lib64", "usr/lib"}, {"usr/lib64", "lib"}} {
		if err := os.MkdirAll(filepath.Join(tree, "usr/bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(tree, "usr/lib"), 0o755)
		if err := os.Symlink(l[1], filepath.Join(tree, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(tree, "usr/bin/busybox"), string(bbData), 0o755)
	copyWithLibs(t, tree, "/bin/bash", "usr/bin/bash")

	skip := map[string]bool{}
	for _, o := range omit {
		skip[o] = true
	}
	cmds := []string{"runsvdir", "sv", "sh", "ssh-keygen", "fsck.ext4", "depmod", "update-ca-certificates"}
	base, err := Baseline()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range base {
		cmds = append(cmds, e.Command)
	}
	for _, c := range cmds {
		p := filepath.Join(tree, "usr/bin", c)
		if _, err := os.Lstat(p); err == nil || skip[c] {
			continue
		}
		if err := os.Symlink("/usr/bin/busybox", p); err != nil {
			t.Fatal(err)
		}
	}

	writeFile(t, filepath.Join(tree, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:99:99:Unprivileged User:/dev/null:/bin/false\n", 0o644)
	writeFile(t, filepath.Join(tree, "etc/shadow"), "root::19000:0:99999:7:::\nnobody:!:19000::::::\n", 0o600)
	writeFile(t, filepath.Join(tree, "etc/hosts"), "127.0.0.1\tlocalhost\n", 0o644)
	writeFile(t, filepath.Join(tree, "etc/skel/.bashrc"), "# void skel bashrc\n", 0o644)
	writeFile(t, filepath.Join(tree, "etc/skel/.bash_profile"), "[ -f $HOME/.bashrc ] && . $HOME/.bashrc\n", 0o644)
	writeFile(t, filepath.Join(tree, "etc/ssh/sshd_config"), "#Port 22\nPasswordAuthentication yes\nAuthorizedKeysFile .ssh/authorized_keys\nSubsystem sftp /usr/libexec/sftp-server\n", 0o644)
	writeFile(t, filepath.Join(tree, "etc/ssh/ssh_host_rsa_key"), "secret\n", 0o600)
	writeFile(t, filepath.Join(tree, "etc/runit/1"), "#!/bin/sh\nfor f in /etc/runit/core-services/*.sh; do [ -r $f ] && . $f; done\n", 0o755)
	writeFile(t, filepath.Join(tree, "etc/runit/2"), "#!/bin/sh\nexec runsvdir -P /run/runit/runsvdir/current\n", 0o755)
	writeFile(t, filepath.Join(tree, "etc/runit/3"), "#!/bin/sh\nsv force-shutdown /var/service/*\n", 0o755)
	writeFile(t, filepath.Join(tree, "etc/runit/core-services/03-filesystems.sh"), "mount -a\n", 0o644)
	writeFile(t, filepath.Join(tree, "etc/runit/core-services/05-misc.sh"), "ip link set up dev lo\n", 0o644)
	writeFile(t, filepath.Join(tree, "etc/sv/sshd/run"), "#!/bin/sh\nssh-keygen -A >/dev/null 2>&1\nexec /usr/bin/sshd -D $OPTS\n", 0o755)
	os.Symlink("/run/runit/supervise.sshd", filepath.Join(tree, "etc/sv/sshd/supervise"))
	os.MkdirAll(filepath.Join(tree, "etc/runit/runsvdir/default"), 0o755)
	os.Symlink("default", filepath.Join(tree, "etc/runit/runsvdir/current"))
	for _, tty := range []string{"agetty-tty1", "agetty-tty2", "agetty-ttyS0"} {
		writeFile(t, filepath.Join(tree, "etc/sv", tty, "run"), "#!/bin/sh\nexec agetty "+tty+"\n", 0o755)
		if tty != "agetty-ttyS0" {
			os.Symlink("/etc/sv/"+tty, filepath.Join(tree, "etc/runit/runsvdir/default", tty))
		}
	}
	writeFile(t, filepath.Join(tree, "var/db/xbps/keys/60:ae:0c:d6:f0:95:17:80:bc:93:46:7a:89:af:a3:2d.plist"), "<plist/>\n", 0o644)
	writeFile(t, filepath.Join(tree, "var/cache/xbps/bash-5.2.tar.zst"), "cached package\n", 0o644)
	for _, d := range []string{"root", "run", "proc", "sys", "tmp", "dev"} {
		os.MkdirAll(filepath.Join(tree, d), 0o755)
	}

	base2 := filepath.Dir(tree)
	pub = filepath.Join(base2, "id.pub")
	writeFile(t, pub, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJhbmdlci10ZXN0LWtleS0wMDAwMDAwMDAwMDAw test\n", 0o644)
	agent = filepath.Join(base2, "banger-agent")
	writeFile(t, agent, string(bbData), 0o755)
	return tree, pub, agent
}

// copyWithLibs copies a host binary and the shared libraries ldd names into
// the tree, at their host paths (which the tree's /lib symlinks resolve).
func copyWithLibs(t *testing.T, tree, bin, dst string) {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tree, dst), string(data), 0o755)
	out, err := run(t, sysexec.Cmd{Argv: []string{"ldd", bin}})
	if err != nil {
		t.Fatalf("ldd %s: %v\n%s", bin, err, out)
	}
	for _, lib := range regexp.MustCompile(`(/\S+\.so[.0-9]*)`).FindAllString(out, -1) {
		real, err := filepath.EvalSymlinks(lib)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(real)
		if err != nil {
			t.Fatal(err)
		}
		// /lib and /lib64 are links to usr/lib in the tree.
		rel := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(lib, "/usr"), "/lib64"), "/lib")
		writeFile(t, filepath.Join(tree, "usr/lib", rel), string(data), 0o755)
	}
}

// packTarball packs a tree as Void ships ROOTFS tarballs (xz, numeric
// owners), adding the device nodes only root can make.
func packTarball(t *testing.T, tree string) string {
	t.Helper()
	for name, dev := range map[string]int{"dev/null": 1<<8 | 3, "dev/console": 5<<8 | 1} {
		if err := syscall.Mknod(filepath.Join(tree, name), syscall.S_IFCHR|0o600, dev); err != nil {
			t.Fatalf("mknod %s: %v", name, err)
		}
	}
	tarball := filepath.Join(t.TempDir(), "void-x86_64-ROOTFS-test.tar.xz")
	if out, err := run(t, sysexec.Cmd{Argv: []string{"tar", "-c", "-J", "--numeric-owner", "--xattrs", "-f", tarball, "-C", tree, "."}, Env: []string{"XZ_OPT=-0 -T0"}}); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	return tarball
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: a Void build extracts device nodes and root-owned files, which needs root; run the tests as root")
	}
}

func fakeModules(t *testing.T) (string, string) {
	t.Helper()
	modules := filepath.Join(t.TempDir(), "6.1.0-test")
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		writeFile(t, filepath.Join(modules, f), "", 0o644)
	}
	return modules, "6.1.0-test"
}

// TestBuildVoidFromTarball builds a Void image from a fixture ROOTFS
// tarball through Builder.Build, for real: extraction as root, the
// package check (nothing to install: offline), the shared customization
// with the runit part, mkfs, and the offline verification of the result.
func TestBuildVoidFromTarball(t *testing.T) {
	needRoot(t)
	tree, pub, agent := voidTree(t)
	if out, err := run(t, sysexec.Cmd{Argv: []string{"chroot", tree, "/usr/bin/bash", "-c", "echo runs"}}); err != nil || out != "runs\n" {
		t.Fatalf("the fixture tree does not run bash under chroot: %v %q", err, out)
	}
	tarball := packTarball(t, tree)
	root := t.TempDir()
	modules, kver := fakeModules(t)
	b := &Builder{Layout: paths.UnderRoot(root)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := func(name string) (api.Image, []string, error) {
		var lines []string
		img, err := b.Build(ctx, BuildRequest{
			Name: name, Distro: "void", FromTarball: tarball, SizeBytes: MinSizeBytes,
			PublicKeyPath: pub, AgentPath: agent, ModulesDir: modules, KernelVersion: kver,
			// A repository that cannot answer: the tarball path must not need it.
			VoidRepo: "http://192.0.2.1/void", XBPSStatic: "/nonexistent/xbps-install.static",
		}, func(p api.Progress) { lines = append(lines, p.Step+": "+p.Message) })
		return img, lines, err
	}
	start := time.Now()
	img, lines, err := build("void")
	log := strings.Join(lines, "\n")
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log)
	}
	t.Logf("built in %s", time.Since(start).Round(time.Millisecond))
	if img.Distro != "void" || img.Suite != "glibc" || img.RootfsPath != filepath.Join(root, "data/images/void.ext4") || img.KernelVersion != kver {
		t.Errorf("image: %+v", img)
	}
	for _, want := range []string{"nothing to install", "customize: service sshd (daemon)", "disabled 2 runit services", "cleaned the xbps cache"} {
		if !strings.Contains(log, want) {
			t.Errorf("progress lacks %q:\n%s", want, log)
		}
	}

	checks := b.VerifyOffline(ctx, img.RootfsPath, pub)
	for _, c := range checks {
		if c.Status != api.CheckOK {
			t.Errorf("check %s: %s: %s", c.Name, c.Status, c.Detail)
		}
	}
	if c := checksByName(checks)["services"]; !strings.Contains(c.Detail, "5 runit services") {
		t.Errorf("services check did not use the runit layout: %+v", c)
	}
	if len(checks) != 14 {
		t.Errorf("%d checks, want 14", len(checks))
	}

	fsys := extFS{run: sysexec.Exec{}, img: img.RootfsPath}
	cat := func(p string) string {
		s, ok, err := fsys.cat(ctx, p)
		if err != nil || !ok {
			t.Errorf("%s: missing from the image (%v)", p, err)
		}
		return s
	}
	stat := func(p string) inode {
		in, err := fsys.stat(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	if got := cat("/etc/sv/banger-agent/run"); got != "#!/bin/sh\n# Installed by banger: banger guest agent.\nexec 2>&1\nexec /usr/local/bin/banger-agent\n" {
		t.Errorf("agent run script: %q", got)
	}
	if got := cat("/etc/sv/sshd/run"); strings.Contains(got, "ssh-keygen") || !strings.Contains(got, "exec /usr/bin/sshd -D -e") {
		t.Errorf("sshd run script still makes an RSA key or does not run sshd: %q", got)
	}
	for name, want := range map[string]string{
		"/etc/runit/runsvdir/default/banger-agent": "/etc/sv/banger-agent",
		"/etc/runit/runsvdir/default/sshd":         "/etc/sv/sshd",
		"/etc/sv/banger-agent/supervise":           "/run/runit/supervise.banger-agent",
	} {
		if in := stat(name); in.Type != "symlink" || in.Link != want {
			t.Errorf("%s: %+v, want a link to %s", name, in, want)
		}
	}
	if in := stat("/etc/runit/runsvdir/default/agetty-tty1"); in.Exists {
		t.Error("agetty-tty1 still enabled")
	}
	if in := stat("/etc/sv/agetty-tty1/run"); !in.Exists {
		t.Error("disabling a getty removed its service dir")
	}
	for i, s := range []string{"banger-hostkeys", "banger-net", "banger-home"} {
		p := "/etc/runit/core-services/" + []string{"90", "91", "92"}[i] + "-" + s + ".sh"
		if got := cat(p); !strings.Contains(got, "/usr/local/lib/banger/"+s+" || echo") {
			t.Errorf("%s: %q", p, got)
		}
	}
	if got := cat("/etc/ssh/sshd_config"); !strings.HasPrefix(got, "# banger: drop-ins first") || !strings.Contains(got, "\nInclude /etc/ssh/sshd_config.d/*.conf\n#Port 22\n") {
		t.Errorf("sshd_config: %q", got)
	}
	if got := cat("/etc/shadow"); !strings.HasPrefix(got, "root:*:19000:") || !strings.Contains(got, "nobody:!:") {
		t.Errorf("shadow: %q", got)
	}
	if got := cat("/etc/passwd"); !strings.HasPrefix(got, "root:x:0:0:root:/root:/bin/bash\n") {
		t.Errorf("passwd: %q", got)
	}
	if got := cat("/etc/skel/.profile"); !strings.Contains(got, `. "$HOME/.bashrc"`) {
		t.Errorf("skel .profile: %q", got)
	}
	if got := cat("/etc/skel/.bashrc"); got != "# void skel bashrc\n" {
		t.Errorf("Void's own skel .bashrc was replaced: %q", got)
	}
	if in := stat("/usr/lib/modules/" + kver + "/modules.dep"); !in.Exists {
		t.Error("modules not installed with depmod under /lib/modules")
	}
	if in := stat("/dev/console"); in.Type != "character special" {
		t.Errorf("/dev/console from the tarball is %q, want a character device", in.Type)
	}
	if names, err := fsys.ls(ctx, "/var/cache/xbps"); err != nil || len(names) != 0 {
		t.Errorf("xbps cache left in the image: %v %v", names, err)
	}
	if got := cat("/etc/runit/core-services/89-banger-machine-id.sh"); !strings.Contains(got, "/proc/sys/kernel/random/uuid") {
		t.Errorf("machine-id core service: %q", got)
	}

	// The same tarball again: the tree comes from the cache.
	if _, lines, err := build("void2"); err != nil {
		t.Fatalf("second build: %v", err)
	} else if !strings.Contains(strings.Join(lines, "\n"), "reusing cached tree") {
		t.Errorf("second build did not reuse the cached tree:\n%s", strings.Join(lines, "\n"))
	}
}

// TestBuildVoidTarballLackingPackages: a tarball without some package's
// command needs xbps to install it; with no xbps the build fails saying
// what is missing and how to get xbps, and leaves nothing behind.
func TestBuildVoidTarballLackingPackages(t *testing.T) {
	needRoot(t)
	tree, pub, agent := voidTree(t, "jq", "sshd")
	tarball := packTarball(t, tree)
	root := t.TempDir()
	layout := paths.UnderRoot(root)
	out := filepath.Join(root, "out", "void.ext4")
	_, err := (&Builder{Layout: layout}).Build(context.Background(), BuildRequest{
		Name: "void", Distro: "void", FromTarball: tarball, SizeBytes: MinSizeBytes,
		PublicKeyPath: pub, AgentPath: agent, OutputPath: out, XBPSStatic: "/nonexistent/xbps-install.static",
	}, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeFailedPrecondition ||
		!strings.Contains(ae.Message, "installing jq openssh (not in the tarball) needs xbps") || !strings.Contains(ae.Message, "xbps_static") {
		t.Fatalf("want a failed_precondition naming jq, openssh and xbps; got %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("image left behind: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(layout.BuildCacheDir(), "*", "*")); len(left) != 1 || !strings.HasSuffix(left[0], ".lock") {
		t.Errorf("left in the build cache: %v", left)
	}
	if m, _ := MountsUnder(root); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
}

// TestCustomizeVoidIdempotent runs the shared customization with the Void
// part over a Void tree three times: the second and third runs change
// nothing (an image rebuilt from a cached tree gets the same result).
func TestCustomizeVoidIdempotent(t *testing.T) {
	tree, pub, agent := voidTree(t)
	custom := func() string {
		out, err := run(t, sysexec.Cmd{
			Argv: []string{"bash", filepath.Join(scriptsDir(t), "customize.sh")},
			Env:  []string{"BANGER_ROOTFS=" + tree, "BANGER_DISTRO=void", "BANGER_PUBKEY=" + pub, "BANGER_AGENT=" + agent},
		})
		if err != nil {
			t.Fatalf("customize: %v\n%s", err, out)
		}
		return out
	}
	out := custom()
	for _, want := range []string{"service banger-agent (daemon)", "service sshd (daemon)", "sshd_config: includes", "customize: done"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(tree, "etc/systemd")); !os.IsNotExist(err) {
		t.Errorf("systemd units written into a Void tree: %v", err)
	}
	first := snapshot(t, tree)
	custom()
	if second := snapshot(t, tree); second != first {
		t.Errorf("a second customize changed the tree")
	}
	if strings.Count(readFile(t, filepath.Join(tree, "etc/ssh/sshd_config")), "Include /etc/ssh/sshd_config.d/*.conf") != 1 {
		t.Error("Include added twice")
	}

	// The runit checks see a disabled daemon, a missing oneshot and a run
	// script that is not executable.
	if c := checksByName(VerifyOffline(context.Background(), pack(t, tree), pub))["services"]; c.Status != api.CheckOK {
		t.Fatalf("services check on the customized tree: %+v", c)
	}
	os.Remove(filepath.Join(tree, "etc/runit/runsvdir/default/banger-agent"))
	os.Remove(filepath.Join(tree, "etc/runit/core-services/91-banger-net.sh"))
	os.Chmod(filepath.Join(tree, "etc/sv/sshd/run"), 0o644)
	c := checksByName(VerifyOffline(context.Background(), pack(t, tree), pub))["services"]
	for _, want := range []string{"banger-agent not enabled", "NN-banger-net.sh missing", "/etc/sv/sshd/run missing or not executable"} {
		if c.Status != api.CheckFail || !strings.Contains(c.Detail, want) || c.Fix == "" {
			t.Errorf("services check should fail mentioning %q: %+v", want, c)
		}
	}
}

// TestVoidXBPSArgvGolden runs make-rootfs-void.sh in dry-run mode with the
// environment Build passes: the exact xbps commands for glibc and musl.
func TestVoidXBPSArgvGolden(t *testing.T) {
	dir := scriptsDir(t)
	req := validRequest()
	req.Distro, req.Suite, req.Mirror = "void", "", ""
	req = req.withDefaults(paths.UnderRoot("/r"), nil)
	req.ExtraPackages = []string{"zsh"}
	req.XBPSStatic = "/opt/xbps/usr/bin/xbps-install.static"
	pk, err := VoidPackages(req.ExtraPackages)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pk {
		n, _, _ := strings.Cut(p, "=")
		if len(names) == 0 || names[len(names)-1] != n {
			names = append(names, n)
		}
	}
	for libc, want := range map[string][2]string{
		"glibc": {"x86_64", DefaultVoidRepo},
		"musl":  {"x86_64-musl", DefaultVoidRepo + "/musl"},
	} {
		req.Libc = libc
		recipe, err := voidRecipe(req)
		if err != nil {
			t.Fatal(err)
		}
		if recipe.cacheDir != "void" || recipe.step != StepVoidRootfs {
			t.Errorf("recipe: %+v", recipe)
		}
		out, err := run(t, sysexec.Cmd{
			Argv: []string{"bash", filepath.Join(dir, "make-rootfs-void.sh")},
			Env:  append([]string{"BANGER_DRY_RUN=1", "BANGER_ROOTFS=/cache/tree"}, recipe.env...),
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		env := "env XBPS_ARCH=" + want[0] + " "
		golden := env + "/opt/xbps/usr/bin/xbps-install.static -S -y -i -r /cache/tree -R " + want[1] + " base-minimal " + strings.Join(names, " ") + "\n" +
			env + "/opt/xbps/usr/bin/xbps-reconfigure.static -r /cache/tree -f base-files\n" +
			env + "/opt/xbps/usr/bin/xbps-reconfigure.static -r /cache/tree -a\n"
		if out != golden {
			t.Errorf("%s: xbps commands\n got %q\nwant %q", libc, out, golden)
		}
	}
	for _, must := range []string{" openssh ", " runit-void ", " iputils ", " bind-utils ", " zsh "} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", must) {
			t.Errorf("package list lacks%s: %v", must, names)
		}
	}
	// Without BANGER_XBPS the one in PATH is used.
	out, err := run(t, sysexec.Cmd{
		Argv: []string{"bash", filepath.Join(dir, "make-rootfs-void.sh")},
		Env:  []string{"BANGER_DRY_RUN=1", "BANGER_ROOTFS=/t", "BANGER_PACKAGES=bash=bash"},
	})
	if err != nil || !strings.HasPrefix(out, "env XBPS_ARCH=x86_64 xbps-install -S -y -i -r /t -R "+DefaultVoidRepo+" base-minimal bash\nenv XBPS_ARCH=x86_64 xbps-reconfigure ") {
		t.Errorf("default xbps: %v %q", err, out)
	}
	for _, bad := range [][]string{
		{"BANGER_REPO=--config=/x"},
		{"BANGER_REPO=ftp://x/void"},
		{"BANGER_LIBC=uclibc"},
		{"BANGER_ARCH=--arch"},
		{"BANGER_PACKAGES=bash,--foo"},
		{"BANGER_PACKAGES=bash git"},
		{"BANGER_PACKAGES=bash=-x"},
		{"BANGER_XBPS=-h"},
		{"BANGER_TARBALL=relative.tar.xz"},
	} {
		env := append([]string{"BANGER_DRY_RUN=1", "BANGER_ROOTFS=/t"}, bad...)
		if out, err := run(t, sysexec.Cmd{Argv: []string{"bash", filepath.Join(dir, "make-rootfs-void.sh")}, Env: env}); err == nil {
			t.Errorf("%v accepted:\n%s", bad, out)
		}
	}
}

// TestBuildVoidNeedsXBPS: a repository build without xbps stops before any
// work, saying how to install static xbps.
func TestBuildVoidNeedsXBPS(t *testing.T) {
	needRoot(t)
	if _, err := sysexec.LookPath("xbps-install"); err == nil {
		t.Skip("xbps-install is installed here: the missing-xbps preflight cannot be shown")
	}
	root := t.TempDir()
	pub := filepath.Join(root, "id.pub")
	writeFile(t, pub, "ssh-ed25519 AAAA x\n", 0o644)
	b := &Builder{Layout: paths.UnderRoot(root)}
	for _, static := range []string{"", filepath.Join(root, "xbps-install.static")} {
		_, err := b.Build(context.Background(), BuildRequest{Name: "void", Distro: "void", XBPSStatic: static, PublicKeyPath: pub, AgentPath: "/bin/sh"}, nil)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeFailedPrecondition || !strings.Contains(ae.Message, "xbps") ||
			!strings.Contains(ae.Hint, "xbps-static-latest") || !strings.Contains(ae.Hint, "--from-tarball") {
			t.Errorf("xbps_static %q: want failed_precondition about xbps with the install hint, got %v", static, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "cache")); !os.IsNotExist(err) {
		t.Errorf("a refused build created files: %v", err)
	}
}

func TestVoidPackages(t *testing.T) {
	pk, err := VoidPackages([]string{"zsh", "base-devel"})
	if err != nil {
		t.Fatal(err)
	}
	joined := "," + strings.Join(pk, ",") + ","
	for _, want := range []string{"openssh=sshd", "openssh=ssh", "runit-void=runsvdir", "iputils=ping", "bind-utils=dig", "procps-ng=ps", "kmod=depmod", "zsh", "base-devel"} {
		if !strings.Contains(joined, ","+want+",") {
			t.Errorf("package list lacks %s: %s", want, joined)
		}
	}
	for i, p := range pk {
		name, cmd, _ := strings.Cut(p, "=")
		if !voidPkgRe.MatchString(name) || (cmd != "" && !voidPkgRe.MatchString(cmd)) {
			t.Errorf("%q is not NAME or NAME=COMMAND", p)
		}
		if i > 0 && pk[i-1] >= p {
			t.Errorf("not sorted/unique at %d: %s %s", i, pk[i-1], p)
		}
	}
	base, _ := Baseline()
	for _, e := range base {
		if !voidPkgRe.MatchString(e.Void) || !strings.Contains(joined, ","+e.Void+"="+e.Command+",") {
			t.Errorf("baseline %s: Void package %q is not in the build", e.Name, e.Void)
		}
	}
}

func TestValidateVoid(t *testing.T) {
	valid := func() BuildRequest {
		return BuildRequest{Name: "void", Distro: "void", PublicKeyPath: "/b/id.pub", AgentPath: "/b/banger-agent"}.
			withDefaults(paths.UnderRoot("/r"), func() string { return "http://mirror.example/debian" })
	}
	r := valid()
	if r.Libc != "glibc" || r.VoidRepo != DefaultVoidRepo || r.Suite != "" || r.Mirror != "" {
		t.Errorf("void defaults: %+v", r)
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("valid request rejected: %v", err)
	}
	r.Libc, r.FromTarball, r.VoidRepo, r.XBPSStatic = "musl", "/t/void.tar.xz", "/srv/void-mirror", "/opt/xbps/usr/bin/xbps-install.static"
	r.ExtraPackages = []string{"SDL2-devel", "python3.12", "gtk+3"}
	if err := r.Validate(); err != nil {
		t.Errorf("valid musl/tarball/local repo request rejected: %v", err)
	}
	for name, c := range map[string]struct {
		mutate func(*BuildRequest)
		want   string
	}{
		"suite":            {func(r *BuildRequest) { r.Suite = "bookworm" }, "no suites"},
		"libc":             {func(r *BuildRequest) { r.Libc = "uclibc" }, "libc"},
		"repo scheme":      {func(r *BuildRequest) { r.VoidRepo = "ftp://x/void" }, "repository"},
		"repo option":      {func(r *BuildRequest) { r.VoidRepo = "--config=/x" }, "repository"},
		"repo space":       {func(r *BuildRequest) { r.VoidRepo = "https://x/current -y" }, "repository"},
		"xbps relative":    {func(r *BuildRequest) { r.XBPSStatic = "xbps-install.static" }, "xbps_static"},
		"tarball relative": {func(r *BuildRequest) { r.FromTarball = "void.tar.xz" }, "absolute"},
		"pkg option":       {func(r *BuildRequest) { r.ExtraPackages = []string{"-R"} }, "Void package"},
		"pkg comma":        {func(r *BuildRequest) { r.ExtraPackages = []string{"a,b"} }, "Void package"},
		"pkg equals":       {func(r *BuildRequest) { r.ExtraPackages = []string{"a=b"} }, "Void package"},
	} {
		r := valid()
		c.mutate(&r)
		err := r.Validate()
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument || !strings.Contains(ae.Message, c.want) || ae.Hint == "" {
			t.Errorf("%s: want invalid_argument mentioning %q with a hint, got %v", name, c.want, err)
		}
	}
	// Void-only options on a Debian build are refused, not ignored.
	d := validRequest()
	d.Libc = "musl"
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "Void") {
		t.Errorf("--libc on Debian: %v", err)
	}
	d = validRequest()
	d.FromTarball = "/t/x.tar.xz"
	if err := d.Validate(); err == nil {
		t.Error("--from-tarball on Debian accepted")
	}
}

func TestVoidError(t *testing.T) {
	req := BuildRequest{VoidRepo: DefaultVoidRepo}
	err := voidError(req, []string{"[*] Updating repository", "Package `nosuch' not found in repository pool."}, errors.New("exit status 2"))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument || !strings.Contains(ae.Message, "nosuch") {
		t.Errorf("unknown package: %v", err)
	}
	err = voidError(req, []string{"ERROR: [reposync] failed to fetch file `https://x/current/x86_64-repodata': Connection refused"}, errors.New("exit status 1"))
	if errors.As(err, &ae) || !strings.Contains(err.Error(), "Connection refused") || !strings.Contains(err.Error(), "void_repo") {
		t.Errorf("network failure: %v", err)
	}
	if err := voidError(req, nil, context.Canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v", err)
	}
}

func TestVoidArch(t *testing.T) {
	for goarch, want := range map[string]string{"amd64": "x86_64", "arm64": "aarch64"} {
		if got, err := VoidArch(goarch); err != nil || got != want {
			t.Errorf("%s: %q %v", goarch, got, err)
		}
	}
	if _, err := VoidArch("riscv64"); err == nil {
		t.Error("riscv64 accepted")
	}
}

// recordRunner records the commands it is asked to run and runs none.
type recordRunner struct{ cmds []sysexec.Cmd }

func (r *recordRunner) Run(_ context.Context, c sysexec.Cmd) (sysexec.Result, error) {
	r.cmds = append(r.cmds, c)
	return sysexec.Result{}, nil
}

// TestVoidRootlessPlanGolden: a normal user's Void build from a repository
// runs make-rootfs-void.sh as root of a user namespace (unshare with the
// user's subordinate ids, private mount and PID namespaces), in unshare
// mode, and the script's plan is the same xbps-install -r into the tree as
// a root build's. (No Void mirror is reachable here: the plan is what is
// tested; the xbps run itself is not.)
func TestVoidRootlessPlanGolden(t *testing.T) {
	dir := scriptsDir(t)
	req := validRequest()
	req.Distro, req.Suite, req.Mirror = "void", "", ""
	req = req.withDefaults(paths.UnderRoot("/r"), nil)
	req.XBPSStatic = "/opt/xbps/usr/bin/xbps-install.static"
	recipe, err := newRecipe(req, "", true, paths.UnderRoot("/r"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordRunner{}
	env := append([]string{"BANGER_OUTPUT=/cache/tree.tar", "BANGER_ROOTFS=/cache/tree", "TMPDIR=/cache/tree.scratch"}, recipe.env...)
	if err := (UserNSSandbox{Runner: rec}).Run(context.Background(), Script{Dir: dir, Name: recipe.script, Env: env}); err != nil {
		t.Fatal(err)
	}
	if len(rec.cmds) != 1 {
		t.Fatalf("%d commands, want 1", len(rec.cmds))
	}
	want := "unshare --user --map-auto --map-root-user --mount --propagation private --pid --fork --kill-child -- bash " + filepath.Join(dir, "make-rootfs-void.sh")
	if got := strings.Join(rec.cmds[0].Argv, " "); got != want {
		t.Errorf("sandbox argv\n got %q\nwant %q", got, want)
	}
	if !slicesContains(rec.cmds[0].Env, "BANGER_MODE=unshare") || !slicesContains(rec.cmds[0].Env, "BANGER_XBPS=/opt/xbps/usr/bin/xbps-install.static") {
		t.Errorf("sandbox env lacks the mode or xbps: %q", rec.cmds[0].Env)
	}
	out, err := run(t, sysexec.Cmd{Argv: []string{"bash", filepath.Join(dir, "make-rootfs-void.sh")}, Env: append([]string{"BANGER_DRY_RUN=1"}, rec.cmds[0].Env...)})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "env XBPS_ARCH=x86_64 /opt/xbps/usr/bin/xbps-install.static -S -y -i -r /cache/tree -R "+DefaultVoidRepo+" base-minimal ") ||
		lines[1] != "env XBPS_ARCH=x86_64 /opt/xbps/usr/bin/xbps-reconfigure.static -r /cache/tree -f base-files" ||
		lines[2] != "env XBPS_ARCH=x86_64 /opt/xbps/usr/bin/xbps-reconfigure.static -r /cache/tree -a" {
		t.Errorf("the rootless plan:\n%s", out)
	}
	// A root build's recipe has no unshare mode.
	if recipe, _ := newRecipe(req, "", false, paths.UnderRoot("/r")); slicesContains(recipe.env, "BANGER_MODE=unshare") {
		t.Errorf("root recipe in unshare mode: %q", recipe.env)
	}
}

// TestVoidTarballDevicesRootless: in a user namespace a tarball with device
// nodes is refused before anything is extracted, naming them; one without
// gets past the check.
func TestVoidTarballDevicesRootless(t *testing.T) {
	dir := scriptsDir(t)
	mk := func(hdrs ...*tar.Header) string {
		p := filepath.Join(t.TempDir(), "rootfs.tar")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		tw := tar.NewWriter(f)
		for _, h := range hdrs {
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
		}
		tw.Close()
		f.Close()
		return p
	}
	withDev := mk(&tar.Header{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "./dev/console", Typeflag: tar.TypeChar, Mode: 0o600, Devmajor: 5, Devminor: 1})
	without := mk(&tar.Header{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	script := func(tarball, mode string) (string, error) {
		return run(t, sysexec.Cmd{Argv: []string{"bash", filepath.Join(dir, "make-rootfs-void.sh")},
			Env: []string{"BANGER_ROOTFS=" + filepath.Join(t.TempDir(), "tree"), "BANGER_TARBALL=" + tarball, "BANGER_MODE=" + mode}})
	}
	out, err := script(withDev, "unshare")
	if err == nil || !strings.Contains(out, "carries device nodes (./dev/console), which a user namespace cannot make") {
		t.Errorf("a tarball with a device node in unshare mode: %v\n%s", err, out)
	}
	out, err = script(without, "unshare")
	if err == nil || !strings.Contains(out, "is not a root filesystem tarball") {
		t.Errorf("a tarball without device nodes in unshare mode did not get past the check: %v\n%s", err, out)
	}
	if out, err := script(without, "--x"); err == nil || !strings.Contains(out, "invalid mode") {
		t.Errorf("a bad mode: %v\n%s", err, out)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
