package guestinit

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// mount describes one filesystem PID 1 makes sure is mounted.
type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

// systemMounts are what Linux and ordinary programs expect, in order.
// /dev, /proc and /sys are usually moved in by banger's initramfs already.
var systemMounts = []mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

// mountSystem mounts what is not mounted yet. A failure is reported and the
// rest still tried: a guest with /tmp on its disk still works.
func mountSystem() []error {
	var errs []error
	for _, m := range systemMounts {
		mounted, _ := mountPoints()
		if mounted[m.target] {
			continue
		}
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err))
		}
	}
	// /dev/ptmx for the exec server's terminals.
	if _, err := os.Lstat("/dev/ptmx"); errors.Is(err, os.ErrNotExist) {
		_ = os.Symlink("pts/ptmx", "/dev/ptmx")
	}
	for _, l := range [][2]string{{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"}, {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}} {
		if _, err := os.Lstat(l[1]); errors.Is(err, os.ErrNotExist) {
			_ = os.Symlink(l[0], l[1])
		}
	}
	return errs
}

// mountPoints lists what is mounted (empty before /proc is).
func mountPoints() (map[string]bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return map[string]bool{}, err
	}
	defer f.Close()
	return parseMountInfo(f), nil
}

func parseMountInfo(r interface{ Read([]byte) (int, error) }) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 4 {
			out[unescapeMount(f[4])] = true
		}
	}
	return out
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// WorkDiskLabel is the label of the work disk mounted on /root (the
// normal images' fstab says LABEL=banger-root).
const WorkDiskLabel = "banger-root"

// ext4Label reads an ext2/3/4 superblock's volume label; ok is false when
// the header is not one.
func ext4Label(head []byte) (string, bool) {
	const sb = 1024
	if len(head) < sb+0x88 {
		return "", false
	}
	if binary.LittleEndian.Uint16(head[sb+0x38:]) != 0xEF53 {
		return "", false
	}
	name := head[sb+0x78 : sb+0x88]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return string(name), true
}

// findByLabel finds the block device whose ext4 label is label.
func findByLabel(sysBlock, dev, label string) (string, error) {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		p := filepath.Join(dev, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		head := make([]byte, 2048)
		n, _ := f.ReadAt(head, 0)
		f.Close()
		if l, ok := ext4Label(head[:n]); ok && l == label {
			return p, nil
		}
	}
	return "", fmt.Errorf("no disk labelled %s", label)
}

// mountWorkDisk mounts the work disk on /root and gives a fresh one the
// image's trusted key, as banger-home does on the systemd images. No work
// disk is not an error: the VM still boots.
func mountWorkDisk(logf func(string, ...any)) {
	dev, err := findByLabel("/sys/class/block", "/dev", WorkDiskLabel)
	if err != nil {
		logf("work disk: %v; /root stays on the system disk", err)
		return
	}
	if err := os.MkdirAll("/root", 0o700); err != nil {
		logf("work disk: %v", err)
		return
	}
	if err := unix.Mount(dev, "/root", "ext4", 0, ""); err != nil {
		logf("work disk: mount %s on /root: %v", dev, err)
		return
	}
	logf("work disk: %s on /root", dev)
	if err := seedHome("/root", trustedKeysPath); err != nil {
		logf("work disk: seeding /root: %v", err)
	}
}

// seedHome gives a home without .ssh/authorized_keys the trusted keys (and
// makes it root's only, as sshd's StrictModes wants; banger-home does the
// same on the systemd images).
func seedHome(home, keys string) error {
	data, err := os.ReadFile(keys)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ak := filepath.Join(home, ".ssh", "authorized_keys")
	if _, err := os.Lstat(ak); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(home, 0o700); err != nil {
		return err
	}
	return os.WriteFile(ak, data, 0o600)
}
