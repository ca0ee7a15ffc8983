package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/disk"
	"github.com/banger-dev/banger/internal/sysexec"
)

// fakeTree fabricates a tiny Debian-shaped tree (busybox standing in for
// every program) so customize.sh, mkfs and the offline checks can run in
// seconds, without debootstrap.
func fakeTree(t *testing.T) (tree, pub, agent string) {
	t.Helper()
	bb, err := sysexec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox is not installed (apt-get install busybox-static)")
	}
	for _, tool := range []string{"mkfs.ext4", "debugfs", "depmod", "e2fsck"} {
		if _, err := sysexec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install e2fsprogs kmod)", tool)
		}
	}
	base := t.TempDir()
	tree = filepath.Join(base, "tree")
	bbData, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tree, "usr/bin/busybox"), string(bbData), 0o755)
	base2, _ := Baseline()
	for _, e := range append(base2, BaselineEntry{Command: "bash"}) {
		dir := "usr/bin"
		if e.Command == "sshd" {
			dir = "usr/sbin"
		}
		p := filepath.Join(tree, dir, e.Command)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink("/usr/bin/busybox", p); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range [][2]string{{"bin", "usr/bin"}, {"sbin", "usr/sbin"}, {"lib", "usr/lib"}} {
		os.MkdirAll(filepath.Join(tree, l[1]), 0o755)
		if err := os.Symlink(l[1], filepath.Join(tree, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(tree, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n", 0o644)
	writeFile(t, filepath.Join(tree, "etc/machine-id"), "0123456789abcdef0123456789abcdef\n", 0o444)
	writeFile(t, filepath.Join(tree, "etc/ssh/ssh_host_ed25519_key"), "secret\n", 0o600)
	writeFile(t, filepath.Join(tree, "etc/ssh/sshd_config"),
		"Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\nPasswordAuthentication yes\n", 0o644)
	os.Symlink("../run/resolvconf/resolv.conf", filepath.Join(tree, "etc/resolv.conf"))
	pub = filepath.Join(base, "id.pub")
	writeFile(t, pub, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJhbmdlci10ZXN0LWtleS0wMDAwMDAwMDAwMDAw test\n", 0o644)
	agent = filepath.Join(base, "banger-agent")
	writeFile(t, agent, string(bbData), 0o755)
	return tree, pub, agent
}

func customize(t *testing.T, tree, pub, agent, modules, kver string) (string, error) {
	t.Helper()
	return run(t, sysexec.Cmd{
		Argv: []string{"bash", filepath.Join(scriptsDir(t), "customize.sh")},
		Env: []string{"BANGER_ROOTFS=" + tree, "BANGER_DISTRO=debian", "BANGER_PUBKEY=" + pub, "BANGER_AGENT=" + agent,
			"BANGER_MODULES_DIR=" + modules, "BANGER_KERNEL_VERSION=" + kver},
	})
}

func pack(t *testing.T, tree string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "img.ext4")
	if out, err := run(t, sysexec.Cmd{Argv: MkfsArgv(tree, img, 64<<20)}); err != nil {
		t.Fatalf("mkfs: %v\n%s", err, out)
	}
	return img
}

func checksByName(cs []api.CheckResult) map[string]api.CheckResult {
	m := map[string]api.CheckResult{}
	for _, c := range cs {
		m[c.Name] = c
	}
	return m
}

func TestCustomizeThenVerifyOffline(t *testing.T) {
	tree, pub, agent := fakeTree(t)
	modules := filepath.Join(t.TempDir(), "6.1.0-test")
	writeFile(t, filepath.Join(modules, "modules.order"), "", 0o644)
	writeFile(t, filepath.Join(modules, "modules.builtin"), "", 0o644)
	writeFile(t, filepath.Join(modules, "modules.builtin.modinfo"), "", 0o644)
	out, err := customize(t, tree, pub, agent, modules, "6.1.0-test")
	if err != nil {
		t.Fatalf("customize: %v\n%s", err, out)
	}
	if !strings.Contains(out, "customize: done") {
		t.Errorf("customize output:\n%s", out)
	}
	if got := readFile(t, filepath.Join(tree, "etc/passwd")); !strings.HasPrefix(got, "root:x:0:0:root:/root:/bin/bash\ndaemon:") {
		t.Errorf("passwd: %q", got)
	}
	if _, err := os.Stat(filepath.Join(tree, "usr/lib/modules/6.1.0-test/modules.dep")); err != nil {
		t.Errorf("depmod did not run for the modules: %v", err)
	}
	unit := readFile(t, filepath.Join(tree, "etc/systemd/system/banger-agent.service"))
	for _, want := range []string{"ExecStart=/usr/local/bin/banger-agent", "Restart=always", "WantedBy=multi-user.target"} {
		if !strings.Contains(unit, want) {
			t.Errorf("agent unit lacks %q:\n%s", want, unit)
		}
	}
	if l, err := os.Readlink(filepath.Join(tree, "etc/systemd/system/apt-daily.timer")); err != nil || l != "/dev/null" {
		t.Errorf("apt-daily.timer not masked: %q %v", l, err)
	}
	if st, err := os.Lstat(filepath.Join(tree, "etc/resolv.conf")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("resolv.conf is not a plain file: %v", err)
	}

	img := pack(t, tree)
	checks := VerifyOffline(context.Background(), img, pub)
	for _, c := range checks {
		if c.Status != api.CheckOK {
			t.Errorf("check %s: %s: %s", c.Name, c.Status, c.Detail)
		}
	}
	if len(checks) != 14 {
		t.Errorf("%d checks, want 14: %+v", len(checks), checks)
	}
	// Another key is not trusted.
	other := filepath.Join(t.TempDir(), "other.pub")
	writeFile(t, other, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE90aGVyLWtleS0wMDAwMDAwMDAwMDAwMDAwMDAw other\n", 0o644)
	if c := checksByName(VerifyOffline(context.Background(), img, other))["trusted-key"]; c.Status != api.CheckFail {
		t.Errorf("a different bundle key passed: %+v", c)
	}

	// A second run over the same tree changes nothing it should not.
	if out, err := customize(t, tree, pub, agent, modules, "6.1.0-test"); err != nil {
		t.Fatalf("second customize: %v\n%s", err, out)
	}
}

func TestVerifyOfflineFindsProblems(t *testing.T) {
	tree, pub, _ := fakeTree(t)
	// An uncustomized tree with git missing.
	os.Remove(filepath.Join(tree, "usr/bin/git"))
	img := pack(t, tree)
	got := checksByName(VerifyOffline(context.Background(), img, pub))
	for name, want := range map[string]string{
		"agent":             "missing",
		"sshd-config":       "passwordauthentication",
		"fstab":             "",
		"trusted-key":       "missing",
		"baseline":          "git (git)",
		"script-banger-net": "missing",
		"services":          "not enabled",
		"ssh-host-keys":     "ssh_host_ed25519_key",
		"machine-id":        "33 bytes",
	} {
		c, ok := got[name]
		if !ok || c.Status != api.CheckFail || !strings.Contains(c.Detail, want) || c.Fix == "" {
			t.Errorf("check %s: want fail mentioning %q with a fix, got %+v", name, want, c)
		}
	}
	if c := got["sshd"]; c.Status != api.CheckOK {
		t.Errorf("sshd (a symlink to an executable) should pass: %+v", c)
	}

	notExt4 := filepath.Join(t.TempDir(), "zero.img")
	writeFile(t, notExt4, strings.Repeat("\x00", 4096), 0o644)
	if cs := VerifyOffline(context.Background(), notExt4, pub); len(cs) != 1 || cs[0].Status != api.CheckFail {
		t.Errorf("a non-ext4 file: %+v", cs)
	}
}

func TestCustomizeRefusesBadInputs(t *testing.T) {
	tree, pub, agent := fakeTree(t)
	notKey := filepath.Join(t.TempDir(), "k")
	writeFile(t, notKey, "hello\n", 0o644)
	for name, c := range map[string]struct{ tree, pub, agent, distro, want string }{
		"not a key":      {tree, notKey, agent, "debian", "not an OpenSSH public key"},
		"no agent":       {tree, pub, "/nonexistent", "debian", "not an executable file"},
		"not a tree":     {t.TempDir(), pub, agent, "debian", "not a root filesystem tree"},
		"unknown distro": {tree, pub, agent, "arch", "expected one of: debian"},
	} {
		out, err := run(t, sysexec.Cmd{
			Argv: []string{"bash", filepath.Join(scriptsDir(t), "customize.sh")},
			Env:  []string{"BANGER_ROOTFS=" + c.tree, "BANGER_DISTRO=" + c.distro, "BANGER_PUBKEY=" + c.pub, "BANGER_AGENT=" + c.agent},
		})
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: err %v, output %q should say %q", name, err, out, c.want)
		}
	}
}

func TestRegister(t *testing.T) {
	tree, pub, agent := fakeTree(t)
	b := &Builder{}
	ctx := context.Background()

	// Without the agent: refused, naming what is missing.
	img := pack(t, tree)
	_, err := b.Register(ctx, RegisterRequest{Name: "mine", RootfsPath: img})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument || !strings.Contains(ae.Message, "banger-agent") ||
		strings.Contains(ae.Message, "sshd") || ae.Hint == "" {
		t.Errorf("image without agent: %v", err)
	}

	// Without sshd either: both named.
	os.Remove(filepath.Join(tree, "usr/sbin/sshd"))
	_, err = b.Register(ctx, RegisterRequest{Name: "mine", RootfsPath: pack(t, tree)})
	if err == nil || !strings.Contains(err.Error(), "banger-agent") || !strings.Contains(err.Error(), "/usr/sbin/sshd") {
		t.Errorf("image without agent and sshd: %v", err)
	}

	// Not ext4.
	raw := filepath.Join(t.TempDir(), "disk.qcow2")
	writeFile(t, raw, "QFI\xfb"+strings.Repeat("\x00", 4096), 0o644)
	if _, err := b.Register(ctx, RegisterRequest{Name: "mine", RootfsPath: raw}); err == nil || !strings.Contains(err.Error(), "0xEF53") {
		t.Errorf("qcow2 file: %v", err)
	}
	if _, err := b.Register(ctx, RegisterRequest{Name: "mine", RootfsPath: "/nonexistent.ext4"}); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := b.Register(ctx, RegisterRequest{Name: "Bad Name", RootfsPath: img}); err == nil {
		t.Error("bad name accepted")
	}

	// Customized: accepted.
	os.Symlink("/usr/bin/busybox", filepath.Join(tree, "usr/sbin/sshd"))
	if out, err := customize(t, tree, pub, agent, "", ""); err != nil {
		t.Fatalf("customize: %v\n%s", err, out)
	}
	good := pack(t, tree)
	got, err := b.Register(ctx, RegisterRequest{Name: "mine", RootfsPath: good, KernelPath: agent})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	sum, size, _ := disk.SHA256(good)
	if got.Name != "mine" || got.Distro != "custom" || got.RootfsPath != good || got.SHA256 != sum || got.SizeBytes != size || got.KernelPath != agent {
		t.Errorf("registered image: %+v", got)
	}
	if _, err := b.Register(ctx, RegisterRequest{Name: "mine", RootfsPath: good, KernelPath: "/nonexistent/vmlinux"}); err == nil {
		t.Error("missing kernel accepted")
	}
	// The daemon's working directory is not the user's: a relative rootfs
	// path is refused, even one that would resolve to a good image here.
	t.Chdir(filepath.Dir(good))
	_, err = b.Register(ctx, RegisterRequest{Name: "mine", RootfsPath: filepath.Base(good)})
	if !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument || !strings.Contains(ae.Message, "not absolute") {
		t.Errorf("relative rootfs path: %v", err)
	}
}

func TestIsExt4AndMountsUnder(t *testing.T) {
	short := filepath.Join(t.TempDir(), "short")
	writeFile(t, short, "x", 0o644)
	if ok, err := IsExt4(short); ok || err != nil {
		t.Errorf("1-byte file: %v %v", ok, err)
	}
	if m, err := MountsUnder("/proc"); err != nil || len(m) == 0 || m[0] != "/proc" {
		t.Errorf("MountsUnder(/proc) = %v, %v", m, err)
	}
	if unescapeMount(`/a\040b`) != "/a b" {
		t.Error("mountinfo escapes not decoded")
	}
}
