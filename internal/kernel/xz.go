package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// The kernel's xz payload is made with `xz --check=crc32 --x86 --lzma2=...`:
// an x86 BCJ filter in front of LZMA2. The xz package in go.mod decodes only
// plain LZMA2 blocks, so this file reads the xz container itself, decodes the
// LZMA2 data of the first block with the lzma package, and undoes the BCJ
// filter over the whole output.

const (
	xzFilterX86   = 0x04
	xzFilterLZMA2 = 0x21
)

// xzReader yields LZMA2-decoded bytes; finish applies the BCJ decoding.
type xzReader struct {
	io.Reader
	bcj      bool
	bcjStart uint32
}

func (x *xzReader) finish(out []byte) []byte {
	if x.bcj {
		bcjX86Decode(out, x.bcjStart)
	}
	return out
}

func openXZ(data []byte) (io.Reader, error) {
	if len(data) < 12+8 || !bytes.HasPrefix(data, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}) {
		return nil, errors.New("not an xz stream")
	}
	if crc32.ChecksumIEEE(data[6:8]) != binary.LittleEndian.Uint32(data[8:12]) {
		return nil, errors.New("xz stream header checksum mismatch")
	}
	hdr := data[12:]
	if hdr[0] == 0 {
		return nil, errors.New("xz stream has no blocks")
	}
	size := (int(hdr[0]) + 1) * 4
	if size > len(hdr) {
		return nil, io.ErrUnexpectedEOF
	}
	if crc32.ChecksumIEEE(hdr[:size-4]) != binary.LittleEndian.Uint32(hdr[size-4:size]) {
		return nil, errors.New("xz block header checksum mismatch")
	}
	p := hdr[2 : size-4]
	flags := hdr[1]
	var err error
	if flags&0x40 != 0 { // compressed size present
		if _, p, err = uvarint(p); err != nil {
			return nil, err
		}
	}
	if flags&0x80 != 0 { // uncompressed size present
		if _, p, err = uvarint(p); err != nil {
			return nil, err
		}
	}
	x := &xzReader{}
	var dictCap int
	nfilters := int(flags&0x03) + 1
	for i := 0; i < nfilters; i++ {
		var id, psize uint64
		if id, p, err = uvarint(p); err != nil {
			return nil, err
		}
		if psize, p, err = uvarint(p); err != nil {
			return nil, err
		}
		if psize > uint64(len(p)) {
			return nil, io.ErrUnexpectedEOF
		}
		props := p[:psize]
		p = p[psize:]
		last := i == nfilters-1
		switch {
		case id == xzFilterX86 && !last:
			x.bcj = true
			if len(props) == 4 {
				x.bcjStart = binary.LittleEndian.Uint32(props)
			} else if len(props) != 0 {
				return nil, errors.New("xz x86 filter has bad properties")
			}
		case id == xzFilterLZMA2 && last:
			if len(props) != 1 || props[0] > 40 {
				return nil, errors.New("xz LZMA2 filter has bad properties")
			}
			dictCap = lzma2DictSize(props[0])
		default:
			return nil, fmt.Errorf("xz filter 0x%x is not supported (only x86 BCJ + LZMA2, as the kernel build uses)", id)
		}
	}
	if dictCap == 0 {
		return nil, errors.New("xz block has no LZMA2 filter")
	}
	if dictCap < lzma.MinDictCap {
		dictCap = lzma.MinDictCap
	}
	if dictCap > 1<<30 {
		return nil, fmt.Errorf("xz dictionary of %d bytes is implausible", dictCap)
	}
	r, err := lzma.Reader2Config{DictCap: dictCap}.NewReader2(bytes.NewReader(hdr[size:]))
	if err != nil {
		return nil, err
	}
	x.Reader = r
	return x, nil
}

func lzma2DictSize(p byte) int {
	if p == 40 {
		return 0xffffffff
	}
	return (2 | int(p&1)) << (p/2 + 11)
}

func uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 || n > 9 {
		return 0, nil, errors.New("xz block header has a bad number")
	}
	return v, b[n:], nil
}

// bcjX86Decode undoes the x86 branch converter in place (liblzma's
// simple/x86.c decoder, run over the whole buffer from position start).
func bcjX86Decode(buf []byte, start uint32) {
	maskToAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskToBitNumber := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	test86MSByte := func(b byte) bool { return b == 0 || b == 0xff }

	var prevMask uint32
	prevPos := start - 5
	if len(buf) < 5 {
		return
	}
	limit := len(buf) - 5
	for i := 0; i <= limit; {
		b := buf[i]
		if b != 0xe8 && b != 0xe9 {
			i++
			continue
		}
		pos := start + uint32(i)
		offset := pos - prevPos
		prevPos = pos
		if offset > 5 {
			prevMask = 0
		} else {
			for j := uint32(0); j < offset; j++ {
				prevMask &= 0x77
				prevMask <<= 1
			}
		}
		b = buf[i+4]
		if test86MSByte(b) && maskToAllowed[(prevMask>>1)&7] && (prevMask>>1) < 0x10 {
			src := uint32(b)<<24 | uint32(buf[i+3])<<16 | uint32(buf[i+2])<<8 | uint32(buf[i+1])
			var dest uint32
			for {
				dest = src - (pos + 5)
				if prevMask == 0 {
					break
				}
				n := maskToBitNumber[prevMask>>1]
				b = byte(dest >> (24 - n*8))
				if !test86MSByte(b) {
					break
				}
				src = dest ^ (1<<(32-n*8) - 1)
			}
			buf[i+4] = ^byte(((dest >> 24) & 1) - 1)
			buf[i+3] = byte(dest >> 16)
			buf[i+2] = byte(dest >> 8)
			buf[i+1] = byte(dest)
			i += 5
			prevMask = 0
		} else {
			i++
			prevMask |= 1
			if test86MSByte(b) {
				prevMask |= 0x10
			}
		}
	}
}
