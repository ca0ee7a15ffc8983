// Package kerneltest gives tests a real Debian kernel package (vmlinuz and
// modules tree with modules.dep), fetched once with apt into a cache shared
// by every test package and every run.
package kerneltest

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/kernel"
	"github.com/banger-dev/banger/internal/sysexec"
)

// CacheDir is $BANGER_TEST_CACHE, else $XDG_CACHE_HOME/banger-test, else
// ~/.cache/banger-test.
func CacheDir(t testing.TB) string {
	if d := envknob.Cache.Value(); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("no cache dir: set BANGER_TEST_CACHE (%v)", err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "banger-test")
}

// skipOrFail skips, unless BANGER_TEST_REQUIRE_KERNEL=1 (CI) makes a missing
// kernel package a failure.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if envknob.RequireKernel.On() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format+" (set BANGER_TEST_REQUIRE_KERNEL=1 to make this a failure)", args...)
}

var (
	mu      sync.Mutex
	pkgName string
)

// PackageName resolves linux-image-amd64 to its versioned package.
func PackageName(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if pkgName != "" {
		return pkgName
	}
	for _, p := range []string{"apt-cache", "apt-get", "dpkg-deb"} {
		if _, err := sysexec.LookPath(p); err != nil {
			skipOrFail(t, "needs apt to fetch a Debian kernel: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name, err := kernel.ResolvePackage(ctx, sysexec.Exec{}, kernel.DefaultMetaPackage)
	if err != nil {
		skipOrFail(t, "cannot resolve the Debian kernel package: %v", err)
	}
	pkgName = name
	return name
}

// Deb returns the path of the cached kernel .deb, downloading it if needed.
func Deb(t testing.TB) string {
	t.Helper()
	name := PackageName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	deb, err := kernel.DownloadPackage(ctx, sysexec.Exec{}, name, CacheDir(t))
	if err != nil {
		skipOrFail(t, "cannot download the Debian kernel package: %v", err)
	}
	return deb
}

// Unpacked returns the kernel package extracted (with depmod run) into the
// cache. Extraction happens in a temporary directory renamed into place, so
// concurrent test packages never see a half-extracted tree.
func Unpacked(t testing.TB) *kernel.Unpacked {
	t.Helper()
	deb := Deb(t)
	dir := filepath.Join(CacheDir(t), "unpacked-"+filepath.Base(deb))
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		u, err := kernel.FindUnpacked(dir)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tmp, err := os.MkdirTemp(CacheDir(t), ".unpack-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	ctx := context.Background()
	u, err := kernel.UnpackPackage(ctx, sysexec.Exec{}, deb, tmp)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Dir(filepath.Dir(filepath.Dir(u.ModulesDir))) // <base>/lib/modules/<ver>
	if err := kernel.Depmod(ctx, sysexec.Exec{}, base, u.Version); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another test package finished first; use its copy.
		if _, statErr := os.Stat(filepath.Join(dir, ".complete")); statErr != nil {
			t.Fatalf("installing the unpacked kernel into the cache: %v", err)
		}
	}
	u, err = kernel.FindUnpacked(dir)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// MinimalELF returns a tiny ELF64 x86-64 executable (one PT_LOAD segment)
// that passes kernel.ElfOK; with pvh it also carries the Xen PVH entry note,
// so kernel.HasPVHNote accepts it.
func MinimalELF(pvh bool) []byte {
	const ehsize, phsize = 64, 56
	var note []byte
	if pvh {
		note = binary.LittleEndian.AppendUint32(note, 4) // namesz: "Xen\0"
		note = binary.LittleEndian.AppendUint32(note, 4) // descsz
		note = binary.LittleEndian.AppendUint32(note, 18)
		note = append(note, "Xen\x00"...)
		note = binary.LittleEndian.AppendUint32(note, 0x1000000)
	}
	nph := 1
	if pvh {
		nph = 2
	}
	body := bytes.Repeat([]byte{0x90}, 256) // nops
	bodyOff := uint64(ehsize + nph*phsize)
	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1,
		Entry: 0x1000000, Phoff: ehsize, Ehsize: ehsize, Phentsize: phsize, Phnum: uint16(nph),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = 1
	binary.Write(&b, binary.LittleEndian, hdr)
	binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X),
		Off: bodyOff, Vaddr: 0x1000000, Paddr: 0x1000000, Filesz: uint64(len(body)), Memsz: uint64(len(body)), Align: 0x1000})
	if pvh {
		binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_NOTE),
			Off: bodyOff + uint64(len(body)), Filesz: uint64(len(note)), Align: 4})
	}
	b.Write(body)
	b.Write(note)
	return b.Bytes()
}
