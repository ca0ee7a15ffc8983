package image_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/image/imagetest"
	"github.com/banger-dev/banger/internal/privhelper"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/testneed"
)

// TestBuildThroughHelper is the fallback where no user namespace can be
// made: a throwaway user with no subordinate ids builds the default Debian
// image plus one package through the real banger-helper image-build verb,
// granted by the real sudo with the line `banger-helper install` writes.
// The test re-executes itself in a mount namespace where /usr/local and
// /etc/sudoers.d are private and /etc/subuid and /etc/subgid are empty, so
// nothing is installed on the host. The image is checked with debugfs as
// the rootless build's is (root-owned setuid sudo, /dev nodes, /root 0700).
func TestBuildThroughHelper(t *testing.T) {
	if user := envknob.HelperBuildSandbox.Value(); user != "" {
		helperBuildInSandbox(t, user)
		return
	}
	if testing.Short() {
		t.Skip("skipping: builds a real Debian image through the privileged helper (minutes); run without -short")
	}
	if os.Geteuid() != 0 {
		testneed.Skip(t, "creating a throwaway user and installing the helper needs root")
	}
	for _, tool := range []string{"useradd", "userdel", "runuser", "sudo", "visudo", "mmdebstrap", "unshare", "debugfs", "mkfs.ext4", "go"} {
		if _, err := sysexec.LookPath(tool); err != nil {
			testneed.Skip(t, "%s is not installed (apt-get install passwd util-linux sudo mmdebstrap e2fsprogs)", tool)
		}
	}
	imagetest.Inputs(t) // make the shared inputs (root's) before the sandbox
	ctx := context.Background()
	name := "bghb" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	parent, err := os.MkdirTemp("", "banger-helperbuild-")
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
	uid, _ := lookupIDs(t, name)
	t.Cleanup(func() { removeUser(t, name, uid) })

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--",
		self, "-test.run", "^TestBuildThroughHelper$", "-test.v", "-test.count=1", "-test.timeout=40m")
	cmd.Env = append(os.Environ(), string(envknob.HelperBuildSandbox)+"="+name)
	cmd.Stdout, cmd.Stderr = &testLines{t: t}, &testLines{t: t}
	if err := cmd.Run(); err != nil {
		t.Fatalf("the build through the helper failed: %v", err)
	}
	if p := processesOf(uid); len(p) > 0 {
		t.Errorf("processes of %s left running: %v", name, p)
	}
}

func helperBuildInSandbox(t *testing.T, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	root := func(argv ...string) {
		t.Helper()
		if _, err := sysexec.Run(ctx, argv...); err != nil {
			t.Fatal(err)
		}
	}
	uid, gid := lookupIDs(t, name)
	home := homeOf(t, name)
	in, modules := imagetest.Inputs(t)

	// A private /usr/local and /etc/sudoers.d; no subordinate ids at all.
	sudoers, empty := t.TempDir(), filepath.Join(t.TempDir(), "empty")
	must(t, os.Chmod(sudoers, 0o755))
	must(t, os.WriteFile(empty, nil, 0o644))
	// The helper is built first: Go lives in /usr/local here.
	bins := t.TempDir()
	must(t, os.Chmod(bins, 0o755))
	root("go", "build", "-o", filepath.Join(bins, "banger-helper"), "github.com/banger-dev/banger/cmd/banger-helper")
	root("mount", "--make-rprivate", "/")
	root("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/usr/local")
	root("mount", "--bind", sudoers, "/etc/sudoers.d")
	root("mount", "--bind", empty, "/etc/subuid")
	root("mount", "--bind", empty, "/etc/subgid")
	root(filepath.Join(bins, "banger-helper"), "install", "--user", name)

	// The inputs, readable by the user (the shared cache is root's).
	inputs := filepath.Join(home, "inputs")
	root("cp", "-a", in.PublicKeyPath, in.AgentPath, filepath.Join(home))
	root("cp", "-a", modules, inputs)
	root("chown", "-R", strconv.Itoa(uid)+":"+strconv.Itoa(gid), inputs, filepath.Join(home, filepath.Base(in.PublicKeyPath)), filepath.Join(home, filepath.Base(in.AgentPath)))

	// Seed the helper's area with the shared cache's base trees and .debs
	// (as root: it is root's), so only the first run ever downloads them.
	cache := filepath.Join(home, ".cache", "banger")
	root("runuser", "-u", name, "--", "mkdir", "-p", cache)
	area := filepath.Join(cache, privhelper.HelperBuildDir)
	must(t, os.MkdirAll(filepath.Join(area, "build", "rootfs"), 0o755))
	shared := filepath.Join(imagetest.CacheDir(), "build")
	if debs, _ := filepath.Glob(filepath.Join(shared, "apt-archives", "*.deb")); len(debs) > 0 {
		must(t, os.MkdirAll(filepath.Join(area, "build", "apt-archives"), 0o755))
		root(append(append([]string{"cp", "--reflink=auto"}, debs...), filepath.Join(area, "build", "apt-archives"))...)
	}
	if tars, _ := filepath.Glob(filepath.Join(shared, "rootfs", "*.tar")); len(tars) > 0 {
		root(append(append([]string{"cp", "--reflink=auto"}, tars...), filepath.Join(area, "build", "rootfs"))...)
	}

	// The build, as the user, by the same code a user's bangerd runs.
	bin := filepath.Join(home, "image.test")
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(bin, self, 0o755))
	out := filepath.Join(home, "images", "helper.ext4")
	spec, _ := json.Marshal(rootlessRequest{
		Root: filepath.Join(home, "banger"), Cache: cache,
		PublicKey: filepath.Join(home, filepath.Base(in.PublicKeyPath)), Agent: filepath.Join(home, filepath.Base(in.AgentPath)),
		Modules: inputs, KernelVersion: imagetest.KernelVersion, Output: out, Extra: []string{"hello"},
	})
	lw := &testLines{t: t}
	_, err = sysexec.Exec{}.Run(ctx, sysexec.Cmd{
		Argv:   []string{"runuser", "-u", name, "--", bin, "-test.run", "^TestRootlessBuildHelper$", "-test.v", "-test.timeout", "30m"},
		Dir:    home,
		Env:    []string{helperEnv + "=" + string(spec), "HOME=" + home, "USER=" + name, "GOCOVERDIR=", string(envknob.HelperBuildSandbox) + "="},
		Stdout: lw, Stderr: lw,
	})
	if err != nil {
		t.Fatalf("the build as %s failed: %v", name, err)
	}
	if !strings.Contains(lw.all, "through the privileged helper") {
		t.Errorf("the build did not take the helper path:\n%s", lw.all)
	}
	checkRootlessImage(t, ctx, out, uid, in.PublicKeyPath, []string{"hello"})

	// Nothing left: no temporary image in the cache, no work dirs, inputs
	// or images in the area, no bind mount.
	left, _ := filepath.Glob(filepath.Join(cache, ".image-*"))
	for _, pat := range []string{"inputs-*", "out-*", "build/build-*", "build/rootfs/.tmp-*"} {
		m, _ := filepath.Glob(filepath.Join(area, pat))
		left = append(left, m...)
	}
	if len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if m, _ := filepath.Glob(filepath.Join(privhelper.StateDir, "image-build-*")); len(m) > 0 {
		t.Errorf("mount points left: %v", m)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), "image-build-") {
		t.Errorf("a bind mount is left:\n%s", mounts)
	}
}

func homeOf(t *testing.T, name string) string {
	out, err := sysexec.Output(context.Background(), "getent", "passwd", name)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(strings.TrimSpace(out), ":")
	if len(f) < 6 {
		t.Fatalf("getent passwd %s: %q", name, out)
	}
	return f[5]
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
