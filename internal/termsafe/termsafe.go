// Package termsafe makes untrusted bytes (a guest's console, an agent's
// reply) safe to print on a terminal: escape sequences (colours, cursor
// moves, window-title and clipboard OSC strings, device-control strings) and
// control characters are dropped, so a guest cannot rewrite the screen,
// retitle the window, fake a prompt or answer back through the terminal.
// Newlines and tabs stay; "\r\n" becomes "\n"; invalid UTF-8 becomes U+FFFD.
package termsafe

import (
	"io"
	"unicode/utf8"
)

type state int

const (
	normal state = iota
	esc          // after ESC
	csi          // ESC [ ... final byte 0x40-0x7e
	str          // OSC, DCS, SOS, PM, APC: until BEL or ST (ESC \)
	strEsc       // ESC inside a string: ST ends it
	cr           // after a lone CR: dropped unless LF follows
)

// Writer filters what is written through it; it keeps state across writes,
// so a sequence split between two writes (as `vm logs -f` reads) is still
// removed. It is not safe for concurrent use.
type Writer struct {
	w       io.Writer
	st      state
	pending []byte // an incomplete UTF-8 sequence from the last write
}

// NewWriter returns a Writer that writes the safe form of its input to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// String returns the safe form of s.
func String(s string) string {
	var b bytesBuffer
	w := NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Flush()
	return string(b)
}

type bytesBuffer []byte

func (b *bytesBuffer) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// Write filters p. It reports len(p) on success: every input byte was
// consumed, whether printed or dropped.
func (t *Writer) Write(p []byte) (int, error) {
	in := p
	if len(t.pending) > 0 {
		in = append(t.pending, p...)
		t.pending = nil
	}
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		c := in[i]
		switch t.st {
		case esc:
			switch c {
			case '[':
				t.st = csi
			case ']', 'P', 'X', '^', '_':
				t.st = str
			default:
				t.st = normal // two-byte sequence (ESC 7, ESC c, ...): dropped
			}
			i++
			continue
		case csi:
			if c >= 0x40 && c <= 0x7e {
				t.st = normal
			}
			i++
			continue
		case str:
			switch c {
			case 0x07:
				t.st = normal
			case 0x1b:
				t.st = strEsc
			}
			i++
			continue
		case strEsc:
			if c == '\\' {
				t.st = normal
			} else {
				t.st = str
			}
			i++
			continue
		case cr:
			t.st = normal
			if c == '\n' {
				out = append(out, '\n')
				i++
				continue
			}
		}
		switch {
		case c == 0x1b:
			t.st = esc
			i++
		case c == '\r':
			t.st = cr
			i++
		case c == '\n' || c == '\t':
			out = append(out, c)
			i++
		case c < 0x20 || c == 0x7f:
			i++
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			if !utf8.FullRune(in[i:]) {
				t.pending = append([]byte(nil), in[i:]...)
				i = len(in)
				continue
			}
			r, n := utf8.DecodeRune(in[i:])
			switch {
			case r == utf8.RuneError:
				out = utf8.AppendRune(out, utf8.RuneError)
			case r >= 0x80 && r <= 0x9f: // C1 controls, e.g. CSI as U+009B
			default:
				out = append(out, in[i:i+n]...)
			}
			i += n
		}
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes a trailing incomplete UTF-8 sequence as U+FFFD.
func (t *Writer) Flush() error {
	if len(t.pending) == 0 {
		return nil
	}
	t.pending = nil
	_, err := t.w.Write([]byte(string(utf8.RuneError)))
	return err
}
