package image_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/image"
	"github.com/banger-dev/banger/internal/image/imagetest"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/testneed"
	"github.com/banger-dev/banger/internal/userns"
)

// helperEnv makes the test binary, run as the throwaway user, build an
// image instead of testing (see TestRootlessBuildHelper).
var helperEnv = string(envknob.RootlessBuild)

// rootlessRequest is what the parent hands the helper process.
type rootlessRequest struct {
	Root, Cache, PublicKey, Agent, Modules, KernelVersion, Output string
	Extra                                                         []string
}

// TestRootlessBuildHelper is not a test: it is the build that
// TestBuildAsNormalUser runs as a throwaway user, in this test binary.
func TestRootlessBuildHelper(t *testing.T) {
	spec := envknob.RootlessBuild.Value()
	if spec == "" {
		t.Skip("helper process of TestBuildAsNormalUser")
	}
	var r rootlessRequest
	if err := json.Unmarshal([]byte(spec), &r); err != nil {
		t.Fatal(err)
	}
	layout := paths.UnderRoot(r.Root)
	layout.CacheDir = r.Cache
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	img, err := (&image.Builder{Layout: layout}).Build(ctx, image.BuildRequest{
		Name: "rootless", ExtraPackages: r.Extra, PublicKeyPath: r.PublicKey, AgentPath: r.Agent,
		ModulesDir: r.Modules, KernelVersion: r.KernelVersion, OutputPath: r.Output,
	}, func(p api.Progress) { fmt.Printf("build %s: %s\n", p.Step, p.Message) })
	if err != nil {
		t.Fatalf("build as uid %d: %v", os.Geteuid(), err)
	}
	fmt.Printf("built %s sha256 %s\n", img.RootfsPath, img.SHA256)
}

// TestBuildAsNormalUser creates a throwaway user with subordinate ids,
// builds the default Debian image plus one extra package as that user (no
// root, no sudo: a user namespace), and proves with debugfs that ownership and modes are exact:
// root-owned setuid /usr/bin/sudo, the /dev entries Debian's bootstrap
// makes, /root 0700, a group-owned file. The user, its ids and everything
// it made are removed afterwards. Its cache (the base tree archive and the
// .debs) lives in BANGER_TEST_CACHE/rootless and is handed to each run's
// user, so only the first run downloads.
func TestBuildAsNormalUser(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: builds a real Debian image as a throwaway user (minutes); run without -short")
	}
	if os.Geteuid() != 0 {
		testneed.Skip(t, "creating a throwaway user needs root; run the tests as root")
	}
	for _, tool := range []string{"useradd", "userdel", "usermod", "runuser", "mmdebstrap", "newuidmap", "newgidmap", "unshare", "debugfs", "mkfs.ext4"} {
		if _, err := sysexec.LookPath(tool); err != nil {
			testneed.Skip(t, "%s is not installed (apt-get install passwd util-linux mmdebstrap uidmap e2fsprogs)", tool)
		}
	}
	in, modules := imagetest.Inputs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()

	name := "bgtest" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	// The user's home: in a directory others may enter (t.TempDir's are
	// root's only); useradd makes it.
	parent, err := os.MkdirTemp("", "banger-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(parent, name)
	if _, err := sysexec.Run(ctx, "useradd", "--create-home", "--home-dir", home, "--shell", "/bin/bash", "--user-group", name); err != nil {
		t.Fatal(err)
	}
	uid, gid := lookupIDs(t, name)
	t.Cleanup(func() { removeUser(t, name, uid) })
	// useradd hands out subordinate ids where login.defs says so (Debian
	// does); otherwise give the user a free block.
	if probs := (userns.Host{}).Check(ctx, name, uid); len(probs) > 0 {
		start := (userns.Host{}).FreeStart()
		r := fmt.Sprintf("%d-%d", start, start+userns.MinIDs-1)
		if _, err := sysexec.Run(ctx, "usermod", "--add-subuids", r, "--add-subgids", r, name); err != nil {
			t.Fatal(err)
		}
	}
	if probs := (userns.Host{}).Check(ctx, name, uid); len(probs) > 0 {
		testneed.Skip(t, "user namespaces are not usable here: %v", probs)
	}

	// The shared cache changes hands to this run's user.
	cache := filepath.Join(imagetest.CacheDir(), "rootless")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	// Unpacked trees are owned by an earlier user's subordinate ids (and
	// chown would clear their setuid bits): only the archives, whose owners
	// are numbers inside them, and the .debs are handed on.
	trees, _ := filepath.Glob(filepath.Join(cache, "build", "rootfs", "*.tree*"))
	for _, tr := range trees {
		if err := os.RemoveAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sysexec.Run(ctx, "chown", "-R", fmt.Sprintf("%d:%d", uid, gid), cache); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := sysexec.Run(context.Background(), "chown", "-R", "0:0", cache); err != nil {
			t.Errorf("hand the cache back to root: %v", err)
		}
	})

	// The test binary lives in a root-only temp dir: give the user a copy.
	bin := filepath.Join(home, "image.test")
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	// Two builds: the default packages (the cached tree under an overlay),
	// then one more package (installed with apt over an unpacked tree).
	for _, extra := range [][]string{nil, {"hello"}} {
		out := filepath.Join(home, "images", "rootless"+strconv.Itoa(len(extra))+".ext4")
		spec, _ := json.Marshal(rootlessRequest{
			Root: filepath.Join(home, "banger"), Cache: cache, PublicKey: in.PublicKeyPath, Agent: in.AgentPath,
			Modules: modules, KernelVersion: imagetest.KernelVersion, Output: out, Extra: extra,
		})
		lw := &testLines{t: t}
		start := time.Now()
		_, err = sysexec.Exec{}.Run(ctx, sysexec.Cmd{
			Argv:   []string{"runuser", "-u", name, "--", bin, "-test.run", "^TestRootlessBuildHelper$", "-test.v", "-test.timeout", "35m"},
			Dir:    home,
			Env:    []string{helperEnv + "=" + string(spec), "HOME=" + home, "USER=" + name, "GOCOVERDIR="},
			Stdout: lw, Stderr: lw,
		})
		if err != nil {
			t.Fatalf("the build as %s with extra packages %v failed: %v", name, extra, err)
		}
		t.Logf("built as %s (uid %d) with extra packages %v in %s", name, uid, extra, time.Since(start).Round(time.Second))
		checkRootlessImage(t, ctx, out, uid, in.PublicKeyPath, extra)
	}
	for _, pat := range []string{"build/build-*", "build/rootfs/.tmp-*"} {
		if left, _ := filepath.Glob(filepath.Join(cache, pat)); len(left) > 0 {
			t.Errorf("the build left work files behind: %v", left)
		}
	}
	if p := processesOf(uid); len(p) > 0 {
		t.Errorf("processes of %s left running: %v", name, p)
	}
}

// processesOf lists the pids running as uid.
func processesOf(uid int) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		st, err := os.Stat(p)
		if err != nil || int(st.Sys().(*syscall.Stat_t).Uid) != uid {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(p)); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// checkRootlessImage proves with debugfs that an image built by a normal
// user has root's files, modes and device nodes exactly.
func checkRootlessImage(t *testing.T, ctx context.Context, out string, uid int, pubKey string, extra []string) {
	t.Helper()
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Sys().(*syscall.Stat_t).Uid; int(got) != uid {
		t.Errorf("the image file is owned by uid %d, want the user's %d", got, uid)
	}
	for _, c := range []struct {
		path, typ string
		mode      string // debugfs's octal mode
		uid, gid  int
		dev       string // "major, minor" for devices
	}{
		{"/usr/bin/sudo", "regular", "04755", 0, 0, ""},
		{"/root", "directory", "0700", 0, 0, ""},
		{"/etc/shadow", "regular", "0640", 0, 42, ""}, // group shadow: an id above 0 maps too
		{"/dev/null", "character special", "0666", 0, 0, "1, 3"},
		{"/dev/zero", "character special", "0666", 0, 0, "1, 5"},
		{"/dev/full", "character special", "0666", 0, 0, "1, 7"},
		{"/dev/random", "character special", "0666", 0, 0, "1, 8"},
		{"/dev/urandom", "character special", "0666", 0, 0, "1, 9"},
		{"/dev/tty", "character special", "0666", 0, 0, "5, 0"},
		{"/dev/console", "character special", "0666", 0, 0, "5, 1"},
		{"/dev/ptmx", "character special", "0666", 0, 0, "5, 2"},
		{"/dev/pts", "directory", "0755", 0, 0, ""},
		{"/dev/shm", "directory", "0755", 0, 0, ""},
		{"/dev/fd", "symlink", "0777", 0, 0, ""},
		{"/dev/stdin", "symlink", "0777", 0, 0, ""},
	} {
		got := debugfsStat(t, ctx, out, c.path)
		if got.typ != c.typ || got.mode != c.mode || got.uid != c.uid || got.gid != c.gid || got.dev != c.dev {
			t.Errorf("%s: %+v, want type %s mode %s owner %d:%d device %q", c.path, got, c.typ, c.mode, c.uid, c.gid, c.dev)
		}
	}
	if len(extra) > 0 {
		if got := debugfsStat(t, ctx, out, "/usr/bin/hello"); got.typ != "regular" || got.mode != "0755" || got.uid != 0 {
			t.Errorf("/usr/bin/hello (the extra package, installed with apt in the namespace): %+v", got)
		}
	}
	// And it is a whole banger image, as a root build's is.
	for _, c := range (&image.Builder{}).VerifyOffline(ctx, out, pubKey) {
		if c.Status != api.CheckOK {
			t.Errorf("check %s: %s: %s (fix: %s)", c.Name, c.Status, c.Detail, c.Fix)
		}
	}
}

// testLines logs each line written to it.
type testLines struct {
	t   *testing.T
	buf []byte
	all string
}

func (w *testLines) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	w.all += string(p)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

type statResult struct {
	typ, mode string
	uid, gid  int
	dev       string
}

var (
	dfsType  = regexp.MustCompile(`Type:\s+(\S+(?: special)?)\s+Mode:\s+([0-7]+)`)
	dfsOwner = regexp.MustCompile(`User:\s+(\d+)\s+Group:\s+(\d+)`)
	dfsDev   = regexp.MustCompile(`Device major/minor number:\s+(\d+):(\d+)`)
)

func debugfsStat(t *testing.T, ctx context.Context, img, p string) statResult {
	t.Helper()
	res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: []string{"debugfs", "-R", "stat " + p, img}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(res.Stdout)
	var r statResult
	if m := dfsType.FindStringSubmatch(s); m != nil {
		r.typ, r.mode = m[1], m[2]
	}
	if m := dfsOwner.FindStringSubmatch(s); m != nil {
		r.uid, _ = strconv.Atoi(m[1])
		r.gid, _ = strconv.Atoi(m[2])
	}
	if m := dfsDev.FindStringSubmatch(s); m != nil {
		major, _ := strconv.Atoi(m[1])
		minor, _ := strconv.Atoi(m[2])
		r.dev = fmt.Sprintf("%d, %d", major, minor)
	}
	if r.typ == "" {
		t.Errorf("debugfs stat %s: %s %s", p, s, res.Stderr)
	}
	return r
}

func lookupIDs(t *testing.T, name string) (int, int) {
	t.Helper()
	u, err := sysexec.Output(context.Background(), "id", "-u", name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := sysexec.Output(context.Background(), "id", "-g", name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u)
	gid, _ := strconv.Atoi(g)
	return uid, gid
}

// removeUser deletes the throwaway user, its home, the processes this test
// started as it, and its subordinate ids, and checks that nothing is left.
func removeUser(t *testing.T, name string, uid int) {
	ctx := context.Background()
	for _, pid := range processesOf(uid) {
		t.Errorf("killing process %d left running as %s", pid, name)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if _, err := sysexec.Run(ctx, "userdel", "--remove", name); err != nil {
		t.Errorf("remove the test user: %v", err)
	}
	// userdel drops the user's subordinate ids; make sure.
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
			if err := os.WriteFile(f, []byte(kept), 0o644); err != nil {
				t.Errorf("remove %s from %s: %v", name, f, err)
			}
		}
	}
	if _, err := sysexec.Run(ctx, "id", name); err == nil {
		t.Errorf("user %s still exists", name)
	}
}
