package image

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/sysexec"
)

// scriptsDir writes the embedded images/ tree to a temp dir, as Build does.
func scriptsDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "scripts")
	if err := writeScripts(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func run(t *testing.T, c sysexec.Cmd) (string, error) {
	t.Helper()
	res, err := sysexec.Exec{}.Run(context.Background(), c)
	return string(res.Stdout) + string(res.Stderr), err
}

func TestScriptsSyntaxAndShellcheck(t *testing.T) {
	dir := scriptsDir(t)
	scripts := []string{"make-rootfs-debian.sh", "make-rootfs-void.sh", "pack-image.sh", "unpack-tree.sh", "customize.sh", "distro/debian.sh", "distro/void.sh", "guest/banger-net", "guest/banger-home", "guest/banger-hostkeys"}
	for _, s := range scripts {
		if out, err := run(t, sysexec.Cmd{Argv: []string{"bash", "-n", s}, Dir: dir}); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
		if st, err := os.Stat(filepath.Join(dir, s)); err != nil || (!strings.HasPrefix(s, "distro/") && st.Mode()&0o111 == 0) {
			t.Errorf("%s is not written executable: %v", s, err)
		}
	}
	if _, err := sysexec.LookPath("shellcheck"); err != nil {
		t.Skip("shellcheck is not installed (apt-get install shellcheck): only bash -n was checked")
	}
	if out, err := run(t, sysexec.Cmd{Argv: append([]string{"shellcheck", "-x"}, scripts...), Dir: dir}); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

func TestBootstrapArgvGolden(t *testing.T) {
	dir := scriptsDir(t)
	script := filepath.Join(dir, "make-rootfs-debian.sh")
	common := []string{"BANGER_DRY_RUN=1", "BANGER_OUTPUT=/cache/tree.tar", "BANGER_SUITE=bookworm",
		"BANGER_MIRROR=http://deb.debian.org/debian", "BANGER_PACKAGES=bash,git,iputils-ping"}
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"BANGER_TOOL=debootstrap"},
			"debootstrap\n--variant=minbase\n--components=main\n--merged-usr\n--include=bash,git,iputils-ping\nbookworm\n/cache/tree.tar.tree\nhttp://deb.debian.org/debian\n"},
		{[]string{"BANGER_TOOL=mmdebstrap", "BANGER_MODE=unshare"},
			"mmdebstrap\n--mode=unshare\n--variant=minbase\n--components=main\n--skip=cleanup/apt/lists\n--include=bash,git,iputils-ping\nbookworm\n/cache/tree.tar\nhttp://deb.debian.org/debian\n"},
		{[]string{"BANGER_MODE=root", "BANGER_APT_CACHE=/cache/apt"},
			"mmdebstrap\n--mode=root\n--variant=minbase\n--components=main\n--skip=cleanup/apt/lists\n--include=bash,git,iputils-ping\n" +
				"--skip=download/empty\n--skip=essential/unlink\n--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/\n" +
				"--setup-hook=sync-in /cache/apt /var/cache/apt/archives/\n--customize-hook=sync-out /var/cache/apt/archives /cache/apt\n" +
				"bookworm\n/cache/tree.tar\nhttp://deb.debian.org/debian\n"},
	} {
		out, err := run(t, sysexec.Cmd{Argv: []string{"bash", script}, Env: append(append([]string{}, common...), c.env...)})
		if err != nil {
			t.Fatalf("%v: %v\n%s", c.env, err, out)
		}
		if out != c.want {
			t.Errorf("%v: argv\n got %q\nwant %q", c.env, out, c.want)
		}
	}
	for _, bad := range [][]string{
		{"BANGER_SUITE=--foreign"},
		{"BANGER_MIRROR=--no-check-gpg"},
		{"BANGER_PACKAGES=bash,--foo"},
		{"BANGER_PACKAGES=bash git"},
		{"BANGER_TOOL=cdebootstrap"},
		{"BANGER_MODE=fakechroot"},
		{"BANGER_TOOL=debootstrap", "BANGER_MODE=unshare"},
		{"BANGER_APT_CACHE=/my cache"},
		{"BANGER_OUTPUT=relative.tar"},
	} {
		env := append([]string{"BANGER_DRY_RUN=1", "BANGER_OUTPUT=/cache/tree.tar"}, bad...)
		if out, err := run(t, sysexec.Cmd{Argv: []string{"bash", script}, Env: env}); err == nil {
			t.Errorf("%v accepted:\n%s", bad, out)
		}
	}
}

// homeEnv runs banger-home against a prepared work-disk directory.
func runHome(t *testing.T, scripts, home, skel, keys string) string {
	t.Helper()
	out, err := run(t, sysexec.Cmd{
		Argv: []string{filepath.Join(scripts, "guest", "banger-home")},
		Env:  []string{"BANGER_HOME_ROOT=" + home, "BANGER_SKEL=" + skel, "BANGER_TRUSTED_KEYS=" + keys, "BANGER_DATE=20260101"},
	})
	if err != nil {
		t.Fatalf("banger-home: %v\n%s", err, out)
	}
	return out
}

func writeFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// snapshot records every path, mode and content under dir.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		line := rel + " " + info.Mode().String()
		if info.Mode().IsRegular() {
			line += " " + readFile(t, p)
		}
		lines = append(lines, line)
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func homeFixture(t *testing.T) (scripts, home, skel, keys string) {
	scripts = scriptsDir(t)
	base := t.TempDir()
	home, skel, keys = filepath.Join(base, "root"), filepath.Join(base, "skel"), filepath.Join(base, "banger_authorized_keys")
	writeFile(t, filepath.Join(skel, ".bashrc"), "# skel bashrc\n", 0o644)
	writeFile(t, filepath.Join(skel, ".profile"), "# skel profile\n", 0o644)
	writeFile(t, keys, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBanger test\n", 0o644)
	if err := os.MkdirAll(filepath.Join(home, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	return
}

func TestBangerHomeFreshDisk(t *testing.T) {
	scripts, home, skel, keys := homeFixture(t)
	out := runHome(t, scripts, home, skel, keys)
	if !strings.Contains(out, "seeding a fresh home") {
		t.Errorf("output does not say it seeded:\n%s", out)
	}
	bashrc := readFile(t, filepath.Join(home, ".bashrc"))
	if !strings.HasPrefix(bashrc, "# skel bashrc\n") || !strings.Contains(bashrc, "PS1=") {
		t.Errorf(".bashrc: %q", bashrc)
	}
	if readFile(t, filepath.Join(home, ".profile")) != "# skel profile\n" {
		t.Error(".profile not from skel")
	}
	if readFile(t, filepath.Join(home, ".ssh", "authorized_keys")) != readFile(t, keys) {
		t.Error("authorized_keys is not the trusted key")
	}
	for p, want := range map[string]os.FileMode{
		home: 0o700, filepath.Join(home, ".ssh"): 0o700, filepath.Join(home, ".ssh", "authorized_keys"): 0o600,
		filepath.Join(home, ".bashrc"): 0o644,
	} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %o, want %o", p, st.Mode().Perm(), want)
		}
		if os.Geteuid() == 0 {
			if uid := fileUID(st); uid != 0 {
				t.Errorf("%s owned by uid %d, want root", p, uid)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(home, ".banger-seeded")); err != nil {
		t.Error("no .banger-seeded marker")
	}
	// Second boot: nothing changes.
	before := snapshot(t, home)
	out = runHome(t, scripts, home, skel, keys)
	if after := snapshot(t, home); after != before {
		t.Errorf("second run changed the home:\n%s\n---\n%s", before, after)
	}
	if !strings.Contains(out, "already seeded") {
		t.Errorf("second run output: %s", out)
	}
}

func TestBangerHomeSeededUntouched(t *testing.T) {
	scripts, home, skel, keys := homeFixture(t)
	writeFile(t, filepath.Join(home, ".banger-seeded"), "seeded\n", 0o644)
	writeFile(t, filepath.Join(home, ".bashrc"), "# mine\n", 0o600)
	writeFile(t, filepath.Join(home, "project", "main.go"), "package main\n", 0o644)
	before := snapshot(t, home)
	runHome(t, scripts, home, skel, keys)
	if after := snapshot(t, home); after != before {
		t.Errorf("a seeded home was changed:\n%s\n---\n%s", before, after)
	}
}

func TestBangerHomeRepairsNestedLayout(t *testing.T) {
	scripts, home, skel, keys := homeFixture(t)
	// An older image left the previous home in /root/root; the new boot
	// already wrote a newer .bashrc at the top.
	writeFile(t, filepath.Join(home, "root", ".banger-seeded"), "old\n", 0o644)
	writeFile(t, filepath.Join(home, "root", ".bashrc"), "# old bashrc\n", 0o644)
	writeFile(t, filepath.Join(home, "root", ".profile"), "# same\n", 0o644)
	writeFile(t, filepath.Join(home, "root", "work", "notes.txt"), "keep me\n", 0o644)
	writeFile(t, filepath.Join(home, "root", ".ssh", "authorized_keys"), "ssh-ed25519 AAAAold\n", 0o600)
	writeFile(t, filepath.Join(home, ".bashrc"), "# newer bashrc\n", 0o644)
	writeFile(t, filepath.Join(home, ".profile"), "# same\n", 0o644)

	out := runHome(t, scripts, home, skel, keys)
	t.Log(out)
	if _, err := os.Stat(filepath.Join(home, "root")); !os.IsNotExist(err) {
		t.Errorf("nested dir still there: %v", err)
	}
	if got := readFile(t, filepath.Join(home, ".bashrc")); got != "# newer bashrc\n" {
		t.Errorf("newer top-level .bashrc overwritten: %q", got)
	}
	if got := readFile(t, filepath.Join(home, ".bashrc.nested-20260101")); got != "# old bashrc\n" {
		t.Errorf("nested copy of the conflicting file not kept: %q", got)
	}
	if _, err := os.Stat(filepath.Join(home, ".profile.nested-20260101")); !os.IsNotExist(err) {
		t.Error("an identical file was kept twice")
	}
	if readFile(t, filepath.Join(home, "work", "notes.txt")) != "keep me\n" ||
		readFile(t, filepath.Join(home, ".ssh", "authorized_keys")) != "ssh-ed25519 AAAAold\n" {
		t.Error("nested entries not moved up intact")
	}
	for _, want := range []string{"moved root/work -> work", "kept .bashrc", "removed empty"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q", want)
		}
	}
	if strings.Contains(out, "seeding") {
		t.Error("a home with a moved-up marker was seeded again")
	}
	before := snapshot(t, home)
	runHome(t, scripts, home, skel, keys)
	if after := snapshot(t, home); after != before {
		t.Errorf("second run after repair changed the home:\n%s\n---\n%s", before, after)
	}
}

func TestBangerHomeIgnoresUnrelatedRootDir(t *testing.T) {
	scripts, home, skel, keys := homeFixture(t)
	writeFile(t, filepath.Join(home, ".banger-seeded"), "seeded\n", 0o644)
	writeFile(t, filepath.Join(home, "root", "data.csv"), "a,b\n", 0o644) // a user's dir called root, not a home
	before := snapshot(t, home)
	runHome(t, scripts, home, skel, keys)
	if after := snapshot(t, home); after != before {
		t.Errorf("an unrelated root/ dir was treated as a nested home")
	}
}

// netFixture runs banger-net with fake ip and hostname that record their argv.
func runNet(t *testing.T, cmdline string) (calls, out string, etc string, err error) {
	t.Helper()
	scripts := scriptsDir(t)
	base := t.TempDir()
	bin, etc, sys := filepath.Join(base, "bin"), filepath.Join(base, "etc"), filepath.Join(base, "sys")
	log := filepath.Join(base, "calls")
	for _, tool := range []string{"ip", "hostname"} {
		writeFile(t, filepath.Join(bin, tool), "#!/bin/sh\necho \""+tool+" $*\" >>\"$FAKE_LOG\"\n", 0o755)
	}
	writeFile(t, filepath.Join(etc, "hosts"), "127.0.0.1\tlocalhost\n127.0.1.1\told.vm old # banger\n", 0o644)
	writeFile(t, filepath.Join(base, "cmdline"), cmdline+"\n", 0o644)
	if err := os.MkdirAll(filepath.Join(sys, "class", "net", "eth0"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, sysexec.Cmd{
		Argv: []string{filepath.Join(scripts, "guest", "banger-net")},
		Env: []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "FAKE_LOG=" + log, "BANGER_CMDLINE=" + filepath.Join(base, "cmdline"),
			"BANGER_ETC=" + etc, "BANGER_SYS=" + sys, "BANGER_NET_WAIT=1"},
	})
	b, _ := os.ReadFile(log)
	return string(b), out, etc, err
}

func TestBangerNetAppliesCmdline(t *testing.T) {
	calls, out, etc, err := runNet(t, "console=ttyS0 root=/dev/vda rw ip=172.30.0.5::172.30.0.1:255.255.255.0:dev:eth0:off:172.30.0.1 banger.agent_port=1024")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "ip link set dev lo up\nip link set dev eth0 up\nip addr replace 172.30.0.5/24 dev eth0\n" +
		"ip route replace default via 172.30.0.1 dev eth0\nhostname dev\n"
	if calls != want {
		t.Errorf("calls\n got %q\nwant %q", calls, want)
	}
	if got := readFile(t, filepath.Join(etc, "resolv.conf")); !strings.Contains(got, "nameserver 172.30.0.1\n") || !strings.Contains(got, "search vm\n") {
		t.Errorf("resolv.conf: %q", got)
	}
	if got := readFile(t, filepath.Join(etc, "hostname")); got != "dev\n" {
		t.Errorf("hostname file: %q", got)
	}
	if got := readFile(t, filepath.Join(etc, "hosts")); got != "127.0.0.1\tlocalhost\n127.0.1.1\tdev.vm dev # banger\n" {
		t.Errorf("hosts: %q", got)
	}
}

func TestBangerNetVariants(t *testing.T) {
	// Prefix-length mask, no gateway, no hostname, no dns.
	calls, out, etc, err := runNet(t, "ip=10.1.2.3:::16::eth0:off")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if calls != "ip link set dev lo up\nip link set dev eth0 up\nip addr replace 10.1.2.3/16 dev eth0\n" {
		t.Errorf("calls: %q", calls)
	}
	if _, err := os.Stat(filepath.Join(etc, "resolv.conf")); !os.IsNotExist(err) {
		t.Error("resolv.conf written without a dns server")
	}
	// Nothing to do.
	for _, cmdline := range []string{"console=ttyS0 root=/dev/vda", "ip=dhcp"} {
		calls, out, _, err := runNet(t, cmdline)
		if err != nil || calls != "" {
			t.Errorf("%q: err %v calls %q out %s", cmdline, err, calls, out)
		}
	}
	// Refused, with nothing applied.
	for _, cmdline := range []string{
		"ip=172.30.0.300::172.30.0.1:255.255.255.0:dev:eth0:off:172.30.0.1",
		"ip=172.30.0.5::172.30.0.1:255.0.255.0:dev:eth0:off",
		"ip=172.30.0.5::172.30.0.1:24:dev:eth0;reboot:off",
		"ip=172.30.0.5::172.30.0.1:24:dev:eth1:off",
	} {
		calls, out, _, err := runNet(t, cmdline)
		if err == nil || calls != "" {
			t.Errorf("%q accepted: calls %q out %s", cmdline, calls, out)
		}
	}
}

func TestBangerHostkeys(t *testing.T) {
	if _, err := sysexec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen is not installed (apt-get install openssh-client)")
	}
	scripts := scriptsDir(t)
	dir := t.TempDir()
	// A half-written key (no .pub) from an interrupted boot is replaced.
	writeFile(t, filepath.Join(dir, "ssh_host_ecdsa_key"), "partial", 0o600)
	hostkeys := sysexec.Cmd{Argv: []string{filepath.Join(scripts, "guest", "banger-hostkeys")}, Env: []string{"BANGER_SSH_DIR=" + dir}}
	out, err := run(t, hostkeys)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, typ := range []string{"ed25519", "ecdsa"} {
		pub := readFile(t, filepath.Join(dir, "ssh_host_"+typ+"_key.pub"))
		if !strings.Contains(pub, typ) {
			t.Errorf("%s public key: %q", typ, pub)
		}
		if st, err := os.Stat(filepath.Join(dir, "ssh_host_"+typ+"_key")); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s private key: %v", typ, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ssh_host_rsa_key")); !os.IsNotExist(err) {
		t.Error("an RSA key was generated")
	}
	before := snapshot(t, dir)
	if out, err := run(t, hostkeys); err != nil || out != "" {
		t.Errorf("second run: %v %q", err, out)
	}
	if snapshot(t, dir) != before {
		t.Error("second run changed the keys")
	}
}
