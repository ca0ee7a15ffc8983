package kernel_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/kernel"
	"github.com/banger-dev/banger/internal/kernel/kerneltest"
	"github.com/banger-dev/banger/internal/sysexec"
)

// TestExtractDebianKernel extracts the vmlinux from the real Debian kernel
// package and cross-checks it against xz(1) decompressing the same payload,
// which proves the container parsing and the x86 BCJ decoding byte for byte.
func TestExtractDebianKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the real kernel")
	}
	u := kerneltest.Unpacked(t)
	bz, err := os.ReadFile(u.Vmlinuz)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := kernel.BzImageVersion(bz)
	if err != nil || !strings.HasPrefix(ver, u.Version) {
		t.Fatalf("BzImageVersion = %q, %v; want prefix %q", ver, err, u.Version)
	}
	vmlinux, err := kernel.ExtractVmlinux(bz)
	if err != nil {
		t.Fatal(err)
	}
	if !kernel.HasPVHNote(vmlinux) {
		t.Fatal("Debian's vmlinux should carry the PVH note")
	}
	path := filepath.Join(t.TempDir(), "vmlinux")
	if err := os.WriteFile(path, vmlinux, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := kernel.ElfOK(path); err != nil {
		t.Fatal(err)
	}
	if err := kernel.ElfOK(u.Vmlinuz); err == nil {
		t.Fatal("ElfOK accepted a compressed bzImage")
	}
	t.Logf("%s: bzImage %d bytes -> vmlinux %d bytes", u.Version, len(bz), len(vmlinux))

	// Cross-check with xz(1) when the payload is xz (Debian 12's choice).
	xzMagic := []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	off := bytes.Index(bz, xzMagic)
	if off < 0 {
		t.Logf("payload is not xz; skipping the xz(1) cross-check")
		return
	}
	if _, err := sysexec.LookPath("xz"); err != nil {
		t.Logf("xz(1) missing; skipping the cross-check")
		return
	}
	res, err := sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{
		Argv: []string{"xz", "-dc", "--single-stream"}, Stdin: bytes.NewReader(bz[off:])})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Stdout, vmlinux) {
		t.Fatalf("vmlinux (%d bytes) differs from xz -dc (%d bytes)", len(vmlinux), len(res.Stdout))
	}
}

func BenchmarkExtractDebianKernel(b *testing.B) {
	u := kerneltest.Unpacked(b)
	bz, err := os.ReadFile(u.Vmlinuz)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(bz)))
	for b.Loop() {
		if _, err := kernel.ExtractVmlinux(bz); err != nil {
			b.Fatal(err)
		}
	}
}
