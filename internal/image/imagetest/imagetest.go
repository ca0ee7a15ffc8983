// Package imagetest gives tests one real Debian image, built once with the
// real image builder and cached across test runs and packages (the end-to-end
// tests boot this same image).
//
// Cache: $BANGER_TEST_CACHE, default /var/tmp/banger-test-cache:
//
//	keys/id_ed25519{,.pub}   throwaway key pair the image trusts
//	agent/banger-agent       ./cmd/banger-agent built statically when it has
//	                         Go files, else a copy of /bin/busybox (a static
//	                         placeholder that only proves "an executable")
//	modules/<KernelVersion>  a fabricated, empty modules tree
//	build/rootfs/<key>.tar   the cached base tree (root builds)
//	build/apt-archives/      the .debs root builds downloaded
//	rootless/                the cache of the normal-user build test
//	images/debian-<key>.ext4 the image; key covers agent, key, scripts and
//	                         the builder's Go code (internal/image)
package imagetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banger-dev/banger/images"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/image"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sysexec"
)

// KernelVersion is the version the fabricated modules tree is installed as.
const KernelVersion = "6.1.0-banger-test"

// Image is the shared test image and the files that go with it.
type Image struct {
	api.Image
	PrivateKeyPath string // logs in as root over SSH
	PublicKeyPath  string
	AgentPath      string // what was installed as /usr/local/bin/banger-agent
	AgentIsReal    bool   // false when the busybox placeholder was used
	CacheDir       string
}

// CacheDir is where the shared test image and its inputs live.
func CacheDir() string {
	if d := envknob.Cache.Value(); d != "" {
		return d
	}
	return "/var/tmp/banger-test-cache"
}

// Layout is the banger layout whose build cache is the shared test cache.
func Layout() paths.Layout {
	l := paths.UnderRoot(CacheDir())
	l.CacheDir = CacheDir()
	return l
}

// Get returns the shared image, building it when missing (a few minutes the
// first time, about a minute when only the agent or scripts changed). It
// skips the test in -short mode and when not root.
func Get(t testing.TB) Image {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: building the real Debian test image is slow; run without -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: the shared Debian test image is built and cached as root; run the tests as root")
	}
	img, err := get(t)
	if err != nil {
		t.Fatalf("shared test image: %v", err)
	}
	return img
}

func get(t testing.TB) (Image, error) {
	dir := CacheDir()
	for _, d := range []string{"keys", "agent", "modules", "images"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return Image{}, err
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, "imagetest.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return Image{}, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return Image{}, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	out, modules, err := inputs(ctx, dir)
	if err != nil {
		return Image{}, err
	}

	builder, err := builderSources()
	if err != nil {
		return Image{}, err
	}
	key, err := inputsKey(append([]string{out.AgentPath, out.PublicKeyPath}, builder...)...)
	if err != nil {
		return Image{}, err
	}
	path := filepath.Join(dir, "images", "debian-"+key[:16]+".ext4")
	meta := path + ".sha256"
	if sum, err := os.ReadFile(meta); err == nil {
		if st, err := os.Stat(path); err == nil {
			out.Image = api.Image{Name: "banger-test", Distro: "debian", Suite: image.DefaultSuite, RootfsPath: path,
				SizeBytes: st.Size(), SHA256: strings.TrimSpace(string(sum)), KernelVersion: KernelVersion, CreatedAt: st.ModTime()}
			return out, nil
		}
	}
	// Older test images (other inputs) only waste disk.
	old, _ := filepath.Glob(filepath.Join(dir, "images", "debian-*.ext4*"))
	for _, o := range old {
		os.Remove(o)
	}
	b := &image.Builder{Layout: Layout()}
	start := time.Now()
	img, err := b.Build(ctx, image.BuildRequest{
		Name: "banger-test", PublicKeyPath: out.PublicKeyPath, AgentPath: out.AgentPath,
		ModulesDir: modules, KernelVersion: KernelVersion, OutputPath: path,
	}, func(p api.Progress) { t.Logf("build %s: %s", p.Step, p.Message) })
	if err != nil {
		return Image{}, err
	}
	t.Logf("built the shared test image %s in %s", path, time.Since(start).Round(time.Second))
	if err := os.WriteFile(meta, []byte(img.SHA256+"\n"), 0o644); err != nil {
		return Image{}, err
	}
	out.Image = img
	return out, nil
}

// Inputs returns the shared test key pair, agent and modules tree without
// building the image (Image is zero): for tests that build their own. Every
// file is world-readable, so a build run as another user can use them.
func Inputs(t testing.TB) (in Image, modulesDir string) {
	t.Helper()
	dir := CacheDir()
	for _, d := range []string{"keys", "agent", "modules", "images"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, "imagetest.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	in, modulesDir, err = inputs(ctx, dir)
	if err != nil {
		t.Fatalf("shared test inputs: %v", err)
	}
	// The private key is the test's, not the image's: only the public one
	// needs to be readable by others.
	if err := os.Chmod(in.PublicKeyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	return in, modulesDir
}

// inputs makes (or reuses) the key pair, agent and modules tree under dir.
func inputs(ctx context.Context, dir string) (Image, string, error) {
	out := Image{CacheDir: dir, PrivateKeyPath: filepath.Join(dir, "keys", "id_ed25519")}
	out.PublicKeyPath = out.PrivateKeyPath + ".pub"
	if _, err := os.Stat(out.PublicKeyPath); err != nil {
		os.Remove(out.PrivateKeyPath)
		if _, err := sysexec.Run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "banger-test", "-f", out.PrivateKeyPath); err != nil {
			return Image{}, "", err
		}
	}
	var err error
	out.AgentPath, out.AgentIsReal, err = agent(ctx, dir)
	if err != nil {
		return Image{}, "", err
	}
	modules := filepath.Join(dir, "modules", KernelVersion)
	if err := os.MkdirAll(filepath.Join(modules, "kernel"), 0o755); err != nil {
		return Image{}, "", err
	}
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		if err := os.WriteFile(filepath.Join(modules, f), nil, 0o644); err != nil {
			return Image{}, "", err
		}
	}
	return out, modules, nil
}

// agent builds the real guest agent when the repository has one, else uses
// busybox as a static placeholder executable.
func agent(ctx context.Context, dir string) (string, bool, error) {
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..", "..")
	src := filepath.Join(root, "cmd", "banger-agent")
	dst := filepath.Join(dir, "agent", "banger-agent")
	if goFiles, _ := filepath.Glob(filepath.Join(src, "*.go")); len(goFiles) > 0 {
		_, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{
			Argv: []string{"go", "build", "-trimpath", "-o", dst, "./cmd/banger-agent"},
			Dir:  root,
			Env:  []string{"CGO_ENABLED=0"},
		})
		if err != nil {
			return "", false, fmt.Errorf("build the guest agent: %w", err)
		}
		return dst, true, nil
	}
	bb, err := sysexec.LookPath("busybox")
	if err != nil {
		return "", false, fmt.Errorf("no cmd/banger-agent yet and no busybox for a placeholder agent: apt-get install busybox-static")
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return "", false, err
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		return "", false, err
	}
	return dst, false, nil
}

// builderSources are the image builder's Go files (package internal/image,
// tests aside): a change to how the image is built is a change to the image,
// so they are part of its cache key.
func builderSources() ([]string, error) {
	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(self), "..")
	all, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var files []string
	for _, f := range all {
		if !strings.HasSuffix(f, "_test.go") {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no Go files of the image builder in %s", dir)
	}
	return files, nil // Glob sorts them, so the key is stable
}

// inputsKey changes when anything baked into the image changes.
func inputsKey(files ...string) (string, error) {
	h := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(data))
		h.Write(data)
	}
	err := fs.WalkDir(images.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(images.FS, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", p, len(data))
		h.Write(data)
		return nil
	})
	fmt.Fprintf(h, "kernel %s\n", KernelVersion)
	return hex.EncodeToString(h.Sum(nil)), err
}
