package hostile

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/banger-dev/banger/internal/kernel/kerneltest"
	"github.com/banger-dev/banger/internal/sysexec"
)

// TestFileAndSocketModes checks, on a daemon the real CLI started, that
// nothing banger creates is open to other users: the API socket and its
// directory, the state and data directories, the database and the log.
func TestFileAndSocketModes(t *testing.T) {
	e := newEnv(t)
	// A wide-open umask, inherited by banger and the bangerd it starts, must
	// not loosen banger's files: modes have to be explicit.
	old := syscall.Umask(0)
	e.must(t, "daemon", "start")
	syscall.Umask(old)

	exact := map[string]fs.FileMode{
		e.layout.DaemonSocket():               0o600 | fs.ModeSocket,
		filepath.Dir(e.layout.DaemonSocket()): 0o700 | fs.ModeDir,
		e.layout.StateDir:                     0o700 | fs.ModeDir,
		e.layout.VMsDir():                     0o700 | fs.ModeDir,
		e.layout.DataDir:                      0o700 | fs.ModeDir,
		e.layout.ImagesDir():                  0o700 | fs.ModeDir,
		e.layout.ConfigDir:                    0o700 | fs.ModeDir,
	}
	for p, want := range exact {
		st, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if st.Mode() != want {
			t.Errorf("%s has mode %v, want %v", p, st.Mode(), want)
		}
	}
	// Not readable or writable by others: the database (and its WAL files,
	// which hold the same data), the daemon log and lock.
	private, _ := filepath.Glob(e.layout.Database() + "*")
	private = append(private, e.layout.DaemonLog(), e.layout.DaemonLock())
	if len(private) < 3 {
		t.Fatalf("database file %s missing", e.layout.Database())
	}
	for _, p := range private {
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: readable or writable by group or others", p, st.Mode().Perm())
		}
	}
	t.Run("bundle key", func(t *testing.T) {
		// A real `banger bundle build` by this daemon (still under umask 0):
		// the SSH key every image trusts must be private to its owner, and
		// nothing in the bundle writable by others.
		if testing.Short() {
			t.Skip("-short: the bundle build (kernel package, modules, initramfs) runs in the integration tier")
		}
		seedBundleInputs(t, e)
		e.must(t, "bundle", "build")
		key := filepath.Join(e.layout.BundleDir(), "id_ed25519")
		st, err := os.Stat(key)
		if err != nil {
			t.Fatalf("bundle build made no key: %v", err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", key, st.Mode().Perm())
		}
		filepath.WalkDir(e.layout.BundleDir(), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Error(err)
				return nil
			}
			if st, err := os.Lstat(p); err == nil && st.Mode().Type() != fs.ModeSymlink && st.Mode().Perm()&0o022 != 0 {
				t.Errorf("%s has mode %v: writable by group or others", p, st.Mode().Perm())
			}
			return nil
		})
	})
}

// seedBundleInputs gives the environment what `bundle build` needs without
// the network each time: the guest agent built statically next to bangerd
// (where the daemon looks for it), and the Debian kernel package from the
// test cache shared by every package (kerneltest fetches it once; without
// it the test skips, or fails with BANGER_TEST_REQUIRE_KERNEL=1 as in CI).
func seedBundleInputs(t *testing.T, e *env) {
	t.Helper()
	agent := filepath.Join(filepath.Dir(bin.bangerd), "banger-agent")
	if _, err := os.Stat(agent); err != nil {
		_, err := sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{
			Argv: []string{"go", "build", "-o", agent, "./cmd/banger-agent"},
			Dir:  "../..", Env: []string{"CGO_ENABLED=0"},
		})
		if err != nil {
			t.Fatalf("building the guest agent: %v", err)
		}
	}
	deb := kerneltest.Deb(t)
	cache := filepath.Join(e.layout.CacheDir, "kernel")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(cache, filepath.Base(deb))
	if err := os.Link(deb, dst); err != nil {
		data, err := os.ReadFile(deb)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
