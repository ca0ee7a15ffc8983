package consolelog

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTrimBoundsTheLogUnderAnOpenWriter writes like a hypervisor (one
// descriptor held open, no append mode) far past the cap: the data on disk
// stays bounded, the newest output is intact, offsets keep growing, and the
// rotated file holds what came just before.
func TestTrimBoundsTheLogUnderAnOpenWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	w, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const max = 256 << 10
	line := bytes.Repeat([]byte("x"), 1023)
	var written int64
	for i := range 4096 { // 4 MiB, 16x the cap
		l := append([]byte{byte('a' + i%26)}, line[1:]...)
		l = append(l, '\n')
		n, err := w.Write(l)
		if err != nil {
			t.Fatal(err)
		}
		written += int64(n)
		if i%64 == 0 {
			if err := Trim(path, max); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := Trim(path, max); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if st.Size() != written {
		t.Errorf("size %d, want %d: offsets must keep growing", st.Size(), written)
	}
	start, err := DataStart(f)
	if err != nil {
		t.Fatal(err)
	}
	if live := st.Size() - start; live > max || live < max/4 {
		t.Errorf("%d bytes of data kept, want between %d and %d", live, max/4, max)
	}
	var sys unix.Stat_t
	if err := unix.Stat(path, &sys); err != nil {
		t.Fatal(err)
	}
	if used := sys.Blocks * 512; used > 2*max {
		t.Errorf("the log takes %d bytes on disk, want at most %d", used, 2*max)
	}
	tail := make([]byte, 1024)
	if _, err := f.ReadAt(tail, st.Size()-1024); err != nil {
		t.Fatal(err)
	}
	if want := byte('a' + 4095%26); tail[0] != want || tail[1023] != '\n' {
		t.Errorf("newest line damaged: %q...", tail[:8])
	}
	rot, err := os.ReadFile(path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	if len(rot) == 0 || len(rot) > max || bytes.IndexByte(rot, 0) >= 0 {
		t.Errorf("rotated file: %d bytes, NUL at %d", len(rot), bytes.IndexByte(rot, 0))
	}
}

func TestTrimLeavesSmallAndMissingLogs(t *testing.T) {
	dir := t.TempDir()
	if err := Trim(filepath.Join(dir, "absent.log"), 1024); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "small.log")
	if err := os.WriteFile(p, []byte("boot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Trim(p, 1024); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "boot\n" {
		t.Errorf("small log changed: %q", b)
	}
	if _, err := os.Stat(p + ".1"); err == nil {
		t.Error("a small log was rotated")
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link.log")); err != nil {
		t.Fatal(err)
	}
	if err := Trim(filepath.Join(dir, "link.log"), 1); err == nil {
		t.Error("Trim followed a symlink")
	}
}
