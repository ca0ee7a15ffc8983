package rootsafe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rootDir makes a root-owned 0755 directory outside any sticky directory
// (t.TempDir lives under /tmp, which Strict refuses by design).
func rootDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make root-owned test directories")
	}
	d, err := os.MkdirTemp("/var/lib", "rootsafe-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCheck(t *testing.T) {
	d := rootDir(t)
	mk := func(rel string, mode os.FileMode, uid int) string {
		p := filepath.Join(d, rel)
		if strings.HasSuffix(rel, "/") {
			if err := os.Mkdir(p, mode); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return filepath.Clean(p)
	}
	good := mk("good", 0o755, 0)
	userDir := mk("user/", 0o755, 1000)
	writable := mk("writable/", 0o777, 0)
	sticky := mk("sticky/", os.ModeSticky|0o777, 0)
	inSticky := filepath.Join(sticky, "f")
	if err := os.WriteFile(inSticky, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	groupW := mk("groupw", 0o775, 0)
	if err := os.Symlink(good, filepath.Join(d, "rootlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(good, filepath.Join(d, "userlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(d, "userlink"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(userDir), filepath.Join(d, "rootlink-to-user")); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		path   string
		policy Policy
		want   string // "" = safe
	}{
		{good, Strict, ""},
		{filepath.Join(userDir, "x"), Strict, "owned by uid 1000"},
		{userDir, Strict, "owned by uid 1000"},
		{filepath.Join(writable, "."), Strict, "writable by group or others"},
		{groupW, Strict, "writable by group or others"},
		{inSticky, Strict, "writable by group or others"},
		{inSticky, Policy{AllowStickyDirs: true}, ""},
		{sticky, Policy{AllowStickyDirs: true}, "writable by group or others"}, // the sticky dir itself is not root's alone
		{filepath.Join(d, "rootlink"), Strict, ""},
		{filepath.Join(d, "userlink"), Strict, "symlink owned by uid 1000"},
		{filepath.Join(d, "rootlink-to-user"), Strict, "owned by uid 1000"},
		{"relative/path", Strict, "not an absolute path"},
		{filepath.Join(d, "missing"), Strict, "no such file"},
	} {
		err := Check(c.path, c.policy)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("Check(%s) = %v, want safe", c.path, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("Check(%s) = %v, want %q", c.path, err, c.want)
		}
	}
}

func TestLookProgramIgnoresPATH(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	p, err := LookProgram("sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p, "/usr/") && !strings.HasPrefix(p, "/bin/") && !strings.HasPrefix(p, "/sbin/") {
		t.Errorf("LookProgram(sh) = %s", p)
	}
	for _, bad := range []string{"../sh", "/bin/sh", ""} {
		if _, err := LookProgram(bad); err == nil {
			t.Errorf("LookProgram(%q) accepted", bad)
		}
	}
	if _, err := LookProgram("no-such-program-banger"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing program: %v", err)
	}
}

func TestCheckParentAllowsAStickyDirToCreateIn(t *testing.T) {
	d := rootDir(t)
	sticky := filepath.Join(d, "sticky")
	if err := os.Mkdir(sticky, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	if err := CheckParent(sticky, Policy{AllowStickyDirs: true}); err != nil {
		t.Errorf("CheckParent(sticky) = %v", err)
	}
	if err := CheckParent(sticky, Strict); err == nil {
		t.Error("Strict allowed a sticky parent")
	}
	if err := Check(sticky, Policy{AllowStickyDirs: true}); err == nil {
		t.Error("Check allowed the sticky dir itself as a target")
	}
}
