// Package paths lays out banger's files under the XDG base directories.
// Every directory can be overridden (tests point them at temp dirs) through
// the BANGER_*_DIR environment variables or by building a Layout directly.
package paths

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/adrg/xdg"
)

// MaxSocketPath is the longest Unix socket path the kernel accepts
// (sun_path is 108 bytes including the terminating NUL).
const MaxSocketPath = 107

// Layout is the set of banger's base directories.
type Layout struct {
	ConfigDir  string // $XDG_CONFIG_HOME/banger: config.toml
	StateDir   string // $XDG_STATE_HOME/banger: database, VM disks, console logs, daemon log
	DataDir    string // $XDG_DATA_HOME/banger: images, runtime bundle
	CacheDir   string // $XDG_CACHE_HOME/banger: build caches (debootstrap trees, kernel debs)
	RuntimeDir string // $XDG_RUNTIME_DIR/banger: daemon and per-VM sockets
}

// Default returns the layout from the XDG environment, with BANGER_CONFIG_DIR,
// BANGER_STATE_DIR, BANGER_DATA_DIR, BANGER_CACHE_DIR and BANGER_RUNTIME_DIR
// taking precedence when set.
func Default() Layout {
	xdg.Reload() // pick up environment changes (tests set XDG_* per test)
	runtime := xdg.RuntimeDir
	// Without XDG_RUNTIME_DIR the library guesses /run/user/UID, which only
	// a login session (pam_systemd) makes: a user reached through su, sudo
	// -iu or cron has none, and cannot create it.
	if os.Getenv("XDG_RUNTIME_DIR") == "" && !isDir(runtime) {
		runtime = ""
	}
	if runtime == "" {
		runtime = filepath.Join(os.TempDir(), fmt.Sprintf("banger-%d", os.Getuid()))
	}
	return Layout{
		ConfigDir:  env("BANGER_CONFIG_DIR", filepath.Join(xdg.ConfigHome, "banger")),
		StateDir:   env("BANGER_STATE_DIR", filepath.Join(xdg.StateHome, "banger")),
		DataDir:    env("BANGER_DATA_DIR", filepath.Join(xdg.DataHome, "banger")),
		CacheDir:   env("BANGER_CACHE_DIR", filepath.Join(xdg.CacheHome, "banger")),
		RuntimeDir: env("BANGER_RUNTIME_DIR", filepath.Join(runtime, "banger")),
	}
}

// UnderRoot returns a layout with every directory below root (for tests and
// for `banger --root DIR`).
func UnderRoot(root string) Layout {
	return Layout{
		ConfigDir:  filepath.Join(root, "config"),
		StateDir:   filepath.Join(root, "state"),
		DataDir:    filepath.Join(root, "data"),
		CacheDir:   filepath.Join(root, "cache"),
		RuntimeDir: filepath.Join(root, "run"),
	}
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Ensure creates every directory with mode 0700.
func (l Layout) Ensure() error {
	for _, d := range []string{l.ConfigDir, l.StateDir, l.DataDir, l.CacheDir, l.RuntimeDir, l.VMsDir(), l.ImagesDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
		// MkdirAll leaves existing directories alone; tighten ours.
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("chmod %s: %w", d, err)
		}
	}
	return nil
}

func (l Layout) ConfigFile() string   { return filepath.Join(l.ConfigDir, "config.toml") }
func (l Layout) Database() string     { return filepath.Join(l.StateDir, "banger.db") }
func (l Layout) DaemonLog() string    { return filepath.Join(l.StateDir, "bangerd.log") }
func (l Layout) DaemonLock() string   { return filepath.Join(l.StateDir, "bangerd.lock") }
func (l Layout) DaemonSocket() string { return filepath.Join(l.RuntimeDir, "bangerd.sock") }
func (l Layout) KnownHosts() string   { return filepath.Join(l.StateDir, "known_hosts") }

// SSHConfig is the Host blocks file `banger ssh-config --install` includes
// from ~/.ssh/config; bangerd rewrites it when VMs change.
func (l Layout) SSHConfig() string { return filepath.Join(l.StateDir, "ssh_config") }
func (l Layout) VMsDir() string    { return filepath.Join(l.StateDir, "vms") }
func (l Layout) ImagesDir() string { return filepath.Join(l.DataDir, "images") }
func (l Layout) BundleDir() string { return filepath.Join(l.DataDir, "bundle") }
func (l Layout) BuildCacheDir() string {
	return filepath.Join(l.CacheDir, "build")
}

// VM returns the per-VM file layout for a VM's short id.
func (l Layout) VM(id string) VMFiles {
	return VMFiles{
		Dir:     filepath.Join(l.VMsDir(), id),
		SockDir: filepath.Join(l.RuntimeDir, id),
	}
}

// VMFiles names one VM's files. Disks and logs live under the state dir;
// sockets under the runtime dir, named briefly to stay under 108 bytes.
type VMFiles struct {
	Dir     string
	SockDir string
}

func (f VMFiles) Rootfs() string     { return filepath.Join(f.Dir, "rootfs.ext4") }
func (f VMFiles) RootfsQcow() string { return filepath.Join(f.Dir, "rootfs.qcow2") }
func (f VMFiles) WorkDisk() string   { return filepath.Join(f.Dir, "work.ext4") }
func (f VMFiles) ConsoleLog() string { return filepath.Join(f.Dir, "console.log") }
func (f VMFiles) VMMLog() string     { return filepath.Join(f.Dir, "vmm.log") }
func (f VMFiles) APISocket() string  { return filepath.Join(f.SockDir, "api.sock") }
func (f VMFiles) VsockSocket() string {
	return filepath.Join(f.SockDir, "v.sock")
}
func (f VMFiles) AgentSocket() string { return filepath.Join(f.SockDir, "agent.sock") }
func (f VMFiles) QMPSocket() string   { return filepath.Join(f.SockDir, "qmp.sock") }

// HostKeyAlias is the name a VM's SSH host key is recorded under in banger's
// known_hosts: per VM id, so a recreated VM of the same name or address is a
// new host, never a "changed key".
func HostKeyAlias(id string) string { return "banger-" + id }

// CheckSocketPath returns a clear error when path is too long to bind.
func CheckSocketPath(path string) error {
	if len(path) > MaxSocketPath {
		return fmt.Errorf("socket path %s is %d bytes, over the %d-byte Unix socket limit: "+
			"set a shorter runtime directory (XDG_RUNTIME_DIR or BANGER_RUNTIME_DIR)", path, len(path), MaxSocketPath)
	}
	return nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
