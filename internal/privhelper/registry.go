package privhelper

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"
)

// registry records which uid owns which bridge, tap, NAT and DNS
// registration. It is root's file under StateDir, one per network namespace
// (interfaces live in one), and every verb reads it and writes it back under
// one exclusive lock, so two users' calls never interleave between a check
// and the change it guards.
type registry struct {
	Bridges map[string]bridgeEntry `json:"bridges"`
	Taps    map[string]tapEntry    `json:"taps"`
	NAT     map[string]int         `json:"nat"` // bridge -> uid
	DNS     map[string]int         `json:"dns"` // bridge -> uid
	// Redirect: the bridges whose guests' DNS is redirected (bridge -> uid).
	Redirect map[string]int `json:"dns_redirect"`
}

type bridgeEntry struct {
	UID    int          `json:"uid"`
	Subnet netip.Prefix `json:"subnet"`
}

type tapEntry struct {
	UID    int    `json:"uid"`
	Bridge string `json:"bridge"`
}

func newRegistry() *registry {
	r := &registry{}
	r.fill()
	return r
}

// fill makes every map usable (a file may hold null for an empty one).
func (r *registry) fill() {
	if r.Bridges == nil {
		r.Bridges = map[string]bridgeEntry{}
	}
	if r.Taps == nil {
		r.Taps = map[string]tapEntry{}
	}
	if r.NAT == nil {
		r.NAT = map[string]int{}
	}
	if r.DNS == nil {
		r.DNS = map[string]int{}
	}
	if r.Redirect == nil {
		r.Redirect = map[string]int{}
	}
}

// locked is an open, locked registry; save writes it back, close unlocks.
type locked struct {
	reg  *registry
	file string // registry-NETNS.json
	lock *os.File
}

const maxRegistryBytes = 4 << 20

// openRegistry creates dir (0700) when missing, takes the lock and reads the
// registry. The directory must be root's alone when the helper runs as root.
func openRegistry(dir string, checkDir func(string) error) (*locked, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("helper state dir: %w", err)
	}
	if checkDir != nil {
		if err := checkDir(dir); err != nil {
			return nil, fmt.Errorf("helper state dir refused: %w", err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("helper lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("helper lock: %w", err)
	}
	ns, err := netnsID()
	if err != nil {
		f.Close()
		return nil, err
	}
	file := filepath.Join(dir, "registry-"+ns+".json")
	reg := newRegistry()
	data, err := readBounded(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		f.Close()
		return nil, err
	default:
		if err := json.Unmarshal(data, reg); err != nil {
			f.Close()
			return nil, fmt.Errorf("helper registry %s is damaged (%v): remove it; it is rebuilt as VMs start", file, err)
		}
		reg.fill()
	}
	return &locked{reg: reg, file: file, lock: f}, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxRegistryBytes {
		return nil, fmt.Errorf("helper registry %s is not a regular file of at most %d bytes", path, maxRegistryBytes)
	}
	return os.ReadFile(path)
}

// save writes the registry atomically (temp file, fsync, rename).
func (l *locked) save() error {
	data, err := json.MarshalIndent(l.reg, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(l.file), "."+filepath.Base(l.file)+".tmp")
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write helper registry: %w", err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write helper registry: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write helper registry: %w", err)
	}
	f.Close()
	if err := os.Rename(tmp, l.file); err != nil {
		return fmt.Errorf("write helper registry: %w", err)
	}
	return nil
}

func (l *locked) close() { l.lock.Close() }

// netnsID names the network namespace of the calling thread (its nsfs
// inode), so each namespace's interfaces have their own registry.
func netnsID() (string, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return "", fmt.Errorf("identify the network namespace: %w", err)
	}
	return strconv.FormatUint(st.Ino, 10), nil
}

// counts of what uid owns, for the caps.
func (r *registry) bridgesOf(uid int) []string {
	var out []string
	for n, b := range r.Bridges {
		if b.UID == uid {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (r *registry) tapsOf(uid int) int {
	n := 0
	for _, t := range r.Taps {
		if t.UID == uid {
			n++
		}
	}
	return n
}
