package hostinfo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadMemory(t *testing.T) {
	m, err := ReadMemory()
	if err != nil {
		t.Fatal(err)
	}
	if m.TotalBytes <= 0 || m.AvailableBytes <= 0 || m.AvailableBytes > m.TotalBytes {
		t.Fatalf("implausible memory %+v", m)
	}
}

func TestReadMemoryFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	os.WriteFile(p, []byte("MemTotal:       2048 kB\nMemFree: 10 kB\nMemAvailable:   1024 kB\n"), 0o600)
	m, err := ReadMemoryFrom(p)
	if err != nil {
		t.Fatal(err)
	}
	if m.TotalBytes != 2048*1024 || m.AvailableBytes != 1024*1024 {
		t.Fatalf("got %+v", m)
	}
	os.WriteFile(p, []byte("MemTotal: 2048 kB\n"), 0o600)
	if _, err := ReadMemoryFrom(p); err == nil {
		t.Fatal("missing MemAvailable accepted")
	}
}

func TestStatFS(t *testing.T) {
	fs, err := StatFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if fs.TotalBytes <= 0 || fs.FreeBytes < 0 || fs.FreeBytes > fs.TotalBytes {
		t.Fatalf("implausible fs %+v", fs)
	}
	if _, err := StatFS("/nonexistent/banger"); err == nil {
		t.Fatal("statfs of a missing path succeeded")
	}
}

func TestAllocatedBytesSparse(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.WriteAt(make([]byte, 1<<20), 0)
	f.Close()
	n, err := AllocatedBytes(p)
	if err != nil {
		t.Fatal(err)
	}
	// 1 MiB written into a 1 GiB sparse file: allocation ~1 MiB, far below size.
	if n < 1<<20 || n > 64<<20 {
		t.Fatalf("allocated %d bytes, want about 1 MiB", n)
	}
	if n, err := AllocatedBytes(p + ".missing"); err != nil || n != 0 {
		t.Fatalf("missing file: %d, %v", n, err)
	}
	if CPUs() < 1 {
		t.Fatal("CPUs < 1")
	}
}
