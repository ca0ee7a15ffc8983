// Package hostinfo reads the host's capacity: CPUs, memory, filesystem space
// and the blocks a file really occupies. Shared by the CLI and the daemon.
package hostinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// CPUs is the number of CPUs this process may use.
func CPUs() int { return runtime.NumCPU() }

// Memory is the host's RAM as reported by /proc/meminfo, in bytes.
type Memory struct {
	TotalBytes     int64
	AvailableBytes int64
}

// ReadMemory parses /proc/meminfo.
func ReadMemory() (Memory, error) { return ReadMemoryFrom("/proc/meminfo") }

// ReadMemoryFrom parses a meminfo file at path (doctor reads one under a
// test root).
func ReadMemoryFrom(path string) (Memory, error) {
	f, err := os.Open(path)
	if err != nil {
		return Memory{}, fmt.Errorf("read host memory: %w", err)
	}
	defer f.Close()
	var m Memory
	var haveTotal, haveAvail bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "MemTotal:":
			m.TotalBytes, haveTotal = kb*1024, true
		case "MemAvailable:":
			m.AvailableBytes, haveAvail = kb*1024, true
		}
	}
	if err := sc.Err(); err != nil {
		return Memory{}, fmt.Errorf("read %s: %w", path, err)
	}
	if !haveTotal || !haveAvail {
		return Memory{}, fmt.Errorf("%s lacks MemTotal or MemAvailable (kernel older than 3.14?)", path)
	}
	return m, nil
}

// FS is the size of the filesystem holding a path, in bytes.
type FS struct {
	TotalBytes int64
	FreeBytes  int64 // available to unprivileged users
}

// StatFS reports the filesystem holding path.
func StatFS(path string) (FS, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return FS{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	return FS{
		TotalBytes: int64(st.Blocks) * int64(st.Bsize),
		FreeBytes:  int64(st.Bavail) * int64(st.Bsize),
	}, nil
}

// AllocatedBytes is what a file really occupies on disk (st_blocks * 512),
// which for sparse files and reflink clones is far less than their size.
// A missing file occupies nothing.
func AllocatedBytes(path string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if os.IsNotExist(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Blocks * 512, nil
}

// ProcessAlive reports whether pid runs and is not a zombie (a process that
// exited but was not yet reaped still has its /proc entry).
func ProcessAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state field follows the parenthesised command name, which may
	// itself hold ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}
