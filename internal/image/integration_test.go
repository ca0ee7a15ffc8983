package image_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/image"
	"github.com/banger-dev/banger/internal/image/imagetest"
)

// TestBuildDebianImage builds (or reuses) the real default Debian image and
// proves it offline: everything VerifyOffline checks must be ok.
func TestBuildDebianImage(t *testing.T) {
	img := imagetest.Get(t)
	st, err := os.Stat(img.RootfsPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != image.DefaultSizeBytes || img.SizeBytes != st.Size() {
		t.Errorf("image size %d (reported %d), want %d", st.Size(), img.SizeBytes, image.DefaultSizeBytes)
	}
	b := &image.Builder{Layout: imagetest.Layout()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	checks := b.VerifyOffline(ctx, img.RootfsPath, img.PublicKeyPath)
	for _, c := range checks {
		t.Logf("%-16s %-4s %s", c.Name, c.Status, c.Detail)
		if c.Status != api.CheckOK {
			t.Errorf("check %s: %s: %s (fix: %s)", c.Name, c.Status, c.Detail, c.Fix)
		}
	}
	if len(checks) < 10 {
		t.Errorf("only %d checks ran", len(checks))
	}
	reg, err := b.Register(ctx, image.RegisterRequest{Name: "registered", RootfsPath: img.RootfsPath})
	if err != nil {
		t.Fatalf("register the built image: %v", err)
	}
	if reg.SHA256 != img.SHA256 {
		t.Errorf("register sha256 %s, build said %s", reg.SHA256, img.SHA256)
	}
}

// TestBuildFailureLeavesNothing: an extra package that does not exist fails
// the build (apt, over the cached base tree), and no image, work dir, cache
// entry, mount or process is left.
func TestBuildFailureLeavesNothing(t *testing.T) {
	shared := imagetest.Get(t) // root, not -short, and inputs ready
	root := t.TempDir()
	layout := imagetest.Layout()
	out := filepath.Join(root, "out", "bad.ext4")
	work := filepath.Join(root, "work")
	before := cacheEntries(t, layout.BuildCacheDir())
	b := &image.Builder{Layout: layout}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var lines []string
	_, err := b.Build(ctx, image.BuildRequest{
		Name: "bad", ExtraPackages: []string{"banger-no-such-package"},
		PublicKeyPath: shared.PublicKeyPath, AgentPath: shared.AgentPath,
		OutputPath: out, WorkDir: work,
	}, func(p api.Progress) { lines = append(lines, p.Step+": "+p.Message) })
	if err == nil {
		t.Fatal("build with a nonexistent package succeeded")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(strings.Join(lines, "\n")+err.Error(), "banger-no-such-package") {
		t.Errorf("neither the error nor the progress names the missing package:\n%s", strings.Join(lines, "\n"))
	}
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Code != api.CodeInvalidArgument || !strings.Contains(apiErr.Message, "banger-no-such-package") || apiErr.Hint == "" {
		t.Errorf("want an invalid_argument error naming the package, with a hint; got %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output image left behind: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "out", "*")); len(left) > 0 {
		t.Errorf("temporary image left behind: %v", left)
	}
	if left, _ := os.ReadDir(work); len(left) > 0 {
		t.Errorf("work dir left behind: %v", left)
	}
	if after := cacheEntries(t, layout.BuildCacheDir()); after != before {
		t.Errorf("cache entries changed:\nbefore %s\nafter  %s", before, after)
	}
	for _, d := range []string{root, layout.BuildCacheDir()} {
		if m, err := image.MountsUnder(d); err != nil || len(m) > 0 {
			t.Errorf("mounts left under %s: %v %v", d, m, err)
		}
	}
	if p := processesUnder(t, root); len(p) > 0 {
		t.Errorf("processes left running in the build dir: %v", p)
	}
}

// TestBuildCancelLeavesNothing cancels a build in the middle of the bootstrap
// (while mmdebstrap has /proc mounted in the target and dpkg running): the
// sandbox takes every process and mount with it, and the partial tree is
// removed.
func TestBuildCancelLeavesNothing(t *testing.T) {
	shared := imagetest.Get(t)
	root := t.TempDir()
	layout := imagetest.Layout()
	before := cacheEntries(t, layout.BuildCacheDir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cancelled := false
	mirror := image.HostDebianMirror()
	if mirror == "" {
		mirror = image.DefaultMirror
	}
	_, err := (&image.Builder{Layout: layout}).Build(ctx, image.BuildRequest{
		Name: "cancel", Mirror: mirror + "/", // the same mirror spelt otherwise: a base tree not in the cache
		PublicKeyPath: shared.PublicKeyPath, AgentPath: shared.AgentPath,
		OutputPath: filepath.Join(root, "out", "cancel.ext4"), WorkDir: filepath.Join(root, "work"),
	}, func(p api.Progress) {
		if !cancelled && p.Step == image.StepBootstrap && strings.Contains(p.Message, "installing essential packages") {
			t.Logf("cancelling at: %s", p.Message)
			cancelled = true
			cancel()
		}
	})
	if !cancelled {
		t.Fatalf("the bootstrap never reached the essential packages: %v", err)
	}
	if err == nil {
		t.Fatal("a cancelled build succeeded")
	}
	t.Logf("error: %v", err)
	if left, _ := filepath.Glob(filepath.Join(root, "*", "*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if after := cacheEntries(t, layout.BuildCacheDir()); after != before {
		t.Errorf("cache entries changed:\nbefore %s\nafter  %s", before, after)
	}
	cacheDir := filepath.Join(layout.BuildCacheDir(), "rootfs")
	if m, _ := image.MountsUnder(cacheDir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	if p := processesUnder(t, cacheDir); len(p) > 0 {
		t.Errorf("processes left: %v", p)
	}
}

func cacheEntries(t *testing.T, dir string) string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(dir, "rootfs"))
	var names []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".lock") {
			names = append(names, e.Name())
		}
	}
	return strings.Join(names, " ")
}

// processesUnder lists processes whose root or cwd is below dir (a chroot
// or a script left running).
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var out []string
	for _, p := range procs {
		for _, link := range []string{"root", "cwd"} {
			if target, err := os.Readlink(filepath.Join(p, link)); err == nil && strings.HasPrefix(target, dir) {
				out = append(out, p+" "+link+"="+target)
			}
		}
	}
	return out
}
