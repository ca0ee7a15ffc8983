// Package hostile runs the real banger and bangerd binaries against hostile
// input: every case must fail with a clear message and change nothing.
package hostile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/client"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sysexec"
)

// bin holds the binaries TestMain builds from this tree.
var bin struct{ banger, bangerd string }

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bh-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin.banger, bin.bangerd = filepath.Join(dir, "banger"), filepath.Join(dir, "bangerd")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, b := range []struct{ out, pkg string }{{bin.banger, "./cmd/banger"}, {bin.bangerd, "./cmd/bangerd"}} {
		// The module root is two levels up from this package.
		_, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: []string{"go", "build", "-o", b.out, b.pkg}, Dir: "../.."})
		if err != nil {
			fmt.Fprintf(os.Stderr, "hostile: building %s failed, so no case ran: %v\n", b.pkg, err)
			return 1
		}
	}
	return m.Run()
}

// env is one isolated banger installation under a short temp dir (so socket
// paths stay well under 108 bytes) with its own daemon.
type env struct {
	root   string
	layout paths.Layout
	vars   []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root, err := os.MkdirTemp("/tmp", "bh-")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{root: root, layout: paths.UnderRoot(root)}
	e.vars = []string{
		"BANGER_CONFIG_DIR=" + e.layout.ConfigDir, "BANGER_STATE_DIR=" + e.layout.StateDir,
		"BANGER_DATA_DIR=" + e.layout.DataDir, "BANGER_CACHE_DIR=" + e.layout.CacheDir,
		"BANGER_RUNTIME_DIR=" + e.layout.RuntimeDir, "BANGER_DAEMON_BIN=" + bin.bangerd,
		"NO_COLOR=1",
	}
	t.Cleanup(func() {
		if _, stderr, code := e.run(t, "daemon", "stop"); code != 0 {
			t.Errorf("banger daemon stop: exit %d: %s", code, stderr)
		}
		os.RemoveAll(root)
	})
	return e
}

// run runs banger with args and returns its output and exit status.
func (e *env) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: append([]string{bin.banger}, args...), Env: e.vars, Dir: e.root})
	var se *sysexec.Error
	if err != nil && !errors.As(err, &se) {
		t.Fatalf("run banger %q: %v", args, err)
	}
	if res.ExitCode < 0 {
		t.Fatalf("banger %q did not exit normally: %v", args, err)
	}
	return string(res.Stdout), string(res.Stderr), res.ExitCode
}

// must runs banger and fails the test unless it succeeds.
func (e *env) must(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, code := e.run(t, args...)
	if code != 0 {
		t.Fatalf("banger %q: exit %d: %s", args, code, stderr)
	}
	return out
}

// snapshot is everything a refused command must leave unchanged: the VM and
// image lists, and the files under the VM, image and runtime directories.
func (e *env) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(e.must(t, "vm", "list", "--output", "json"))
	b.WriteString(e.must(t, "image", "list", "--output", "json"))
	for _, dir := range []string{e.layout.VMsDir(), e.layout.ImagesDir(), e.layout.RuntimeDir} {
		var entries []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				entries = append(entries, p+": "+err.Error())
				return nil
			}
			entries = append(entries, p)
			return nil
		})
		sort.Strings(entries)
		fmt.Fprintf(&b, "%s:\n%s\n", dir, strings.Join(entries, "\n"))
	}
	return b.String()
}

type hostileCase struct {
	name string
	args []string
	want string // regexp the error output must match: the key phrase of a clear message
	// notWant, when set, must not appear (e.g. a hint about the wrong kind of object).
	notWant string
	setup   func(t *testing.T)
}

func TestHostileCLIInput(t *testing.T) {
	e := newEnv(t)
	fx := filepath.Join(e.root, "fx")
	canary := filepath.Join(e.root, "pwned")
	missing := filepath.Join(fx, "missing")
	notExt4 := filepath.Join(fx, "notext4.img")
	rootfs := filepath.Join(fx, "rootfs.ext4")
	if err := os.MkdirAll(filepath.Join(fx, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notExt4, []byte(strings.Repeat("this is not a filesystem\n", 1<<12)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rootfs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(rootfs, 8<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := sysexec.Run(context.Background(), "mkfs.ext4", "-q", "-F", "-L", "hostile", rootfs); err != nil {
		t.Fatalf("make the ext4 fixture (apt-get install e2fsprogs): %v", err)
	}
	// A registrable image (stub agent and sshd inside) for the cases that
	// need an existing image; it is registered before the cases run.
	goodRootfs := filepath.Join(fx, "good.ext4")
	for _, p := range []string{"usr/local/bin/banger-agent", "usr/sbin/sshd"} {
		full := filepath.Join(fx, "tree", p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(goodRootfs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(goodRootfs, 16<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := sysexec.Run(context.Background(), "mkfs.ext4", "-q", "-F", "-d", filepath.Join(fx, "tree"), goodRootfs); err != nil {
		t.Fatalf("make the ext4 fixture: %v", err)
	}
	bundleDir := e.layout.BundleDir()
	writeBundle := func(kernel string) func(t *testing.T) {
		return func(t *testing.T) {
			os.RemoveAll(bundleDir)
			for _, f := range []string{"banger-agent", "id_ed25519", "id_ed25519.pub"} {
				if err := os.MkdirAll(bundleDir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(bundleDir, f), []byte(f), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink("/etc/passwd", filepath.Join(bundleDir, "vmlinux-link")); err != nil {
				t.Fatal(err)
			}
			manifest := fmt.Sprintf(`{"schema_version":1,"kernel":%q,"agent":"banger-agent","ssh_key":"id_ed25519","ssh_pub_key":"id_ed25519.pub"}`, kernel)
			if err := os.WriteFile(filepath.Join(bundleDir, "bundle.json"), []byte(manifest), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}

	const nameRule = `1-63 characters`
	const notFound = `does not exist|not found`
	create := func(extra ...string) []string {
		return append([]string{"vm", "create", "--no-start", "--name", "ok"}, extra...)
	}
	cases := []hostileCase{
		{name: "vm name with slash", args: []string{"vm", "create", "--no-start", "--name", "a/b"}, want: nameRule},
		{name: "vm name dotdot", args: []string{"vm", "create", "--no-start", "--name", ".."}, want: nameRule},
		{name: "vm name with space", args: []string{"vm", "create", "--no-start", "--name", "a b"}, want: nameRule},
		{name: "vm name shell command", args: []string{"vm", "create", "--no-start", "--name", "a;touch " + canary}, want: nameRule},
		{name: "vm name command substitution", args: []string{"vm", "create", "--no-start", "--name", "$(touch " + canary + ")"}, want: nameRule},
		{name: "vm name backticks", args: []string{"vm", "create", "--no-start", "--name", "`touch " + canary + "`"}, want: nameRule},
		{name: "vm name unicode", args: []string{"vm", "create", "--no-start", "--name", "dév"}, want: nameRule},
		{name: "vm name uppercase", args: []string{"vm", "create", "--no-start", "--name", "Dev"}, want: nameRule},
		{name: "vm name 64 bytes", args: []string{"vm", "create", "--no-start", "--name", strings.Repeat("a", 64)}, want: nameRule},
		{name: "vm name leading hyphen", args: []string{"vm", "create", "--no-start", "--name=-dev"}, want: nameRule},
		{name: "vm name empty", args: []string{"vm", "create", "--no-start", "--name", ""}, want: `VM name is empty`},
		{name: "image name hostile", args: []string{"vm", "create", "--no-start", "--name", "ok", "--image", "../etc"}, want: nameRule},
		{name: "vcpus 0", args: create("--vcpus", "0"), want: `must be between 1 and`},
		{name: "vcpus -1", args: create("--vcpus", "-1"), want: `must be between 1 and`},
		{name: "vcpus huge", args: create("--vcpus", "1000000"), want: `must be between 1 and`},
		{name: "vcpus non-numeric", args: create("--vcpus", "four"), want: `invalid argument "four" for "--vcpus"`},
		{name: "memory 0", args: create("--memory", "0"), want: `must be greater than zero`},
		{name: "memory -1", args: create("--memory", "-1"), want: `must be greater than zero`},
		{name: "memory too small", args: create("--memory", "64"), want: `must be at least 128`},
		{name: "memory huge", args: create("--memory", "1000000"), want: `more than this host's RAM`},
		{name: "memory non-numeric", args: create("--memory", "lots"), want: `invalid size "lots"`},
		{name: "disk 0", args: create("--disk", "0"), want: `must be greater than zero`},
		{name: "disk -1G", args: create("--disk", "-1G"), want: `must be greater than zero`},
		{name: "disk unknown unit", args: create("--disk", "1Q"), want: `unknown unit "Q"`},
		{name: "disk too small", args: create("--disk", "512M"), want: `must be at least 1G`},
		{name: "disk beyond free space", args: create("--disk", "99999T"), want: `free on the state filesystem`},
		{name: "vm set nonexistent", args: []string{"vm", "set", "nosuch", "--vcpus", "2"}, want: notFound},
		{name: "vm start nonexistent", args: []string{"vm", "start", "nosuch"}, want: notFound},
		{name: "vm ssh nonexistent", args: []string{"vm", "ssh", "nosuch"}, want: notFound},
		{name: "vm delete nonexistent", args: []string{"vm", "delete", "--yes", "nosuch"}, want: notFound},
		{name: "vm delete hostile name", args: []string{"vm", "delete", "--yes", "../../" + filepath.Base(e.root)}, want: notFound + `|` + nameRule},
		{name: "image register hostile name", args: []string{"image", "register", "--name", "a;rm -rf /", "--rootfs", rootfs}, want: nameRule},
		{name: "image register missing rootfs", args: []string{"image", "register", "--name", "img", "--rootfs", missing}, want: `not a readable`},
		{name: "image register directory rootfs", args: []string{"image", "register", "--name", "img", "--rootfs", filepath.Join(fx, "adir")}, want: `not a readable`},
		{name: "image register missing kernel", args: []string{"image", "register", "--name", "img", "--rootfs", rootfs, "--kernel", missing}, want: `not a readable`},
		{name: "image register directory kernel", args: []string{"image", "register", "--name", "img", "--rootfs", rootfs, "--kernel", filepath.Join(fx, "adir")}, want: `not a readable`},
		{name: "image register not ext4", args: []string{"image", "register", "--name", "img", "--rootfs", notExt4}, want: `not an ext4`},
		{name: "image register /etc/passwd", args: []string{"image", "register", "--name", "img", "--rootfs", "/etc/passwd"}, want: `not an ext4`},
		{name: "image verify nonexistent", args: []string{"image", "verify", "nosuch"}, want: notFound, notWant: "banger vm list"},
		{name: "image delete nonexistent", args: []string{"image", "delete", "nosuch"}, want: notFound, notWant: "banger vm list"},
		{name: "image register duplicate name", args: []string{"image", "register", "--name", "base", "--rootfs", goodRootfs}, want: `already exists`},
		// Provisioning fails (no runtime bundle here): the half-made VM must be undone.
		{name: "vm create refused by the vm-start checks leaves nothing", args: []string{"vm", "create", "--name", "ok", "--image", "base", "--disk", "1G"}, want: `bundle`},
		{name: "bundle path climbs out", args: []string{"bundle", "show"}, want: `leaves the bundle directory`,
			setup: writeBundle("../../../../../etc/passwd")},
		{name: "bundle symlink leads out", args: []string{"bundle", "show"}, want: `outside the bundle directory`,
			setup: writeBundle("vmlinux-link")},
		{name: "bundle absolute path", args: []string{"bundle", "show"}, want: `is absolute`,
			setup: writeBundle("/etc/passwd")},
	}

	// Start the daemon and register the good image once, outside any case.
	e.must(t, "daemon", "start")
	e.must(t, "image", "register", "--name", "base", "--rootfs", goodRootfs)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup(t)
			}
			before := e.snapshot(t)
			stdout, stderr, code := e.run(t, c.args...)
			if code == 0 {
				t.Errorf("banger %q succeeded (stdout %q); want a refusal matching %q", c.args, stdout, c.want)
			}
			if !regexp.MustCompile(c.want).MatchString(stderr) {
				t.Errorf("banger %q: stderr %q does not say %q", c.args, stderr, c.want)
			}
			if c.notWant != "" && strings.Contains(stderr, c.notWant) {
				t.Errorf("banger %q: stderr %q points the user at %q", c.args, stderr, c.notWant)
			}
			// Progress lines may come first; the error is a "banger: " line, never a panic.
			if !strings.Contains("\n"+stderr, "\nbanger: ") || strings.Contains(stderr, "goroutine ") {
				t.Errorf("banger %q: stderr is not a banger error: %q", c.args, stderr)
			}
			if after := e.snapshot(t); after != before {
				t.Errorf("banger %q changed state:\nbefore:\n%s\nafter:\n%s", c.args, before, after)
			}
			if _, err := os.Stat(canary); err == nil {
				t.Fatalf("banger %q ran a shell command from its input: %s exists", c.args, canary)
			}
		})
	}
}

// TestDaemonRevalidatesRawRequests bypasses the CLI and sends hostile
// parameters straight to the real bangerd socket: the daemon must refuse
// each with the right code (its checks are not just the CLI's) and change
// nothing.
func TestDaemonRevalidatesRawRequests(t *testing.T) {
	e := newEnv(t)
	e.must(t, "daemon", "start")
	c := client.New(e.layout.DaemonSocket())
	type obj = map[string]any
	cases := []struct {
		method string
		params any
		code   api.ErrorCode
		want   string
	}{
		{api.MethodVMCreate, obj{"name": "a/b", "no_start": true}, api.CodeInvalidArgument, "1-63 characters"},
		{api.MethodVMCreate, obj{"name": "ok", "no_start": true, "vcpus": 0}, api.CodeInvalidArgument, "between 1 and"},
		{api.MethodVMCreate, obj{"name": "ok", "no_start": true, "memory_mib": -1}, api.CodeInvalidArgument, "at least 128"},
		{api.MethodVMCreate, obj{"name": "ok", "no_start": true, "disk_bytes": 0}, api.CodeInvalidArgument, "at least 1G"},
		{api.MethodVMCreate, obj{"name": "ok", "no_start": true, "disk_bytes": -1 << 40}, api.CodeInvalidArgument, "at least 1G"},
		{api.MethodVMCreate, obj{"name": "ok", "no_start": true, "image": "../../etc"}, api.CodeInvalidArgument, "1-63 characters"},
		{api.MethodVMCreate, obj{"name": "ok", "no_start": true, "vcpus": 1e20}, api.CodeBadRequest, "bad params"},
		{api.MethodVMCreate, obj{"name": "ok", "no_start": true, "rm": "-rf"}, api.CodeBadRequest, "unknown field"},
		{api.MethodVMSet, obj{"name": "nosuch", "vcpus": 0}, "", ""},
		{api.MethodVMLogs, obj{"name": "nosuch", "tail_bytes": -1}, "", ""},
		{api.MethodImageRegister, obj{"name": "img", "rootfs_path": "relative/rootfs.ext4"}, api.CodeInvalidArgument, ""},
		{api.MethodImageRegister, obj{"name": "img", "rootfs_path": "/etc/../etc/passwd"}, api.CodeInvalidArgument, "not an ext4"},
		{api.MethodImageRegister, obj{"name": "img", "rootfs_path": "/dev/zero"}, api.CodeInvalidArgument, "not a readable"},
		{api.MethodImageRegister, obj{"name": "img", "rootfs_path": "/proc/self/environ"}, api.CodeInvalidArgument, ""},
		{api.MethodDoctorRun, obj{"scopes": []string{"../../etc"}}, api.CodeInvalidArgument, ""},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s %v", tc.method, tc.params), func(t *testing.T) {
			before := e.snapshot(t)
			err := c.Call(context.Background(), tc.method, tc.params, nil, nil)
			var ae *api.Error
			if !errors.As(err, &ae) {
				t.Fatalf("want a refusal, got %v", err)
			}
			// An empty code means "any refusal but internal": the VM does not
			// exist, so the exact code depends on which check runs first.
			if tc.code != "" && ae.Code != tc.code || ae.Code == api.CodeInternal {
				t.Errorf("code %s (%s), want %s", ae.Code, ae.Message, tc.code)
			}
			if !strings.Contains(ae.Message, tc.want) {
				t.Errorf("message %q lacks %q", ae.Message, tc.want)
			}
			if after := e.snapshot(t); after != before {
				t.Errorf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	// An oversized body is refused by the real daemon too.
	big := fmt.Sprintf(`{"version":%d,"method":"vm.list","params":{"x":"%s"}}`, api.Version, strings.Repeat("a", api.MaxRequestBytes))
	var ae *api.Error
	if err := c.CallRaw(context.Background(), []byte(big), nil, nil); !errors.As(err, &ae) || ae.Code != api.CodeTooLarge {
		t.Fatalf("oversized request: %v", err)
	}
}
