package privhelper

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/testneed"
)

// The attack test runs the installed helper through the real sudo, as two
// throwaway users the test creates, inside a mount and network namespace the
// test makes: /usr/local, /run and /etc/sudoers.d are private there, so the
// install, the sudoers drop-ins and the registry never touch the host.

func TestAttacksAsThrowawayUsers(t *testing.T) {
	if envknob.HelperSandbox.On() {
		attackInSandbox(t)
		return
	}
	if testing.Short() {
		t.Skip("host integration test (root, sudo, throwaway users); not in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("host integration test: needs root to create throwaway users and namespaces")
	}
	for _, tool := range []string{"sudo", "visudo", "useradd", "userdel", "runuser", "unshare", "nft", "ip"} {
		if _, err := sysexec.LookPath(tool); err != nil {
			testneed.Skip(t, "%s", tool+" is needed (apt-get install sudo passwd util-linux nftables iproute2)")
		}
	}
	bins := t.TempDir()
	if err := os.Chmod(bins, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"banger-helper", "bangerd"} {
		if _, err := sysexec.Run(context.Background(), "go", "build", "-o", filepath.Join(bins, c), "github.com/banger-dev/banger/cmd/"+c); err != nil {
			t.Fatalf("build %s: %v", c, err)
		}
	}
	alice, mallory := throwawayUser(t, "bgta"), throwawayUser(t, "bgtm")

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--net", "--",
		self, "-test.run", "^TestAttacksAsThrowawayUsers$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), string(envknob.HelperSandbox)+"=1", string(envknob.HelperBins)+"="+bins, string(envknob.HelperUsers)+"="+alice+","+mallory)
	out, err := cmd.CombinedOutput()
	t.Logf("sandbox:\n%s", out)
	if err != nil {
		t.Fatalf("the attacks in the sandbox failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestAttacksAsThrowawayUsers") {
		t.Fatal("the sandboxed test did not run")
	}
}

// throwawayUser creates a system-less, home-less user and removes it when the
// test ends.
func throwawayUser(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if _, err := sysexec.Run(context.Background(), "useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name); err != nil {
		t.Fatalf("useradd: %v", err)
	}
	t.Cleanup(func() {
		if _, err := sysexec.Run(context.Background(), "userdel", name); err != nil {
			t.Errorf("userdel %s: %v", name, err)
		}
	})
	return name
}

// sandbox is the state of the child run.
type sandbox struct {
	t              *testing.T
	alice, mallory string
	bins           string
}

func (s *sandbox) root(argv ...string) string {
	s.t.Helper()
	out, err := sysexec.Run(context.Background(), argv...)
	if err != nil {
		s.t.Fatalf("%v", err)
	}
	return string(out)
}

// as runs argv as user (runuser, no shell) with env added, and returns its
// result; the error is a *sysexec.Error with the exit code and stderr.
func (s *sandbox) as(user string, env []string, argv ...string) (sysexec.Result, error) {
	full := append([]string{"runuser", "-u", user, "--"}, argv...)
	if env != nil {
		full = append([]string{"runuser", "-u", user, "--", "env"}, append(env, argv...)...)
	}
	return sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{Argv: full})
}

// helper runs the installed helper through sudo -n as user.
func (s *sandbox) helper(user string, args ...string) (sysexec.Result, error) {
	return s.as(user, nil, append([]string{"sudo", "-n", DefaultPath}, args...)...)
}

func (s *sandbox) ok(user string, args ...string) {
	s.t.Helper()
	if _, err := s.helper(user, args...); err != nil {
		s.t.Errorf("%s: helper %q: %v", user, args, err)
	}
}

// refused checks the call failed with want in its stderr (or stdout).
func (s *sandbox) refused(user, want string, args ...string) {
	s.t.Helper()
	res, err := s.helper(user, args...)
	var se *sysexec.Error
	if !errors.As(err, &se) || !strings.Contains(se.Stderr+string(res.Stdout), want) {
		s.t.Errorf("%s: helper %q: %v, want a refusal containing %q", user, args, err, want)
	}
}

func uidOf(t *testing.T, name string) int {
	out, err := sysexec.Output(context.Background(), "id", "-u", name)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(out)
	return n
}

func attackInSandbox(t *testing.T) {
	users := strings.Split(envknob.HelperUsers.Value(), ",")
	s := &sandbox{t: t, alice: users[0], mallory: users[1], bins: envknob.HelperBins.Value()}
	aliceUID := uidOf(t, s.alice)

	// Private /usr/local, /run and /etc/sudoers.d (root-owned, 0755).
	sudoersDir := t.TempDir()
	must(t, os.Chmod(sudoersDir, 0o755))
	s.root("mount", "--make-rprivate", "/")
	s.root("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/usr/local")
	s.root("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
	s.root("mount", "--bind", sudoersDir, "/etc/sudoers.d")
	// The network: an uplink with a default route, and a LAN subnet inside
	// banger's allowed range (the route-hijack target).
	s.root("ip", "link", "set", "lo", "up")
	s.root("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
	s.root("ip", "addr", "add", "192.0.2.1/24", "dev", "up0")
	s.root("ip", "link", "set", "up0", "up")
	s.root("ip", "link", "set", "up0p", "up")
	s.root("ip", "route", "add", "default", "via", "192.0.2.254")
	s.root("ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p")
	s.root("ip", "addr", "add", "172.30.9.1/24", "dev", "lan0")
	s.root("ip", "link", "set", "lan0", "up")
	s.root("ip", "link", "set", "lan0p", "up")

	// 1. Install as `make install-helper` does, for both users.
	for _, u := range []string{s.alice, s.mallory} {
		s.root(filepath.Join(s.bins, "banger-helper"), "install", "--user", u)
	}
	if err := CheckInstalled(DefaultPath); err != nil {
		t.Fatalf("installed helper: %v", err)
	}
	s.root("visudo", "-c")
	st, err := os.Stat(SudoersFileFor(aliceUID))
	if err != nil || st.Mode().Perm() != 0o440 || ownerOf(st) != 0 {
		t.Errorf("sudoers drop-in: %v %v", st, err)
	}
	// The installed copy never installs, even for root.
	if _, err := sysexec.Run(context.Background(), DefaultPath, "install", "--user", s.alice); err == nil {
		t.Error("the installed helper ran install")
	}
	// Alice cannot replace the granted file or plant one beside it.
	for _, argv := range [][]string{
		{"cp", "/bin/true", DefaultPath},
		{"cp", "/bin/true", filepath.Join(filepath.Dir(DefaultPath), "x")},
		{"mv", DefaultPath, "/tmp/x"},
	} {
		if _, err := s.as(s.alice, nil, argv...); err == nil {
			t.Errorf("alice could run %q", argv)
		}
	}
	// A user-owned copy is never grantable: --sudoers-line refuses it.
	own := "/usr/local/own/banger-helper"
	must(t, os.MkdirAll(filepath.Dir(own), 0o755))
	s.root("cp", filepath.Join(s.bins, "banger-helper"), own)
	s.root("chown", s.alice, own)
	if err := CheckInstalled(own); err == nil || !strings.Contains(err.Error(), "is owned by uid "+strconv.Itoa(aliceUID)+", not root") {
		t.Errorf("CheckInstalled on a user-owned helper: %v", err)
	}
	// --sudoers-line names the real user, whatever the environment says.
	s.root("install", "-D", "-m", "0755", filepath.Join(s.bins, "bangerd"), "/usr/local/bin/bangerd")
	res, err := s.as(s.alice, []string{"SUDO_USER=ALL", "USER=ALL"}, "/usr/local/bin/bangerd", "--sudoers-line")
	if err != nil || !strings.HasPrefix(string(res.Stdout), s.alice+" ALL=(root) NOPASSWD: "+DefaultPath+" ^bridge-ensure ") {
		t.Errorf("bangerd --sudoers-line as alice with SUDO_USER=ALL: %q %v", res.Stdout, err)
	}

	// 2. The joined-argument glob: a verb and its argument as one word, extra
	// words, or an ungranted subcommand are refused before anything runs.
	s.refused(s.alice, "unknown helper verb", "tap-del bg-00000001")
	for _, args := range [][]string{
		{"tap-del", "bg-00000001", "--foreground"},
		{"install", "--user", s.alice},
		{"tap-del", "bg-0000000g"},
		{"nat-remove"},
	} {
		if res, err := s.helper(s.alice, args...); err == nil {
			t.Errorf("sudo let alice run %q: %s", args, res.Stdout)
		} else if se := new(sysexec.Error); errors.As(err, &se) && !strings.Contains(se.Stderr, "sudo") {
			t.Errorf("helper %q was refused by the helper, not by sudo's pinned shapes: %v", args, err)
		}
	}

	// 3. A fake nft earlier in PATH, on a host whose sudo passes PATH on
	// (no secure_path for alice).
	must(t, os.WriteFile(filepath.Join(sudoersDir, "zz-test-path"), []byte("Defaults:"+s.alice+" !secure_path\n"+s.alice+" ALL=(root) NOPASSWD: /usr/bin/printenv PATH\n"), 0o440))
	s.root("visudo", "-c")
	evil := t.TempDir()
	must(t, os.Chmod(evil, 0o755))
	pwned := filepath.Join(evil, "pwned")
	for _, prog := range []string{"nft", "iptables", "resolvectl"} {
		must(t, os.WriteFile(filepath.Join(evil, prog), []byte("#!/bin/sh\ntouch "+pwned+"\n"), 0o755))
	}
	evilPATH := "PATH=" + evil + ":/usr/sbin:/usr/bin:/sbin:/bin"
	if res, err := s.as(s.alice, []string{evilPATH}, "sudo", "-n", "/usr/bin/printenv", "PATH"); err != nil || !strings.HasPrefix(string(res.Stdout), evil) {
		t.Fatalf("the test's premise failed: sudo did not pass alice's PATH to root (%q, %v)", res.Stdout, err)
	}
	if _, err := s.as(s.alice, []string{evilPATH}, "sudo", "-n", DefaultPath, "bridge-ensure", "banger7", "172.30.7.0/24"); err != nil {
		t.Fatalf("alice's bridge: %v", err)
	}
	if _, err := s.as(s.alice, []string{evilPATH}, "sudo", "-n", DefaultPath, "nat-ensure", "172.30.7.0/24", "banger7"); err != nil {
		t.Errorf("alice's NAT: %v", err)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Error("the helper ran a program from the caller's PATH as root")
	}
	rules := s.root("nft", "list", "table", "ip", "banger-banger7")

	// 7. The firewall: only alice's subnet, only towards the uplink.
	for _, want := range []string{
		`iifname "banger7" ip saddr 172.30.7.0/24 oifname "up0" accept`,
		`ip saddr 172.30.7.0/24 oifname "up0" masquerade`,
		`iifname "banger7" drop`,
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("alice's NAT table lacks %q:\n%s", want, rules)
		}
	}

	// 5. Route hijack: a subnet the LAN already uses is refused, even
	// inside the allowed range; the LAN route is untouched.
	s.refused(s.alice, "overlaps 172.30.9.0/24", "bridge-ensure", "banger8", "172.30.9.0/24")
	s.refused(s.alice, "allows VM subnets only inside", "bridge-ensure", "banger8", "192.168.77.0/24")
	if routes := s.root("ip", "route", "show", "172.30.9.0/24"); !strings.Contains(routes, "dev lan0") {
		t.Errorf("the LAN route moved: %s", routes)
	}

	// 6. DNS hijack: only the configured domain, only the bridge's address.
	s.refused(s.alice, `allows only ["vm"]`, "dns-register", "banger7", "172.30.7.1", "com")
	s.refused(s.alice, "own address is 172.30.7.1", "dns-register", "banger7", "192.0.2.1", "vm")
	if _, err := s.helper(s.alice, "dns-register", "banger7", "172.30.7.1", "vm"); exitCode(err) != exitSkipped {
		t.Errorf("dns-register of alice's own bridge without resolved: %v, want exit %d (skipped)", err, exitSkipped)
	}

	// 8. Other users: mallory can touch nothing of alice's.
	s.ok(s.alice, "tap-add", "bg-0000a11c", "banger7", strconv.Itoa(aliceUID))
	s.refused(s.mallory, "belongs to uid", "tap-del", "bg-0000a11c")
	s.refused(s.mallory, "belongs to uid", "tap-add", "bg-0000bad0", "banger7", strconv.Itoa(uidOf(t, s.mallory)))
	s.refused(s.mallory, "may only act for it", "tap-add", "bg-0000bad0", "banger7", strconv.Itoa(aliceUID))
	s.refused(s.mallory, "belongs to uid", "bridge-ensure", "banger7", "172.30.6.0/24")
	s.refused(s.mallory, "belongs to uid", "bridge-delete", "banger7")
	s.refused(s.mallory, "belongs to uid", "nat-remove", "banger7")
	s.refused(s.mallory, "belongs to uid", "nat-ensure", "172.30.7.0/24", "banger7")
	s.refused(s.mallory, "belongs to uid", "dns-unregister", "banger7")
	s.refused(s.mallory, "may only act for it", "socket-reclaim", "/run/user/"+strconv.Itoa(aliceUID)+"/banger/x.sock", strconv.Itoa(aliceUID))
	s.ok(s.mallory, "bridge-ensure", "banger5", "172.30.5.0/24")
	s.ok(s.mallory, "bridge-ensure", "banger6", "172.30.6.0/24")
	s.refused(s.mallory, "max_bridges_per_user", "bridge-ensure", "banger4", "172.30.4.0/24")
	if ports := s.root("ip", "-o", "link", "show", "master", "banger7"); !strings.Contains(ports, "bg-0000a11c") || strings.Count(strings.TrimSpace(ports), "\n") != 0 {
		t.Errorf("alice's bridge after mallory's attempts: %s", ports)
	}
	if rules := s.root("nft", "list", "table", "ip", "banger-banger7"); !strings.Contains(rules, "172.30.7.0/24") {
		t.Errorf("alice lost her NAT: %s", rules)
	}

	// 9. image-build: the contract of docs/security.md.
	s.imageBuildAttacks(aliceUID)

	// Everyone cleans up their own.
	for _, c := range [][]string{
		{s.alice, "tap-del", "bg-0000a11c"}, {s.alice, "nat-remove", "banger7"}, {s.alice, "bridge-delete", "banger7"},
		{s.mallory, "bridge-delete", "banger5"}, {s.mallory, "bridge-delete", "banger6"},
	} {
		s.ok(c[0], c[1:]...)
	}
	if rules := s.root("nft", "list", "ruleset"); strings.Contains(rules, "banger") {
		t.Errorf("rules left: %s", rules)
	}
}

func exitCode(err error) int {
	var se *sysexec.Error
	if errors.As(err, &se) {
		return se.ExitCode
	}
	if err == nil {
		return 0
	}
	return -1
}

// imageBuildAttacks: alice cannot make image-build write outside her cache,
// follow a symlink out, run another script or pass other parameters.
func (s *sandbox) imageBuildAttacks(aliceUID int) {
	t := s.t
	// Private homes: /home/ALICE is alice's, 0700.
	s.root("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/home")
	home := "/home/" + s.alice
	must(t, os.Mkdir(home, 0o700))
	must(t, os.Chown(home, aliceUID, -1))
	cache := home + "/.cache/banger"
	mine := func(argv ...string) {
		t.Helper()
		if _, err := s.as(s.alice, nil, argv...); err != nil {
			t.Fatalf("alice: %q: %v", argv, err)
		}
	}
	mine("mkdir", "-p", cache)
	out := cache + "/.image-x.ext4"
	mine("touch", out)
	const mirror = "http://deb.debian.org/debian"
	build := func(output string) []string {
		return []string{"image-build", "bookworm", mirror, "1024", "-", output}
	}
	victim := "/var/tmp/banger-attack-victim"
	must(t, os.WriteFile(victim, []byte("root's\n"), 0o644))
	defer os.Remove(victim)

	// Outside the cache, through a symlink, a hard link, another user's.
	s.refused(s.alice, "not under your banger cache", build("/etc/passwd")...)
	s.refused(s.alice, "not under your banger cache", build(victim)...)
	mine("ln", "-s", victim, cache+"/link.ext4")
	s.refused(s.alice, "not a symlink", build(cache+"/link.ext4")...)
	mine("mkdir", home+"/elsewhere")
	mine("touch", home+"/elsewhere/img.ext4")
	mine("ln", "-s", home+"/elsewhere", cache+"/dirlink")
	s.refused(s.alice, "is a symlink or not a directory", build(cache+"/dirlink/img.ext4")...)
	mine("ln", home+"/elsewhere/img.ext4", cache+"/hard.ext4")
	s.refused(s.alice, "links", build(cache+"/hard.ext4")...)
	s.refused(s.mallory, "not under your banger cache", build(out)...)
	// The cache itself a symlink out (to a directory root writes).
	mine("mv", cache, cache+"-real")
	mine("ln", "-s", home+"/elsewhere", cache)
	s.refused(s.alice, "is a symlink or not a directory", build("/home/"+s.alice+"/.cache/banger/img.ext4")...)
	mine("rm", cache)
	mine("mv", cache+"-real", cache)
	// A helper-build dir of alice's (or a symlink in its place) is not the
	// helper's area.
	mine("ln", "-s", "/etc", cache+"/helper-build")
	s.refusedIn(s.alice, "must be the helper's own directory", tarOf(t, map[string]string{"pubkey": "k", "agent": "a"}), build(out)...)
	mine("rm", cache+"/helper-build")
	mine("mkdir", cache+"/helper-build")
	s.refusedIn(s.alice, "must be root's", tarOf(t, map[string]string{"pubkey": "k", "agent": "a"}), build(out)...)
	mine("rmdir", cache+"/helper-build")

	// Inputs: no symlinks, no names leaving the inputs dir, nothing but
	// pubkey, agent and modules/<version>/.
	for name, stream := range map[string][]byte{
		"a symlink":     tarWith(t, &tar.Header{Name: "pubkey", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"}),
		"a parent name": tarWith(t, &tar.Header{Name: "modules/6.1/../../../../etc/cron.d/x", Typeflag: tar.TypeReg, Mode: 0o644}),
		"a script":      tarWith(t, &tar.Header{Name: "pack-image.sh", Typeflag: tar.TypeReg, Mode: 0o755}),
		"a device":      tarWith(t, &tar.Header{Name: "agent", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 1}),
	} {
		res, err := s.helperIn(s.alice, stream, build(out)...)
		var se *sysexec.Error
		if !errors.As(err, &se) || !strings.Contains(se.Stderr, "input stream") {
			t.Errorf("image-build with %s in its inputs: %v %s, want a refusal of the input stream", name, err, res.Stdout)
		}
	}
	// The area the helper made is root's, and holds nothing of the refused
	// streams.
	st, err := os.Lstat(cache + "/helper-build")
	if err != nil || !st.IsDir() || ownerOf(st) != 0 || st.Mode().Perm() != 0o755 {
		t.Errorf("the helper's area: %v %v", st, err)
	}
	if left, _ := filepath.Glob(cache + "/helper-build/inputs-*"); len(left) > 0 {
		t.Errorf("refused inputs left behind: %v", left)
	}
	if data, _ := os.ReadFile(victim); string(data) != "root's\n" {
		t.Errorf("the victim file changed: %q", data)
	}

	// Another script, other parameters, other environment: sudo's pinned
	// shapes refuse them before the helper runs.
	for _, args := range [][]string{
		{"image-build-ns", strconv.Itoa(aliceUID), "bookworm", mirror, "1024", "-", out},
		{"image-build", "bookworm", "file:///root", "1024", "-", out},
		{"image-build", "bookworm", mirror, "1024", "vim;id", out},
		{"image-build", "bookworm", mirror, "1024", "-", out, "BANGER_SCRIPT=/tmp/x.sh"},
		{"image-build", "../x", mirror, "1024", "-", out},
	} {
		if _, err := s.helper(s.alice, args...); err == nil {
			t.Errorf("sudo let alice run %q", args)
		} else if se := new(sysexec.Error); errors.As(err, &se) && !strings.Contains(se.Stderr, "sudo") {
			t.Errorf("helper %q was refused by the helper, not by sudo's pinned shapes: %v", args, err)
		}
	}
	if _, err := s.as(s.alice, []string{"BANGER_ROOTFS=/etc", "SUDO_UID=0"}, "sudo", "-n", DefaultPath, "image-build-ns", "0", "bookworm", mirror, "1024", "-", out); err == nil {
		t.Error("alice ran image-build-ns")
	}
	// Root running the inner half with SUDO_UID set (as through sudo) is
	// refused too: it is not a verb.
	res, err := sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{Argv: []string{DefaultPath, "image-build-ns", strconv.Itoa(aliceUID), "bookworm", mirror, "1024", "-", out},
		Env: []string{"SUDO_UID=" + strconv.Itoa(aliceUID)}})
	if se := new(sysexec.Error); !errors.As(err, &se) || !strings.Contains(se.Stderr, "not a verb") {
		t.Errorf("image-build-ns with SUDO_UID: %v %s", err, res.Stdout)
	}
	s.root("umount", "-l", "/home")
}

// helperIn is helper with stdin.
func (s *sandbox) helperIn(user string, stdin []byte, args ...string) (sysexec.Result, error) {
	argv := append([]string{"runuser", "-u", user, "--", "sudo", "-n", DefaultPath}, args...)
	return sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{Argv: argv, Stdin: bytes.NewReader(stdin)})
}

func (s *sandbox) refusedIn(user, want string, stdin []byte, args ...string) {
	s.t.Helper()
	res, err := s.helperIn(user, stdin, args...)
	var se *sysexec.Error
	if !errors.As(err, &se) || !strings.Contains(se.Stderr+string(res.Stdout), want) {
		s.t.Errorf("%s: helper %q: %v, want a refusal containing %q", user, args, err, want)
	}
}

func tarOf(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, c := range files {
		must(t, tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}))
		_, _ = tw.Write([]byte(c))
	}
	must(t, tw.Close())
	return buf.Bytes()
}

func tarWith(t *testing.T, h *tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(h))
	must(t, tw.Close())
	return buf.Bytes()
}
