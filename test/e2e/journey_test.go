package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/e2etest"
	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/testneed"
	"golang.org/x/sys/unix"
)

// TestNonRootJourney is the journey a new user meets, as that user: a fresh
// account whose only sudo right is running `banger-helper install` (the one
// step that installs the helper and its sudoers line) runs scripts/up.sh,
// which builds banger, installs the helper, builds the bundle and the image
// (rootless, in a user namespace), boots a VM and runs `uname -a` in it;
// then `vm stop`, `vm delete` and `host nat off` run with no sudo prompt
// (bangerd only ever calls `sudo -n`). It all runs in a network namespace
// of its own and a private mount namespace (/usr/local/libexec,
// /etc/sudoers.d and /run/banger-helper private, /dev/net/tun a private
// 0666 node as distributions ship it; this host's is 0600), so nothing is
// installed on the host. No network: the user's cache is seeded from the
// shared test cache (the kernel .deb, the base tree archive, the .debs),
// as a second `make up` would find it.
func TestNonRootJourney(t *testing.T) {
	if name := envknob.JourneyUser.Value(); name != "" {
		journeyInner(t, name)
		return
	}
	e2etest.Require(t)
	for _, tool := range []string{"useradd", "userdel", "usermod", "runuser", "sudo", "visudo", "unshare", "make", "go", "mmdebstrap", "newuidmap"} {
		if _, err := sysexec.LookPath(tool); err != nil {
			testneed.Skip(t, "%s is needed: %v", tool, err)
		}
	}
	ctx := context.Background()
	repo := e2etest.RepoRoot(t)
	cache := e2etest.CacheDir()
	seed := filepath.Join(cache, "cache")
	if _, err := os.Stat(filepath.Join(seed, "kernel")); err != nil {
		e2etest.SharedData(t) // builds the shared bundle and image, and so the seed
	}

	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "bgj" + hex.EncodeToString(b)
	parent, err := os.MkdirTemp("/tmp", "bgj-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	mustOK(t, os.Chmod(parent, 0o755))
	home := filepath.Join(parent, name)
	mustRun(t, "useradd", "--create-home", "--home-dir", home, "--shell", "/bin/bash", "--user-group", name)
	uid := atoi(t, mustOut(t, "id", "-u", name))
	gid := atoi(t, mustOut(t, "id", "-g", name))
	t.Cleanup(func() { removeJourneyUser(t, name, uid) })
	// Debian's useradd hands out subordinate ids where login.defs says so;
	// where it did not, give the user a free block, as an admin would.
	if data, _ := os.ReadFile("/etc/subuid"); !strings.Contains(string(data), name+":") {
		start := freeSubidStart()
		r := fmt.Sprintf("%d-%d", start, start+65535)
		mustRun(t, "usermod", "--add-subuids", r, "--add-subgids", r, name)
	}

	// The source tree, as the user would have cloned it.
	src := filepath.Join(home, "banger")
	mustRun(t, "mkdir", "-p", src)
	for _, entry := range []string{"Makefile", "go.mod", "go.sum", "cmd", "internal", "images", "scripts", "docs", "test", "README.md", "testsummary"} {
		if _, err := os.Stat(filepath.Join(repo, entry)); err == nil {
			mustRun(t, "cp", "-a", filepath.Join(repo, entry), src)
		}
	}
	// The user's cache as an earlier `make up` left it: the kernel package,
	// the base tree archives and the .debs (no network in the namespace).
	userCache := filepath.Join(home, ".cache", "banger")
	for _, sub := range []string{"kernel", "build/apt-archives", "build/rootfs"} {
		mustOK(t, os.MkdirAll(filepath.Join(userCache, sub), 0o755))
	}
	for _, pat := range []string{"kernel/*.deb", "build/apt-archives/*.deb", "build/rootfs/*.tar"} {
		files, _ := filepath.Glob(filepath.Join(seed, pat))
		if len(files) > 0 {
			mustRun(t, append(append([]string{"cp", "--reflink=auto"}, files...), filepath.Join(userCache, filepath.Dir(pat)))...)
		}
	}
	// The one setting the e2e tier always makes: guests under TCG on a
	// shared 2-core machine may take longer than the default 90 s to answer.
	mustOK(t, os.MkdirAll(filepath.Join(home, ".config", "banger"), 0o700))
	mustOK(t, os.WriteFile(filepath.Join(home, ".config", "banger", "config.toml"), []byte("agent_timeout = \"180s\"\n"), 0o600))
	// The Go build cache is kept between runs (first run: a full build).
	goCache := filepath.Join(cache, "journey-gocache")
	mustOK(t, os.MkdirAll(goCache, 0o755))
	mustRun(t, "chown", "-R", fmt.Sprintf("%d:%d", uid, gid), home, goCache)
	t.Cleanup(func() { _, _ = sysexec.Run(context.Background(), "chown", "-R", "0:0", goCache) })
	// The module cache, read-only (root's home is not the user's to read).
	goMod := filepath.Join(parent, "gomod")
	mustOK(t, os.Mkdir(goMod, 0o755))

	// Mount points the private namespace covers, made on the host when
	// missing (empty, root's) and removed afterwards.
	for _, d := range []string{"/usr/local/libexec", "/run/banger-helper"} {
		if _, err := os.Stat(d); os.IsNotExist(err) {
			mustOK(t, os.MkdirAll(d, 0o755))
			t.Cleanup(func() { os.Remove(d) })
		}
	}
	ns := "bgj-" + hex.EncodeToString(b)
	mustRun(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _, _ = sysexec.Run(context.Background(), "ip", "netns", "del", ns) })

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	gomodHost, err := sysexec.Output(ctx, "go", "env", "GOMODCACHE")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "--",
		self, "-test.run", "^TestNonRootJourney$", "-test.v", "-test.count=1", "-test.timeout=50m")
	cmd.Env = append(os.Environ(), string(envknob.JourneyUser)+"="+name,
		"BANGER_TEST_JOURNEY_SRC="+src, "BANGER_TEST_JOURNEY_GOCACHE="+goCache,
		"BANGER_TEST_JOURNEY_GOMOD="+goMod, "BANGER_TEST_JOURNEY_GOMOD_HOST="+strings.TrimSpace(gomodHost))
	out, err := cmd.CombinedOutput()
	t.Logf("the journey:\n%s", out)
	if err != nil {
		t.Fatalf("the non-root journey failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestNonRootJourney") {
		t.Fatal("the journey's inner stage did not run")
	}
}

// journeyInner runs as root inside the journey's namespaces.
func journeyInner(t *testing.T, name string) {
	src := os.Getenv("BANGER_TEST_JOURNEY_SRC")
	home := filepath.Dir(src)
	goMod := os.Getenv("BANGER_TEST_JOURNEY_GOMOD")
	root := func(argv ...string) { t.Helper(); mustRun(t, argv...) }

	root("mount", "--make-rprivate", "/")
	root("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/usr/local/libexec")
	root("mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", "/run/banger-helper")
	sudoers := t.TempDir()
	mustOK(t, os.Chmod(sudoers, 0o755))
	root("mount", "--bind", sudoers, "/etc/sudoers.d")
	root("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/dev/net")
	mustOK(t, unix.Mknod("/dev/net/tun", unix.S_IFCHR|0o666, int(unix.Mkdev(10, 200))))
	mustOK(t, os.Chmod("/dev/net/tun", 0o666))
	root("mount", "--bind", "-o", "ro", os.Getenv("BANGER_TEST_JOURNEY_GOMOD_HOST"), goMod)
	root("ip", "link", "set", "lo", "up")

	// The user's one sudo right: installing the helper and its line.
	grant := name + " ALL=(root) NOPASSWD: " + filepath.Join(src, "bin", "banger-helper") + " install --user " + name + "\n"
	tmp := filepath.Join(sudoers, ".journey.tmp")
	mustOK(t, os.WriteFile(tmp, []byte(grant), 0o440))
	root("visudo", "-cf", tmp)
	mustOK(t, os.Rename(tmp, filepath.Join(sudoers, "journey-install")))
	defer os.Remove(filepath.Join(sudoers, "journey-install"))

	env := []string{"HOME=" + home, "USER=" + name, "LOGNAME=" + name, "SHELL=/bin/bash",
		"PATH=/usr/local/go/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"GOCACHE=" + os.Getenv("BANGER_TEST_JOURNEY_GOCACHE"), "GOMODCACHE=" + goMod, "GOPROXY=off", "GOFLAGS=-buildvcs=false",
		"GOTOOLCHAIN=local", "NO_COLOR=1", "BANGER_DEMO_VM=demo"}
	as := func(timeout time.Duration, argv ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		full := append(append([]string{"runuser", "-u", name, "--", "env", "-i"}, env...), argv...)
		lw := &journeyLog{t: t}
		res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: full, Dir: src, Stdin: strings.NewReader(""), Stdout: lw, Stderr: lw})
		return string(res.Stdout), err
	}
	banger := filepath.Join(src, "bin", "banger")

	out, err := as(45*time.Minute, "bash", "scripts/up.sh")
	if err != nil {
		t.Fatalf("scripts/up.sh as %s: %v", name, err)
	}
	if !strings.Contains(out, "Linux demo ") && !strings.Contains(out, "Linux ") {
		t.Errorf("up.sh did not print the guest's uname -a:\n%s", out)
	}
	// The helper's line was installed; nothing else is granted.
	if _, err := os.Stat(filepath.Join(sudoers, "banger-"+strconv.Itoa(atoi(t, mustOut(t, "id", "-u", name))))); err != nil {
		t.Errorf("the helper's sudoers drop-in: %v", err)
	}
	if _, err := as(time.Minute, "sudo", "-n", "true"); err == nil {
		t.Error("the user can run anything as root through sudo")
	}
	// Every later command: no sudo prompt (stdin is empty, sudo -n only).
	for _, argv := range [][]string{
		{banger, "vm", "list"},
		{banger, "vm", "stop", "demo"},
		{banger, "vm", "delete", "demo", "-y"},
		{banger, "host", "nat", "off"},
		{banger, "host", "teardown"},
		{banger, "daemon", "stop"},
	} {
		if out, err := as(10*time.Minute, argv...); err != nil {
			t.Errorf("%s as %s: %v\n%s", strings.Join(argv[1:], " "), name, err, out)
		}
	}
	// Nothing of the VM is left in the namespace: no tap, no bridge, no rules.
	if links := mustOut(t, "ip", "-o", "link", "show"); strings.Contains(links, "bg-") || strings.Contains(links, "banger") {
		t.Errorf("links left:\n%s", links)
	}
	if rules, _ := sysexec.Output(context.Background(), "nft", "list", "ruleset"); strings.Contains(rules, "banger") {
		t.Errorf("rules left:\n%s", rules)
	}
}

type journeyLog struct {
	t   *testing.T
	mu  sync.Mutex // stdout and stderr are copied by two goroutines
	buf []byte
}

func (w *journeyLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log("journey: " + string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

// removeJourneyUser kills what the user left running, removes the user,
// its home and its subordinate ids.
func removeJourneyUser(t *testing.T, name string, uid int) {
	ctx := context.Background()
	// A stopped daemon may take a moment to exit; a zombie (no reaper in a
	// container) is gone already.
	var left []int
	for range 20 {
		if left = liveProcessesOf(uid); len(left) == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, pid := range left {
		t.Errorf("killing process %d left running as %s", pid, name)
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	// Without a login session the user's runtime dir is /tmp/banger-UID.
	_ = os.RemoveAll(fmt.Sprintf("/tmp/banger-%d", uid))
	if _, err := sysexec.Run(ctx, "userdel", "--remove", name); err != nil {
		t.Errorf("remove the test user: %v", err)
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var keep []string
		for _, line := range strings.SplitAfter(string(data), "\n") {
			if !strings.HasPrefix(line, name+":") {
				keep = append(keep, line)
			}
		}
		if kept := strings.Join(keep, ""); kept != string(data) {
			_ = os.WriteFile(f, []byte(kept), 0o644)
		}
	}
}

// freeSubidStart is the first id above every range in /etc/subuid and
// /etc/subgid.
func freeSubidStart() int64 {
	next := int64(100000)
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		data, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(data), "\n") {
			p := strings.Split(line, ":")
			if len(p) != 3 {
				continue
			}
			s, _ := strconv.ParseInt(p[1], 10, 64)
			n, _ := strconv.ParseInt(p[2], 10, 64)
			if s+n > next {
				next = s + n
			}
		}
	}
	return next
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustRun(t *testing.T, argv ...string) {
	t.Helper()
	if _, err := sysexec.Run(context.Background(), argv...); err != nil {
		t.Fatal(err)
	}
}

func mustOut(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := sysexec.Output(context.Background(), argv...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// liveProcessesOf lists the pids running as uid, zombies left out.
func liveProcessesOf(uid int) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		var st unix.Stat_t
		if unix.Stat(p, &st) != nil || int(st.Uid) != uid {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(p, "stat"))
		if i := strings.LastIndexByte(string(stat), ')'); err != nil || i < 0 || strings.HasPrefix(string(stat[i+1:]), " Z") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(p)); err == nil {
			out = append(out, pid)
		}
	}
	return out
}
