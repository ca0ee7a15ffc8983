package doctor

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
)

// fakeHost is a fabricated machine: a root for /dev, /proc, /sys and /run,
// and a bin directory that stands in for PATH.
type fakeHost struct {
	t    *testing.T
	root string
	bin  string
	env  *Env
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	h := &fakeHost{t: t, root: t.TempDir(), bin: t.TempDir()}
	for _, d := range []string{"dev", "proc/sys/net/ipv4", "proc/net", "sys/class/net", "run"} {
		if err := os.MkdirAll(filepath.Join(h.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.env = &Env{
		Root:       h.root,
		LookPath:   h.lookPath,
		Geteuid:    func() int { return 1000 },
		Getenv:     func(string) string { return "" },
		RunVersion: runVersion, // the fake programs really run
		SudoAllowed: func(context.Context, []string) error {
			return errors.New("sudo: a password is required")
		},
		FreeBytes:  func(string) (uint64, error) { return 100 << 30, nil },
		ConfigFile: "/home/u/.config/banger/config.toml",
		VMM:        "auto",
		Subnet:     netip.MustParsePrefix("172.30.0.0/24"),
		Bridge:     "banger0",
		DNSDomain:  "vm",
		DNSPort:    53,
	}
	return h
}

// lookPath finds name only in the fake bin directory.
func (h *fakeHost) lookPath(name string) (string, error) {
	p := filepath.Join(h.bin, name)
	if err := sysexec.CheckExecutable(p); err != nil {
		return "", errors.New(name + " not found in PATH")
	}
	return p, nil
}

// program installs a fake executable that prints out (to stderr when
// toStderr, as mkfs.ext4 -V does) and returns its path.
func (h *fakeHost) program(name, out string, toStderr bool) string {
	h.t.Helper()
	redirect := ""
	if toStderr {
		redirect = " >&2"
	}
	script := "#!/bin/sh\ncat <<'EOF'" + redirect + "\n" + out + "\nEOF\n"
	p := filepath.Join(h.bin, name)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// file writes a system file under the fake root.
func (h *fakeHost) file(rel, content string) string {
	h.t.Helper()
	p := filepath.Join(h.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// run runs one named check against the fake host.
func (h *fakeHost) run(name string) api.CheckResult {
	h.t.Helper()
	for _, c := range All() {
		if c.Name == name {
			r := runOne(context.Background(), h.env, c)
			r.Name = name
			return r
		}
	}
	h.t.Fatalf("no check named %q", name)
	return api.CheckResult{}
}

// want asserts a result's status and that detail and fix contain the given
// fragments ("" = anything).
func want(t *testing.T, r api.CheckResult, status api.CheckStatus, detail, fix string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: status %s, want %s (detail %q, fix %q)", r.Name, r.Status, status, r.Detail, r.Fix)
	}
	if !strings.Contains(r.Detail, detail) {
		t.Errorf("%s: detail %q lacks %q", r.Name, r.Detail, detail)
	}
	if !strings.Contains(r.Fix, fix) {
		t.Errorf("%s: fix %q lacks %q", r.Name, r.Fix, fix)
	}
}
