package paths

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestRuntimeDirFallback(t *testing.T) {
	t.Setenv("BANGER_RUNTIME_DIR", "")
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", dir)
	if got := Default().RuntimeDir; got != filepath.Join(dir, "banger") {
		t.Errorf("with XDG_RUNTIME_DIR: %s", got)
	}
	// No XDG_RUNTIME_DIR (su, sudo -iu, cron): /run/user/UID only when a
	// login session made it, else a directory under /tmp.
	t.Setenv("XDG_RUNTIME_DIR", "")
	want := filepath.Join(os.TempDir(), fmt.Sprintf("banger-%d", os.Getuid()), "banger")
	if isDir(fmt.Sprintf("/run/user/%d", os.Getuid())) {
		want = fmt.Sprintf("/run/user/%d/banger", os.Getuid())
	}
	if got := Default().RuntimeDir; got != want {
		t.Errorf("without XDG_RUNTIME_DIR: %s, want %s", got, want)
	}
}
