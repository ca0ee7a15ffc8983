package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRootBuildRefusesUserWritableDirs plays a local user who prepared the
// directories a root build would use: a cache dir they own, and a symlink
// they planted inside a sticky directory.
func TestRootBuildRefusesUserWritableDirs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the check applies to root builds only (run as root)")
	}
	sticky := t.TempDir() // root-owned, under sticky /tmp
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(sticky, os.ModeSticky|0o777))
	userCache := filepath.Join(sticky, "banger-test-cache")
	must(os.Mkdir(userCache, 0o755))
	must(os.Chown(userCache, 1000, 1000))
	planted := filepath.Join(sticky, "planted")
	must(os.Symlink("/etc", planted))
	must(os.Lchown(planted, 1000, 1000))

	for dir, want := range map[string]string{
		filepath.Join(userCache, "builds"):    "owned by uid 1000",
		filepath.Join(planted, "banger-work"): "symlink owned by uid 1000",
	} {
		err := checkRootBuildDirs(dir)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkRootBuildDirs(%s) = %v, want %q", dir, err, want)
		}
		if _, statErr := os.Stat(dir); statErr == nil {
			t.Errorf("%s was created despite the refusal", dir)
		}
	}
	// Root's own directory below the sticky one is fine, and is made.
	ok := filepath.Join(sticky, "root-cache", "builds")
	if err := checkRootBuildDirs(ok); err != nil {
		t.Errorf("a root-owned cache below a sticky dir: %v", err)
	}
	if st, err := os.Stat(ok); err != nil || !st.IsDir() {
		t.Errorf("%s not created: %v", ok, err)
	}
}
