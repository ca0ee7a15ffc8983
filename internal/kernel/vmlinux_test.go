package kernel

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/binary"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"

	"github.com/banger-dev/banger/internal/sysexec"
)

// minimalELF builds an ELF64 x86-64 executable: header, a PT_LOAD covering
// a body of pseudo-random bytes rich in E8/E9 (so the x86 BCJ filter has
// branches to convert), and optionally a PT_NOTE with the Xen PVH note.
func minimalELF(t testing.TB, pvh bool, bodySize int) []byte {
	t.Helper()
	var note []byte
	if pvh {
		note = binary.LittleEndian.AppendUint32(note, 4) // namesz "Xen\0"
		note = binary.LittleEndian.AppendUint32(note, 4) // descsz
		note = binary.LittleEndian.AppendUint32(note, xenElfnotePhys32Entry)
		note = append(note, "Xen\x00"...)
		note = binary.LittleEndian.AppendUint32(note, 0x1000000)
	}
	const ehsize, phsize = 64, 56
	nph := 1
	if pvh {
		nph = 2
	}
	bodyOff := ehsize + nph*phsize
	body := make([]byte, bodySize)
	rng := rand.New(rand.NewSource(1))
	for i := range body {
		switch rng.Intn(8) {
		case 0:
			body[i] = 0xe8
		case 1:
			body[i] = 0x00
		case 2:
			body[i] = 0xff
		default:
			body[i] = byte(rng.Intn(256))
		}
	}
	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1,
		Entry: 0x1000000, Phoff: ehsize, Ehsize: ehsize, Phentsize: phsize, Phnum: uint16(nph),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = 1
	must(t, binary.Write(&b, binary.LittleEndian, hdr))
	load := elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Off: uint64(bodyOff),
		Vaddr: 0x1000000, Paddr: 0x1000000, Filesz: uint64(bodySize), Memsz: uint64(bodySize), Align: 0x1000}
	must(t, binary.Write(&b, binary.LittleEndian, load))
	if pvh {
		n := elf.Prog64{Type: uint32(elf.PT_NOTE), Off: uint64(bodyOff + bodySize), Filesz: uint64(len(note)), Align: 4}
		must(t, binary.Write(&b, binary.LittleEndian, n))
	}
	b.Write(body)
	b.Write(note)
	return b.Bytes()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fakeBzImage wraps a payload the way the x86 build does: setup sectors with
// the boot header pointing at the payload, the payload, then the 4-byte
// decompressed size, then padding.
func fakeBzImage(payload []byte, size int, withHeader bool) []byte {
	const setupSects = 3
	img := make([]byte, (setupSects+1)*512)
	// Setup code is not all zeros in real images; make the scan work for it.
	for i := range img {
		img[i] = byte(i * 7)
	}
	if withHeader {
		img[0x1f1] = setupSects
		copy(img[0x202:], "HdrS")
		binary.LittleEndian.PutUint16(img[0x206:], 0x20f)
		binary.LittleEndian.PutUint32(img[0x248:], 0x100)
		binary.LittleEndian.PutUint32(img[0x24c:], uint32(len(payload)+4))
	} else {
		copy(img[0x202:], "NoHd")
	}
	img = append(img, make([]byte, 0x100)...)
	img = append(img, payload...)
	img = binary.LittleEndian.AppendUint32(img, uint32(size))
	return append(img, make([]byte, 300)...)
}

func goGzip(t testing.TB, in []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(in)
	must(t, w.Close())
	return b.Bytes()
}

func goXZ(t testing.TB, in []byte) []byte {
	var b bytes.Buffer
	w, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&b)
	must(t, err)
	w.Write(in)
	must(t, w.Close())
	return b.Bytes()
}

func goZstd(t testing.TB, in []byte) []byte {
	enc, err := zstd.NewWriter(nil)
	must(t, err)
	return enc.EncodeAll(in, nil)
}

// goLZ4Legacy writes the legacy frame by hand (8 MiB blocks).
func goLZ4Legacy(t testing.TB, in []byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, lz4LegacyMagic)
	for len(in) > 0 {
		n := min(len(in), lz4LegacyBlock)
		dst := make([]byte, lz4.CompressBlockBound(n))
		var c lz4.Compressor
		m, err := c.CompressBlock(in[:n], dst)
		must(t, err)
		out = binary.LittleEndian.AppendUint32(out, uint32(m))
		out = append(out, dst[:m]...)
		in = in[n:]
	}
	return out
}

// cliCompress runs the compressor the kernel build itself uses, with the
// kernel's flags (scripts/Makefile.lib, scripts/xz_wrap.sh).
func cliCompress(t testing.TB, in []byte, argv ...string) []byte {
	t.Helper()
	if _, err := sysexec.LookPath(argv[0]); err != nil {
		t.Skipf("%s is not installed", argv[0])
	}
	res, err := sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{Argv: argv, Stdin: bytes.NewReader(in)})
	must(t, err)
	return res.Stdout
}

func TestExtractSyntheticPayloads(t *testing.T) {
	vmlinux := minimalELF(t, true, 1<<20)
	cases := []struct {
		name     string
		compress func(testing.TB, []byte) []byte
	}{
		{"gzip-go", goGzip},
		{"xz-go", goXZ},
		{"zstd-go", goZstd},
		{"lz4-legacy-go", goLZ4Legacy},
		{"gzip-cli", func(t testing.TB, b []byte) []byte { return cliCompress(t, b, "gzip", "-n", "-9", "-c") }},
		{"xz-bcj-cli", func(t testing.TB, b []byte) []byte {
			return cliCompress(t, b, "xz", "--check=crc32", "--x86", "--lzma2=preset=6,dict=4MiB", "-c")
		}},
		{"lz4-legacy-cli", func(t testing.TB, b []byte) []byte { return cliCompress(t, b, "lz4", "-l", "-9", "-c") }},
		{"zstd-cli", func(t testing.TB, b []byte) []byte { return cliCompress(t, b, "zstd", "-19", "-c") }},
		{"bzip2-cli", func(t testing.TB, b []byte) []byte { return cliCompress(t, b, "bzip2", "-9", "-c") }},
		{"lzma-cli", func(t testing.TB, b []byte) []byte { return cliCompress(t, b, "lzma", "-9", "-c") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			payload := c.compress(t, vmlinux)
			for _, withHeader := range []bool{true, false} {
				if c.name == "lzma-cli" && !withHeader {
					continue // lzma is only found through the boot header
				}
				got, err := ExtractVmlinux(fakeBzImage(payload, len(vmlinux), withHeader))
				if err != nil {
					t.Fatalf("header=%v: %v", withHeader, err)
				}
				if !bytes.Equal(got, vmlinux) {
					t.Fatalf("header=%v: extracted %d bytes differ from the %d-byte original", withHeader, len(got), len(vmlinux))
				}
				if !HasPVHNote(got) {
					t.Fatal("PVH note lost")
				}
			}
		})
	}
}

func TestExtractRejects(t *testing.T) {
	vmlinux := minimalELF(t, false, 4096)
	if _, err := ExtractVmlinux(vmlinux); err == nil || !strings.Contains(err.Error(), "already an uncompressed ELF") {
		t.Fatalf("ELF input: got %v", err)
	}
	if _, err := ExtractVmlinux([]byte("just some text, no kernel here")); err == nil || !strings.Contains(err.Error(), "no compressed kernel found") {
		t.Fatalf("text input: got %v", err)
	}
	// A compressed payload that is not an ELF.
	if _, err := ExtractVmlinux(fakeBzImage(goGzip(t, bytes.Repeat([]byte("x"), 5000)), 5000, true)); err == nil || !strings.Contains(err.Error(), "not an ELF") {
		t.Fatalf("non-ELF payload: got %v", err)
	}
	// A truncated payload gives an incomplete ELF, which must be rejected.
	big := minimalELF(t, true, 1<<20)
	p := goXZ(t, big)
	if _, err := ExtractVmlinux(fakeBzImage(p[:len(p)/2], len(big), true)); err == nil {
		t.Fatal("truncated payload was accepted")
	}
	// A 32-bit or non-x86 ELF is not a vmlinux for us.
	arm := minimalELF(t, false, 4096)
	binary.LittleEndian.PutUint16(arm[18:], uint16(elf.EM_AARCH64))
	if _, err := ExtractVmlinux(fakeBzImage(goGzip(t, arm), len(arm), true)); err == nil {
		t.Fatal("aarch64 ELF payload was accepted")
	}
}

func TestPVHNoteAndElfOK(t *testing.T) {
	dir := t.TempDir()
	with := filepath.Join(dir, "with")
	without := filepath.Join(dir, "without")
	must(t, os.WriteFile(with, minimalELF(t, true, 100), 0o644))
	must(t, os.WriteFile(without, minimalELF(t, false, 100), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "text"), []byte("hello"), 0o644))
	if ok, err := FileHasPVHNote(with); !ok || err != nil {
		t.Fatalf("with note: %v %v", ok, err)
	}
	if ok, err := FileHasPVHNote(without); ok || err != nil {
		t.Fatalf("without note: %v %v", ok, err)
	}
	if err := ElfOK(with); err != nil {
		t.Fatal(err)
	}
	if err := ElfOK(filepath.Join(dir, "text")); err == nil || !strings.Contains(err.Error(), "banger bundle build") {
		t.Fatalf("non-ELF: %v", err)
	}
	if err := ElfOK(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
	// Malformed note areas must not panic or match.
	for _, b := range [][]byte{nil, {1, 2, 3}, bytes.Repeat([]byte{0xff}, 40)} {
		if findNote(b, "Xen", xenElfnotePhys32Entry) {
			t.Fatalf("malformed note %x matched", b)
		}
	}
}

func TestValidPackageName(t *testing.T) {
	for _, ok := range []string{"linux-image-6.1.0-27-amd64", "linux-image-amd64", "linux-image-6.12.9+bpo-amd64"} {
		if err := ValidPackageName(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-oDebug::pkg=1", "linux-image-../../x", "bash", "linux-image-a b", "linux-image-AMD"} {
		if ValidPackageName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
