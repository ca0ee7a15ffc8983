package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"

	"github.com/pierrec/lz4/v4"
)

// The kernel's lz4 payload uses the legacy lz4 frame (`lz4 -l`): a 4-byte
// magic, then blocks of [4-byte little-endian compressed size][data], each
// decompressing to at most 8 MiB, followed by the 4-byte size the kernel
// build appends. The frame has no end marker, so decoding stops at the first
// size that cannot be a block, as the kernel's own unlz4 does.

const lz4LegacyMagic = 0x184c2102
const lz4LegacyBlock = 8 << 20

type lz4LegacyReader struct {
	src []byte
	out bytes.Buffer
	dst []byte
	err error
}

func openLZ4Legacy(data []byte) (io.Reader, error) {
	if len(data) < 4 || binary.LittleEndian.Uint32(data) != lz4LegacyMagic {
		return nil, errors.New("not a legacy lz4 frame")
	}
	return &lz4LegacyReader{src: data[4:], dst: make([]byte, lz4LegacyBlock)}, nil
}

func (r *lz4LegacyReader) Read(p []byte) (int, error) {
	for r.out.Len() == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.next()
	}
	return r.out.Read(p)
}

// next decodes one block into r.out or sets r.err.
func (r *lz4LegacyReader) next() {
	if len(r.src) < 4 {
		r.err = io.EOF
		return
	}
	size := binary.LittleEndian.Uint32(r.src)
	if size == lz4LegacyMagic { // concatenated frames
		r.src = r.src[4:]
		return
	}
	if size == 0 || int64(size) > int64(lz4.CompressBlockBound(lz4LegacyBlock)) || int64(size) > int64(len(r.src)-4) {
		r.err = io.EOF // trailing data: the appended size, padding
		return
	}
	n, err := lz4.UncompressBlock(r.src[4:4+size], r.dst)
	if err != nil {
		r.err = err
		return
	}
	r.src = r.src[4+size:]
	r.out.Write(r.dst[:n])
}
