// Package e2etest is the harness of banger's end-to-end tier: real banger,
// bangerd and banger-agent binaries, a real bundle and Debian image (built
// once and cached across runs), and each test's own network namespace so the
// bridge, taps, NAT rules and DNS it makes never touch the host.
//
// Tests using it need root, qemu-system-x86_64 and debootstrap; they skip
// with a message otherwise, and under -short.
package e2etest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/sysexec"
)

// Require skips t unless the end-to-end tier can run here.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end tier: skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("end-to-end tier needs root (network namespaces, taps, image builds)")
	}
	for _, p := range []string{"qemu-system-x86_64", "debootstrap", "ip", "ssh", "mkfs.ext4"} {
		if _, err := sysexec.LookPath(p); err != nil {
			t.Skipf("end-to-end tier needs %s: %v (run .ci/run or `make deps`)", p, err)
		}
	}
}

// RepoRoot finds the repository root from the test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// CacheDir holds what end-to-end runs share: the built bundle and image.
func CacheDir() string {
	if d := envknob.Cache.Value(); d != "" {
		return d
	}
	return "/var/tmp/banger-test-cache"
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Binaries builds banger, bangerd, banger-agent and fake-firecracker once
// per test process (the Makefile's way: static, one shared build id) and
// returns their directory.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		removeStaleBinDirs()
		binDir, buildErr = os.MkdirTemp("", fmt.Sprintf("banger-e2e-bin-%d-", os.Getpid()))
		if buildErr != nil {
			return
		}
		root := RepoRoot(t)
		ldflags := "-X github.com/banger-dev/banger/internal/version.Version=e2e -X github.com/banger-dev/banger/internal/version.BuildID=e2e-" + fmt.Sprint(os.Getpid())
		for _, c := range []string{"banger", "banger-mcp", "banger-tui", "bangerd", "banger-agent", "fake-firecracker"} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			_, buildErr = sysexec.Exec{}.Run(ctx, sysexec.Cmd{
				Argv: []string{"go", "build", "-trimpath", "-ldflags", ldflags, "-o", filepath.Join(binDir, c), "./cmd/" + c},
				Dir:  root, Env: []string{"CGO_ENABLED=0"},
			})
			cancel()
			if buildErr != nil {
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build binaries: %v", buildErr)
	}
	return binDir
}

// Main is the TestMain of packages using this harness: it runs the tests
// and removes the binaries Binaries built, so a run leaves nothing in /tmp.
func Main(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// removeStaleBinDirs removes the binaries of earlier test processes that
// have exited without Main's cleanup (killed, or a package without Main;
// the directory name carries the builder's pid).
func removeStaleBinDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "banger-e2e-bin-*"))
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(d), "banger-e2e-bin-%d-", &pid); err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			_ = os.RemoveAll(d)
		}
	}
}

// Options shape one test environment.
type Options struct {
	// Subnet and Bridge keep concurrent environments apart.
	Subnet string // default 172.30.77.0/24
	Bridge string // default bangere2e
	// Config is extra config.toml text.
	Config string
	// Env is extra environment for banger and bangerd (e.g. FAKE_FC_*).
	Env []string
}

// Env is one isolated banger installation inside its own network namespace,
// sharing the cached bundle and image.
type Env struct {
	Root    string // short temp dir: config, state, runtime under it
	NS      string // network namespace every command runs in
	Bin     string
	DataDir string // shared: bundle and images
	Subnet  string
	Bridge  string
	env     []string
	t       testing.TB
}

// New makes an environment: a fresh namespace with loopback up, private
// config/state/runtime dirs, the shared bundle and image registered as
// "debian". Cleanup stops every VM and the daemon and removes everything.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	Require(t)
	bin := Binaries(t)
	data := SharedData(t)
	if opts.Subnet == "" {
		opts.Subnet = "172.30.77.0/24"
	}
	if opts.Bridge == "" {
		opts.Bridge = "bangere2e"
	}
	root, err := os.MkdirTemp("/tmp", "bge")
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Root: root, NS: "bge-" + filepath.Base(root)[3:], Bin: bin, DataDir: data,
		Subnet: opts.Subnet, Bridge: opts.Bridge, t: t}
	e.env = append([]string{
		"BANGER_CONFIG_DIR=" + filepath.Join(root, "config"),
		"BANGER_STATE_DIR=" + filepath.Join(root, "state"),
		"BANGER_CACHE_DIR=" + filepath.Join(CacheDir(), "cache"),
		"BANGER_RUNTIME_DIR=" + filepath.Join(root, "run"),
		"BANGER_DATA_DIR=" + data,
		"BANGER_DAEMON_BIN=" + filepath.Join(bin, "bangerd"),
		"PATH=" + bin + ":" + os.Getenv("PATH"),
		"NO_COLOR=1",
	}, opts.Env...)
	if err := os.MkdirAll(filepath.Join(root, "config"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("subnet = %q\nbridge = %q\nagent_timeout = \"180s\"\n%s\n", opts.Subnet, opts.Bridge, opts.Config)
	if err := os.WriteFile(filepath.Join(root, "config", "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "netns", "add", e.NS)
	run(t, "ip", "netns", "exec", e.NS, "ip", "link", "set", "lo", "up")
	t.Cleanup(e.cleanup)
	e.MustBanger("image", "register", "--name", "debian", "--rootfs", filepath.Join(data, "images", "debian.ext4"))
	return e
}

func (e *Env) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if e.t.Failed() && envknob.E2EKeep.Value() != "" {
		e.t.Logf("BANGER_E2E_KEEP: left everything in %s and namespace %s (remove with: ip netns del %s; rm -rf %s)",
			e.Root, e.NS, e.NS, e.Root)
		return
	}
	_, _, _ = e.BangerCtx(ctx, "daemon", "stop", "--stop-vms")
	// Whatever a failed test left: processes in our dirs, then the namespace.
	for _, pid := range PIDsMentioning(e.Root) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_, _ = sysexec.Run(ctx, "ip", "netns", "del", e.NS)
	_ = os.RemoveAll(e.Root)
}

// Environ is the environment banger and bangerd run with.
func (e *Env) Environ() []string { return append([]string(nil), e.env...) }

// Argv wraps argv to run inside the namespace with the environment.
func (e *Env) Argv(argv ...string) []string {
	return append(append([]string{"ip", "netns", "exec", e.NS, "env"}, e.env...), argv...)
}

// Banger runs the CLI in the namespace and returns stdout, stderr and the
// exit status.
func (e *Env) Banger(args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	return e.BangerCtx(ctx, args...)
}

// BangerCtx is Banger with a caller's context.
func (e *Env) BangerCtx(ctx context.Context, args ...string) (string, string, int) {
	res, _ := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: e.Argv(append([]string{filepath.Join(e.Bin, "banger")}, args...)...)})
	return string(res.Stdout), string(res.Stderr), res.ExitCode
}

// BangerResult runs the CLI and returns everything sysexec knows of the
// run (its peak memory too).
func (e *Env) BangerResult(args ...string) sysexec.Result {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, _ := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: e.Argv(append([]string{filepath.Join(e.Bin, "banger")}, args...)...)})
	return res
}

// MustBanger runs the CLI and fails the test on a non-zero exit.
func (e *Env) MustBanger(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.Banger(args...)
	if code != 0 {
		e.t.Fatalf("banger %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// JSON runs the CLI with --output json and decodes stdout into v.
func (e *Env) JSON(v any, args ...string) {
	e.t.Helper()
	out := e.MustBanger(append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		e.t.Fatalf("banger %s: decode JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// InNS runs a program inside the namespace (not through banger).
func (e *Env) InNS(argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := sysexec.Run(ctx, append([]string{"ip", "netns", "exec", e.NS}, argv...)...)
	return string(out), err
}

func run(t testing.TB, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := sysexec.Run(ctx, argv...); err != nil {
		t.Fatal(err)
	}
}

// PIDsMentioning lists processes whose command line contains s.
func PIDsMentioning(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		var pid int
		if _, err := fmt.Sscanf(d.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

var (
	dataOnce sync.Once
	dataDir  string
	dataErr  error
)

// SharedData returns the data dir holding the cached bundle and the
// "debian" image, building them (in the host's network namespace: apt and
// debootstrap need the mirror) when missing or when the recipe changed: the
// images/ scripts or the agent binary. A file lock serialises test
// processes.
func SharedData(t testing.TB) string {
	t.Helper()
	dataOnce.Do(func() { dataDir, dataErr = buildSharedData(t) })
	if dataErr != nil {
		t.Fatalf("shared bundle and image: %v", dataErr)
	}
	return dataDir
}

func buildSharedData(t testing.TB) (string, error) {
	bin := Binaries(t)
	cache := CacheDir()
	data := filepath.Join(cache, "e2e-data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cache, "e2e-data.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	stamp, err := recipeStamp(RepoRoot(t))
	if err != nil {
		return "", err
	}
	stampFile := filepath.Join(data, "recipe.stamp")
	// BANGER_E2E_REUSE_DATA=1 keeps a cached image whatever its recipe stamp:
	// for iterating on tests while the image sources are being edited.
	if old, _ := os.ReadFile(stampFile); string(old) == stamp || (envknob.E2EReuseData.On() && len(old) > 0) {
		if _, err := os.Stat(filepath.Join(data, "images", "debian.ext4")); err == nil {
			return data, nil
		}
	}
	// The build daemon keeps its own state next to the data; it is stopped
	// afterwards so the tests' daemons (other namespaces) own the VMs.
	state := filepath.Join(cache, "e2e-build-state")
	_ = os.RemoveAll(state)
	env := []string{
		"BANGER_CONFIG_DIR=" + filepath.Join(state, "config"), "BANGER_STATE_DIR=" + state,
		"BANGER_CACHE_DIR=" + filepath.Join(cache, "cache"), "BANGER_RUNTIME_DIR=" + filepath.Join(state, "run"),
		"BANGER_DATA_DIR=" + data, "BANGER_DAEMON_BIN=" + filepath.Join(bin, "bangerd"),
		"PATH=" + bin + ":" + os.Getenv("PATH"), "NO_COLOR=1",
	}
	banger := func(args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		_, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: append([]string{filepath.Join(bin, "banger")}, args...), Env: env,
			Stderr: prefixWriter{w: os.Stderr, prefix: "e2e setup: "}})
		return err
	}
	defer func() { _ = banger("daemon", "stop") }()
	if err := banger("bundle", "build"); err != nil {
		return "", err
	}
	if err := banger("image", "build", "--name", "debian", "--force"); err != nil {
		return "", err
	}
	return data, os.WriteFile(stampFile, []byte(stamp), 0o600)
}

// recipeStamp hashes what the image is made from: the image scripts, the
// builder and bundle code, and every package of this module the agent is
// built from (go list -deps: a fixed list missed internal/guestinit, so
// images imported by the tests kept a stale PID 1).
func recipeStamp(root string) (string, error) {
	dirs := []string{"images", "internal/bundle", "internal/initramfs", "internal/image"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: []string{"go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/banger-agent"}, Dir: root})
	if err != nil {
		return "", fmt.Errorf("list the agent's packages: %w", err)
	}
	for _, d := range strings.Fields(string(res.Stdout)) {
		if rel, err := filepath.Rel(root, d); err == nil && !strings.HasPrefix(rel, "..") {
			dirs = append(dirs, rel)
		}
	}
	h := sha256.New()
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.go") {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			fmt.Fprintf(h, "%s\n", p[len(root):])
			_, err = io.Copy(h, f)
			return err
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// prefixWriter prefixes each write (progress lines) for readable test logs.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			fmt.Fprint(p.w, p.prefix+line)
		}
	}
	return len(b), nil
}

// BangerWithEnv runs the CLI with extra environment for this one command;
// later entries win, so it can override the environment's own (PATH, for
// example). A daemon this command starts inherits it: stop the daemon first
// to run one with, say, BANGER_TEST_CRASH_AT.
func (e *Env) BangerWithEnv(extra []string, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	argv := append(append(append([]string{"ip", "netns", "exec", e.NS, "env"}, e.env...), extra...), filepath.Join(e.Bin, "banger"))
	res, _ := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: append(argv, args...)})
	return string(res.Stdout), string(res.Stderr), res.ExitCode
}

// BangerIO runs the CLI with stdin and stdout given (stdout may be a hash
// for big binary output) and returns stderr and the exit status.
func (e *Env) BangerIO(ctx context.Context, stdin io.Reader, stdout io.Writer, args ...string) (string, int) {
	res, _ := sysexec.Exec{}.Run(ctx, sysexec.Cmd{
		Argv:  e.Argv(append([]string{filepath.Join(e.Bin, "banger")}, args...)...),
		Stdin: stdin, Stdout: stdout, NoCapture: true,
	})
	return string(res.Stderr), res.ExitCode
}

// InNSCtx runs a program inside the namespace until it exits or ctx ends.
func (e *Env) InNSCtx(ctx context.Context, argv ...string) (string, error) {
	out, err := sysexec.Run(ctx, append([]string{"ip", "netns", "exec", e.NS}, argv...)...)
	return string(out), err
}

// NewestBaseTree returns the newest cached Debian base tree archive (a tar
// of the tree the shared image was built from, made by the image tests or
// by the e2e data build under cache/): the base layer of the OCI images the
// import tests make. It fails the test when there is none.
func NewestBaseTree(t testing.TB) string {
	t.Helper()
	tars, _ := filepath.Glob(filepath.Join(CacheDir(), "build", "rootfs", "*.tar"))
	more, _ := filepath.Glob(filepath.Join(CacheDir(), "cache", "build", "rootfs", "*.tar"))
	tars = append(tars, more...)
	if len(tars) == 0 {
		t.Fatal("no cached Debian base tree archive under " + CacheDir())
	}
	newest, newestTime := "", time.Time{}
	for _, p := range tars {
		if st, err := os.Stat(p); err == nil && st.ModTime().After(newestTime) {
			newest, newestTime = p, st.ModTime()
		}
	}
	return newest
}
