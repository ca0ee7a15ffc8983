// Package kernel turns a distribution kernel (a compressed bzImage) into the
// uncompressed ELF vmlinux that Firecracker boots, checks kernel images, and
// fetches Debian kernel packages.
package kernel

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz/lzma"
)

// maxVmlinux bounds how much a candidate payload may decompress to, so a
// corrupt or hostile image cannot exhaust memory.
const maxVmlinux = 512 << 20

// maxCandidates bounds how many magic-number hits per format are tried.
const maxCandidates = 64

// format is one compressor the Linux build can use for the bzImage payload.
type format struct {
	name  string
	magic []byte
	open  func(data []byte) (io.Reader, error)
}

var formats = []format{
	{"gzip", []byte{0x1f, 0x8b, 0x08}, openGzip},
	{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, openXZ},
	{"lz4", []byte{0x02, 0x21, 0x4c, 0x18}, openLZ4Legacy},
	{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd}, openZstd},
	{"bzip2", []byte("BZh"), openBzip2},
}

// lzmaFormat is only tried at the offset the bzImage header names: its
// "magic" (the properties byte 0x5d) is far too common to scan for.
var lzmaFormat = format{"lzma", []byte{0x5d, 0x00, 0x00}, openLZMA}

// ExtractVmlinux finds the compressed kernel inside a bzImage and returns the
// decompressed ELF vmlinux. It tries the payload the boot header points at
// first, then every known compressor magic in file order, and accepts the
// first result that is a complete ELF64 x86-64 executable.
func ExtractVmlinux(bz []byte) ([]byte, error) {
	if isELF(bz) {
		return nil, errors.New("the kernel image is already an uncompressed ELF vmlinux; use it as is")
	}
	type candidate struct {
		off int
		f   format
	}
	var cands []candidate
	if off, ok := headerPayloadOffset(bz); ok {
		for _, f := range append(append([]format{}, formats...), lzmaFormat) {
			if bytes.HasPrefix(bz[off:], f.magic) {
				cands = append(cands, candidate{off, f})
			}
		}
	}
	for _, f := range formats {
		n := 0
		for from := 0; n < maxCandidates; n++ {
			i := bytes.Index(bz[from:], f.magic)
			if i < 0 {
				break
			}
			cands = append(cands, candidate{from + i, f})
			from += i + 1
		}
	}
	var tried []string
	for _, c := range cands {
		out, err := tryDecompress(bz[c.off:], c.f)
		if err == nil {
			return out, nil
		}
		tried = append(tried, fmt.Sprintf("%s at offset %d: %v", c.f.name, c.off, err))
	}
	if len(tried) == 0 {
		return nil, errors.New("no compressed kernel found: the file is not a bzImage with a gzip, xz, lz4, zstd, bzip2 or lzma payload (pass the distribution's vmlinuz)")
	}
	return nil, fmt.Errorf("no payload decompressed to an ELF64 x86-64 vmlinux (tried %d candidates; first: %s)", len(tried), tried[0])
}

// headerPayloadOffset reads the x86 boot protocol header (2.08+), which
// records where the compressed payload starts.
func headerPayloadOffset(bz []byte) (int, bool) {
	if len(bz) < 0x250 || string(bz[0x202:0x206]) != "HdrS" || binary.LittleEndian.Uint16(bz[0x206:]) < 0x208 {
		return 0, false
	}
	setupSects := int(bz[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	off := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(bz[0x248:]))
	if off <= 0 || off >= len(bz) {
		return 0, false
	}
	return off, true
}

// tryDecompress decompresses one candidate, rejecting it early when the
// first bytes are not an ELF header.
func tryDecompress(data []byte, f format) (out []byte, err error) {
	// Decoders for corrupt input may panic deep inside third-party code;
	// a bad candidate must not take the process down.
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("decoder failed: %v", r)
		}
	}()
	r, err := f.open(data)
	if err != nil {
		return nil, err
	}
	head := make([]byte, 64)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, fmt.Errorf("decompressing: %w", err)
	}
	if !isELF(head) {
		return nil, errors.New("decompressed data is not an ELF file")
	}
	var buf bytes.Buffer
	buf.Write(head)
	// Trailing data after the compressed stream (the kernel appends the
	// decompressed size) makes some decoders fail at the end; the output
	// is judged by whether it is a complete ELF, not by the decoder's error.
	_, copyErr := io.Copy(&buf, io.LimitReader(r, maxVmlinux))
	out = buf.Bytes()
	if f.name == "xz" {
		// The xz reader returns filtered-but-not-yet-BCJ-decoded bytes.
		out = r.(*xzReader).finish(out)
	}
	if err := checkVmlinux(out); err != nil {
		if copyErr != nil {
			return nil, fmt.Errorf("decompressing: %w", copyErr)
		}
		return nil, err
	}
	return out, nil
}

func isELF(b []byte) bool {
	return len(b) >= 20 && string(b[:4]) == elf.ELFMAG &&
		elf.Class(b[elf.EI_CLASS]) == elf.ELFCLASS64 &&
		elf.Data(b[elf.EI_DATA]) == elf.ELFDATA2LSB &&
		elf.Machine(binary.LittleEndian.Uint16(b[18:])) == elf.EM_X86_64
}

// checkVmlinux reports whether b is a whole ELF64 x86-64 executable: every
// segment's file bytes must be present.
func checkVmlinux(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not an ELF file: %w", err)
	}
	defer f.Close()
	if err := checkELFHeader(f); err != nil {
		return err
	}
	for _, p := range f.Progs {
		if p.Off+p.Filesz > uint64(len(b)) {
			return fmt.Errorf("ELF is truncated: a segment ends at byte %d of %d", p.Off+p.Filesz, len(b))
		}
	}
	return nil
}

func checkELFHeader(f *elf.File) error {
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("ELF is %v %v, want ELFCLASS64 x86-64", f.Class, f.Machine)
	}
	if f.Type != elf.ET_EXEC {
		return fmt.Errorf("ELF type is %v, want an executable (ET_EXEC) kernel", f.Type)
	}
	if len(f.Progs) == 0 {
		return errors.New("ELF has no program headers")
	}
	return nil
}

// PVH boot is announced by an ELF note of this type from owner "Xen"; QEMU
// needs it to boot an uncompressed vmlinux, Firecracker uses it when present.
const xenElfnotePhys32Entry = 18

// HasPVHNote reports whether the ELF vmlinux carries the PVH entry note.
func HasPVHNote(vmlinux []byte) bool {
	ok, _ := hasPVHNote(bytes.NewReader(vmlinux))
	return ok
}

// FileHasPVHNote is HasPVHNote for a file, reading only the note segments.
func FileHasPVHNote(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return hasPVHNote(f)
}

func hasPVHNote(r io.ReaderAt) (bool, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return false, fmt.Errorf("not an ELF file: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		notes, err := io.ReadAll(io.LimitReader(p.Open(), 1<<20))
		if err != nil {
			continue
		}
		if findNote(notes, "Xen", xenElfnotePhys32Entry) {
			return true, nil
		}
	}
	return false, nil
}

// findNote walks an ELF note area: namesz, descsz, type, name, desc, each
// name and desc padded to 4 bytes.
func findNote(b []byte, owner string, typ uint32) bool {
	for len(b) >= 12 {
		namesz := int(binary.LittleEndian.Uint32(b[0:]))
		descsz := int(binary.LittleEndian.Uint32(b[4:]))
		t := binary.LittleEndian.Uint32(b[8:])
		b = b[12:]
		nameEnd := align4(namesz)
		if namesz < 0 || descsz < 0 || nameEnd > len(b) {
			return false
		}
		name := string(bytes.TrimRight(b[:namesz], "\x00"))
		if name == owner && t == typ {
			return true
		}
		next := nameEnd + align4(descsz)
		if next > len(b) || next < nameEnd {
			return false
		}
		b = b[next:]
	}
	return false
}

func align4(n int) int { return (n + 3) &^ 3 }

// ElfOK checks that path is an uncompressed ELF64 x86-64 kernel executable.
func ElfOK(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		var pe *os.PathError
		if !errors.As(err, &pe) {
			return fmt.Errorf("kernel %s is not an ELF vmlinux (%v): Firecracker boots only an uncompressed vmlinux; run `banger bundle build` to extract one from the Debian kernel", path, err)
		}
		return fmt.Errorf("kernel %s: %w", path, err)
	}
	defer f.Close()
	if err := checkELFHeader(f); err != nil {
		return fmt.Errorf("kernel %s: %w", path, err)
	}
	return nil
}

// BzImageVersion returns the version string a bzImage embeds in its boot
// header (e.g. "6.1.0-27-amd64 (debian-kernel@...) #1 SMP ...").
func BzImageVersion(bz []byte) (string, error) {
	if len(bz) < 0x210 || string(bz[0x202:0x206]) != "HdrS" {
		return "", errors.New("not a bzImage (no HdrS boot header)")
	}
	off := int(binary.LittleEndian.Uint16(bz[0x20e:])) + 0x200
	if off >= len(bz) {
		return "", errors.New("bzImage version pointer is out of range")
	}
	end := bytes.IndexByte(bz[off:], 0)
	if end < 0 {
		end = min(len(bz)-off, 256)
	}
	return string(bz[off : off+end]), nil
}

func openGzip(data []byte) (io.Reader, error) {
	z, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	z.Multistream(false) // what follows the member is not gzip
	return z, nil
}

func openBzip2(data []byte) (io.Reader, error) {
	return bzip2.NewReader(bytes.NewReader(data)), nil
}

func openZstd(data []byte) (io.Reader, error) {
	d, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(maxVmlinux), zstd.WithDecoderMaxWindow(1<<30))
	if err != nil {
		return nil, err
	}
	return d.IOReadCloser(), nil
}

// openLZMA reads the "lzma alone" format: 1 properties byte, 4-byte
// dictionary size, 8-byte uncompressed size (the kernel writes -1).
func openLZMA(data []byte) (io.Reader, error) {
	if len(data) < 13 {
		return nil, io.ErrUnexpectedEOF
	}
	if dict := binary.LittleEndian.Uint32(data[1:]); dict > 256<<20 {
		return nil, fmt.Errorf("lzma dictionary of %d bytes is implausible", dict)
	}
	return lzma.NewReader(bufio.NewReader(bytes.NewReader(data)))
}
