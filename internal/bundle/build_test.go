package bundle

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/initramfs"
	"github.com/banger-dev/banger/internal/kernel"
	"github.com/banger-dev/banger/internal/kernel/kerneltest"
)

// TestBuildReal builds a bundle from the real Debian kernel package, loads
// and checks it, rebuilds it (a no-op, then forced) and proves the key pair
// and a default rootfs survive, then proves a failed build changes nothing.
func TestBuildReal(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the real bundle build")
	}
	if _, err := os.Stat(staticExe); err != nil {
		t.Skipf("needs busybox-static at %s: %v", staticExe, err)
	}
	pkg := kerneltest.PackageName(t)
	kerneltest.Deb(t) // fetch into the shared cache first (skips without apt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	parent := t.TempDir()
	dir := filepath.Join(parent, "bundle")
	var steps []string
	record := func(p api.Progress) {
		if !slices.Contains(steps, p.Step) {
			steps = append(steps, p.Step)
		}
	}
	opts := BuildOptions{Dir: dir, CacheDir: kerneltest.CacheDir(t), AgentBinary: staticExe}
	b, err := Build(ctx, opts, record)
	if err != nil {
		t.Fatal(err)
	}
	wantSteps := []string{"resolve-kernel", "download-kernel", "unpack-kernel", "vmlinux", "modules", "initramfs", "agent", "ssh-key", "manifest", "install"}
	if !slices.Equal(steps, wantSteps) {
		t.Errorf("progress steps %q, want %q", steps, wantSteps)
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if *loaded != *b || b.Legacy || b.KernelPackage != pkg || !strings.HasPrefix(pkg, "linux-image-"+b.KernelVersion) {
		t.Fatalf("built %+v, loaded %+v (package %s)", b, loaded, pkg)
	}
	if err := kernel.ElfOK(b.KernelPath); err != nil {
		t.Fatal(err)
	}
	if errs := b.Check(); len(errs) != 0 {
		t.Fatalf("Check: %v", errs)
	}
	if st, _ := os.Stat(b.SSHKeyPath); st.Mode().Perm() != 0o600 {
		t.Errorf("ssh key mode %v", st.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(b.ModulesDir, "kernel/fs/ext4/ext4.ko")); err != nil {
		t.Errorf("modules tree incomplete: %v", err)
	}
	checkInitrd(t, b.InitrdPath)
	if left, _ := filepath.Glob(filepath.Join(parent, ".*")); len(left) != 0 {
		t.Errorf("build left %q beside the bundle", left)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("build left %q inside the bundle", left)
	}
	key, _ := os.ReadFile(b.SSHKeyPath)
	kernelStat, _ := os.Stat(b.KernelPath)

	// Same package and agent: nothing is rebuilt.
	steps = nil
	if _, err := Build(ctx, opts, record); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(steps, "up-to-date") || slices.Contains(steps, "unpack-kernel") {
		t.Errorf("second build steps %q, want up-to-date only", steps)
	}
	if st, _ := os.Stat(b.KernelPath); !os.SameFile(st, kernelStat) {
		t.Error("up-to-date build replaced the kernel")
	}

	// A default rootfs placed in the bundle, then a forced rebuild: the key
	// pair and the rootfs survive.
	write(t, filepath.Join(dir, RootfsFile), ext4Image(), 0o644)
	m := validManifest()
	m.KernelVersion, m.Modules, m.KernelPackage, m.AgentSHA256 = b.KernelVersion, "modules/lib/modules/"+b.KernelVersion, pkg, b.AgentSHA256
	if err := writeManifest(dir, &m); err != nil {
		t.Fatal(err)
	}
	opts.Force = true
	b2, err := Build(ctx, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key2, _ := os.ReadFile(b2.SSHKeyPath); !bytes.Equal(key, key2) {
		t.Fatal("forced rebuild regenerated the SSH key pair")
	}
	if b2.RootfsPath != filepath.Join(dir, RootfsFile) {
		t.Fatalf("rootfs not carried over: %+v", b2)
	}
	if st, _ := os.Stat(b2.KernelPath); os.SameFile(st, kernelStat) {
		t.Error("forced build did not rebuild the kernel")
	}

	// Failing builds, early (download) and late (initramfs, after the
	// kernel is unpacked), leave the bundle as it was and nothing beside it.
	bad := opts
	bad.KernelPackage = "linux-image-0.0.0-0-doesnotexist"
	bad2 := opts
	bad2.Busybox = "/bin/true" // dynamically linked: refused by initramfs
	for _, o := range []BuildOptions{bad, bad2} {
		if _, err := Build(ctx, o, nil); err == nil {
			t.Fatalf("build with %+v succeeded", o)
		}
		b3, err := Load(dir)
		if err != nil || *b3 != *b2 {
			t.Fatalf("bundle changed by a failed build: %+v, %v", b3, err)
		}
		if left, _ := filepath.Glob(filepath.Join(parent, ".*")); len(left) != 0 {
			t.Errorf("failed build left %q", left)
		}
	}
}

func checkInitrd(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := initramfs.Read(zr)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name] = true
	}
	for _, want := range []string{"init", "bin/busybox", initramfs.ModuleListPath} {
		if !names[want] {
			t.Errorf("initrd lacks %s", want)
		}
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "b")
	cases := []struct {
		opts BuildOptions
		want string
	}{
		{BuildOptions{Dir: dir, CacheDir: dir}, "required"},
		{BuildOptions{Dir: dir, CacheDir: dir, AgentBinary: "/bin/true"}, "dynamically linked"},
		{BuildOptions{Dir: dir, CacheDir: dir, AgentBinary: filepath.Join(dir, "none")}, "agent binary"},
		{BuildOptions{Dir: dir, CacheDir: dir, AgentBinary: staticExe, KernelPackage: "--option=evil"}, "not a Debian kernel package name"},
	}
	for _, c := range cases {
		_, err := Build(context.Background(), c.opts, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Build(%+v) = %v, want %q", c.opts, err, c.want)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("rejected builds created the bundle directory")
	}

	// A directory that is not a bundle is never replaced.
	notBundle := t.TempDir()
	write(t, filepath.Join(notBundle, "precious.txt"), []byte("keep me"), 0o644)
	_, err := Build(context.Background(), BuildOptions{Dir: notBundle, CacheDir: t.TempDir(), AgentBinary: staticExe, KernelPackage: "linux-image-6.1.0-9-amd64"}, nil)
	if err == nil || !strings.Contains(err.Error(), "not a banger bundle") {
		t.Fatalf("non-bundle dir: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(notBundle, "precious.txt")); string(data) != "keep me" {
		t.Fatal("non-bundle directory was touched")
	}
}
