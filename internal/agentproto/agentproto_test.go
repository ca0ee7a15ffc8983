package agentproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	big := bytes.Repeat([]byte{0xAB}, MaxPayload)
	frames := []struct {
		t Type
		p []byte
	}{
		{TypeStarted, Started{PID: 4242}.Encode()},
		{TypeStdout, []byte("hello\x00\xff")},
		{TypeStderr, big},
		{TypeStdinEOF, nil},
		{TypeExit, Exit{Code: 130, Signal: 2}.Encode()},
	}
	for _, f := range frames {
		if err := WriteFrame(&buf, f.t, f.p); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf)
	for i, f := range frames {
		typ, p, err := r.Next()
		if err != nil || typ != f.t || !bytes.Equal(p, f.p) {
			t.Fatalf("frame %d: type %d, %d bytes, err %v; want type %d, %d bytes", i, typ, len(p), err, f.t, len(f.p))
		}
	}
	if _, _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
}

func TestWriteRefusesOversizedPayload(t *testing.T) {
	err := WriteFrame(io.Discard, TypeStdout, make([]byte, MaxPayload+1))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("WriteFrame of MaxPayload+1 bytes: %v, want ErrTooLarge", err)
	}
}

// A header claiming more than MaxPayload is refused before anything is
// read or allocated: the peer is untrusted.
func TestReaderRefusesOversizedHeader(t *testing.T) {
	hdr := []byte{byte(TypeStdout), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], 1<<31)
	_, _, err := NewReader(bytes.NewReader(hdr)).Next()
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("header claiming 2 GiB: %v, want ErrTooLarge", err)
	}
}

func TestReaderCutFrame(t *testing.T) {
	var buf bytes.Buffer
	_ = WriteFrame(&buf, TypeStdout, []byte("abcdef"))
	for _, n := range []int{3, HeaderLen + 2} {
		_, _, err := NewReader(bytes.NewReader(buf.Bytes()[:n])).Next()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("stream cut at %d bytes: %v, want io.ErrUnexpectedEOF", n, err)
		}
	}
}

func TestDecodersCheckPayloads(t *testing.T) {
	if _, err := DecodeStarted([]byte{0, 0, 0, 0}); err == nil {
		t.Error("started with pid 0 accepted")
	}
	if _, err := DecodeStarted([]byte{1, 2}); err == nil {
		t.Error("short started frame accepted")
	}
	if _, err := DecodeExit([]byte{0, 99, 0}); err == nil {
		t.Error("exit with signal 99 accepted")
	}
	if _, err := DecodeExit([]byte{0, 0, 7}); err == nil {
		t.Error("exit with unknown flags accepted")
	}
	if e, err := DecodeExit(Exit{Code: 124, TimedOut: true}.Encode()); err != nil || e.Code != 124 || !e.TimedOut {
		t.Errorf("exit round trip: %+v, %v", e, err)
	}
	if _, err := DecodeResize([]byte{0, 0, 0, 80}); err == nil {
		t.Error("resize to 0 rows accepted")
	}
	if r, err := DecodeResize(Resize{Rows: 50, Cols: 132}.Encode()); err != nil || r != (Resize{50, 132}) {
		t.Errorf("resize round trip: %+v, %v", r, err)
	}
	for _, p := range [][]byte{nil, {0}, {65}, {2, 2}} {
		if _, err := DecodeSignal(p); err == nil {
			t.Errorf("signal payload %v accepted", p)
		}
	}
}

// FuzzReader feeds arbitrary bytes to the frame reader and the decoders:
// nothing may panic or return a payload over the limit.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteFrame(&buf, TypeExit, Exit{Code: 1}.Encode())
	f.Add(buf.Bytes())
	f.Add([]byte{16, 0, 0, 0, 4, 0, 0, 1, 0})
	f.Add([]byte{17, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		for {
			typ, p, err := r.Next()
			if err != nil {
				return
			}
			if len(p) > MaxPayload {
				t.Fatalf("payload of %d bytes", len(p))
			}
			switch typ {
			case TypeStarted:
				_, _ = DecodeStarted(p)
			case TypeExit:
				_, _ = DecodeExit(p)
			case TypeResize:
				_, _ = DecodeResize(p)
			case TypeSignal:
				_, _ = DecodeSignal(p)
			}
		}
	})
}
