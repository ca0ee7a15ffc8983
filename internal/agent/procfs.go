package agent

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/banger-dev/banger/internal/agentproto"
)

// maxProcFileBytes bounds what we read from a /proc file: /proc/mounts on a
// busy guest is a few KiB; anything near this limit is not a real /proc.
const maxProcFileBytes = 1 << 20

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxProcFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxProcFileBytes {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, maxProcFileBytes)
	}
	return data, nil
}

func readTrimmed(path string) (string, error) {
	data, err := readLimited(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", fmt.Errorf("read %s: empty", path)
	}
	return s, nil
}

// readUptime parses /proc/uptime: "<uptime> <idle>" in seconds.
func readUptime(path string) (float64, error) {
	s, err := readTrimmed(path)
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(s)
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("parse %s: %q is not an uptime in seconds", path, fields[0])
	}
	return v, nil
}

// readLoadavg parses the first three fields of /proc/loadavg.
func readLoadavg(path string) (l1, l5, l15 float64, err error) {
	s, err := readTrimmed(path)
	if err != nil {
		return 0, 0, 0, err
	}
	fields := strings.Fields(s)
	if len(fields) < 3 {
		return 0, 0, 0, fmt.Errorf("parse %s: want at least 3 fields, got %q", path, s)
	}
	var loads [3]float64
	for i := range loads {
		loads[i], err = strconv.ParseFloat(fields[i], 64)
		if err != nil || loads[i] < 0 {
			return 0, 0, 0, fmt.Errorf("parse %s: field %d %q is not a load average", path, i+1, fields[i])
		}
	}
	return loads[0], loads[1], loads[2], nil
}

// readMeminfo returns MemTotal and MemAvailable in bytes. Kernels before 3.14
// lack MemAvailable; then MemFree+Buffers+Cached is the usual estimate.
func readMeminfo(path string) (total, avail int64, err error) {
	data, err := readLimited(path)
	if err != nil {
		return 0, 0, err
	}
	kb := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || v < 0 || v > (1<<53)/1024 {
			continue
		}
		kb[key] = v
	}
	t, ok := kb["MemTotal"]
	if !ok {
		return 0, 0, fmt.Errorf("parse %s: no MemTotal line", path)
	}
	a, ok := kb["MemAvailable"]
	if !ok {
		a = kb["MemFree"] + kb["Buffers"] + kb["Cached"]
	}
	return t * 1024, a * 1024, nil
}

// hasMountAt reports whether a /proc/mounts table has an entry whose mount
// point is dir. The kernel escapes space, tab, newline and backslash in
// paths as octal (\040 ...).
func hasMountAt(mounts []byte, dir string) bool {
	want := filepath.Clean(dir)
	for _, line := range strings.Split(string(mounts), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		if filepath.Clean(unescapeMountPath(fields[1])) == want {
			return true
		}
	}
	return false
}

func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// diskUsage returns the size and used bytes of the filesystem holding dir,
// as df computes them (used = total - free).
func diskUsage(dir string) (total, used int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	bsize := st.Frsize
	if bsize == 0 {
		bsize = st.Bsize
	}
	total = int64(st.Blocks) * bsize
	used = int64(st.Blocks-st.Bfree) * bsize
	return total, used, nil
}

// parseListeners reads the listening sockets (state 0A) of /proc/net/tcp or
// tcp6. Malformed lines are skipped, duplicates dropped.
func parseListeners(data []byte) []agentproto.Listener {
	var out []agentproto.Listener
	seen := map[agentproto.Listener]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 4 || f[3] != "0A" {
			continue
		}
		hexAddr, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || port == 0 {
			continue
		}
		raw, err := hex.DecodeString(hexAddr)
		if err != nil || (len(raw) != 4 && len(raw) != 16) {
			continue
		}
		// The kernel prints each 32-bit word in host (little-endian) order.
		for w := 0; w < len(raw); w += 4 {
			raw[w], raw[w+1], raw[w+2], raw[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
		}
		addr, _ := netip.AddrFromSlice(raw)
		l := agentproto.Listener{Addr: addr.Unmap().String(), Port: int(port)}
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}
