package initramfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
)

// The kernel unpacks initramfs archives in the "newc" cpio format: a
// 110-byte ASCII header ("070701" and 13 eight-digit hex fields), the
// NUL-terminated name padded to 4 bytes, then the data padded to 4 bytes,
// ending with an entry named "TRAILER!!!". Writing it here (rather than
// through cpio(1)) lets the archive hold device nodes without root and
// keeps owners and times fixed, so builds are reproducible.

const (
	newcMagic = "070701"
	trailer   = "TRAILER!!!"
)

// File type bits as cpio stores them (the same as Linux st_mode).
const (
	TypeDir     = syscall.S_IFDIR
	TypeReg     = syscall.S_IFREG
	TypeSymlink = syscall.S_IFLNK
	TypeChar    = syscall.S_IFCHR
)

// Entry is one archive member.
type Entry struct {
	Name     string // without a leading slash, e.g. "bin/busybox"
	Mode     uint32 // type bits | permissions
	Data     []byte // file contents, or the symlink target
	RdevMaj  uint32 // device nodes only
	RdevMin  uint32
	Linkname string // symlink target (reading only; Data holds it too)
}

// IsDir, IsRegular and IsSymlink classify an entry.
func (e Entry) IsDir() bool     { return e.Mode&syscall.S_IFMT == TypeDir }
func (e Entry) IsRegular() bool { return e.Mode&syscall.S_IFMT == TypeReg }
func (e Entry) IsSymlink() bool { return e.Mode&syscall.S_IFMT == TypeSymlink }

// Writer writes a newc archive. Owners are root and mtimes zero.
type Writer struct {
	w   io.Writer
	ino uint32
	n   int64
	err error
}

// NewWriter starts an archive on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, ino: 1} }

func (cw *Writer) write(b []byte) {
	if cw.err != nil {
		return
	}
	n, err := cw.w.Write(b)
	cw.n += int64(n)
	cw.err = err
}

func (cw *Writer) pad() {
	if r := cw.n % 4; r != 0 {
		cw.write(make([]byte, 4-r))
	}
}

// Add writes one entry.
func (cw *Writer) Add(e Entry) error {
	name := strings.TrimPrefix(e.Name, "/")
	if name == "" || strings.Contains(name, "\x00") {
		return fmt.Errorf("cpio: bad entry name %q", e.Name)
	}
	nlink := 1
	if e.IsDir() {
		nlink = 2
	}
	ino := cw.ino
	cw.ino++
	if name == trailer {
		ino = 0
	}
	fields := []uint32{ino, e.Mode, 0, 0, uint32(nlink), 0, uint32(len(e.Data)), 0, 0, e.RdevMaj, e.RdevMin, uint32(len(name) + 1), 0}
	var hdr strings.Builder
	hdr.WriteString(newcMagic)
	for _, f := range fields {
		fmt.Fprintf(&hdr, "%08x", f)
	}
	cw.write([]byte(hdr.String()))
	cw.write(append([]byte(name), 0))
	cw.pad()
	cw.write(e.Data)
	cw.pad()
	return cw.err
}

// Close writes the trailer entry (it does not close the underlying writer).
func (cw *Writer) Close() error {
	return cw.Add(Entry{Name: trailer})
}

// Read parses a whole newc archive (uncompressed) and returns its entries.
func Read(r io.Reader) ([]Entry, error) {
	br := bufio.NewReader(r)
	var entries []Entry
	var off int64
	pad := func() error {
		if r := off % 4; r != 0 {
			if _, err := br.Discard(int(4 - r)); err != nil {
				return err
			}
			off += 4 - r
		}
		return nil
	}
	for {
		hdr := make([]byte, 110)
		if _, err := io.ReadFull(br, hdr); err != nil {
			return nil, fmt.Errorf("cpio: reading header at byte %d: %w", off, err)
		}
		off += 110
		if string(hdr[:6]) != newcMagic {
			return nil, fmt.Errorf("cpio: bad magic %q at byte %d (want newc 070701)", hdr[:6], off-110)
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				return nil, fmt.Errorf("cpio: bad header field at byte %d: %w", off-110, err)
			}
			f[i] = uint32(v)
		}
		namesize, filesize := f[11], f[6]
		if namesize == 0 || namesize > 4096 || filesize > 1<<30 {
			return nil, errors.New("cpio: implausible name or file size")
		}
		name := make([]byte, namesize)
		if _, err := io.ReadFull(br, name); err != nil {
			return nil, fmt.Errorf("cpio: reading name: %w", err)
		}
		off += int64(namesize)
		if err := pad(); err != nil {
			return nil, err
		}
		e := Entry{Name: strings.TrimRight(string(name), "\x00"), Mode: f[1], RdevMaj: f[9], RdevMin: f[10]}
		if e.Name == trailer {
			return entries, nil
		}
		e.Data = make([]byte, filesize)
		if _, err := io.ReadFull(br, e.Data); err != nil {
			return nil, fmt.Errorf("cpio: reading %s: %w", e.Name, err)
		}
		off += int64(filesize)
		if err := pad(); err != nil {
			return nil, err
		}
		if e.IsSymlink() {
			e.Linkname = string(e.Data)
		}
		entries = append(entries, e)
	}
}
