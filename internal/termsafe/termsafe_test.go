package termsafe

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"plain text\n":                                    "plain text\n",
		"boot\r\nok\r\n":                                  "boot\nok\n",
		"\x1b[31mred\x1b[0m":                              "red",
		"\x1b]0;pwned title\x07after":                     "after",
		"\x1b]52;c;Y2xpcGJvYXJk\x1b\\after":               "after", // clipboard write
		"\x1bPq#0;2;0;0;0\x1b\\x":                         "x",     // DCS (sixel)
		"\x1b[2J\x1b[Hfake prompt$ ":                      "fake prompt$ ",
		"progress 10%\rprogress 99%\n":                    "progress 10%progress 99%\n",
		"bell\x07 nul\x00 bs\x08 del\x7f":                 "bell nul bs del",
		"tab\tkept":                                       "tab\tkept",
		"héllo ✓ 世界":                                      "héllo ✓ 世界",
		"c1 \u009b31m csi":                                "c1 31m csi",
		"bad \xff\xfe utf8":                               "bad \uFFFD\uFFFD utf8",
		"\x1b7saved\x1b8":                                 "saved",
		"\x1b[?1049h\x1b[?25lhidden cursor, alt screen\n": "hidden cursor, alt screen\n",
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSplitWrites feeds a hostile stream one byte at a time (as `logs -f`
// may split it anywhere): the result equals the one-shot filter.
func TestSplitWrites(t *testing.T) {
	in := "a\x1b]0;title\x1b\\b\x1b[1;31mc\r\nd 世界 \x1b"
	var b bytes.Buffer
	w := NewWriter(&b)
	for i := range len(in) {
		if n, err := w.Write([]byte{in[i]}); n != 1 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	_ = w.Flush()
	if got, want := b.String(), String(in); got != want || got != "abc\nd 世界 " {
		t.Errorf("split = %q, whole = %q", got, want)
	}
}

func FuzzString(f *testing.F) {
	f.Add("\x1b[31mred\x1b]0;t\x07\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		out := String(s)
		if strings.ContainsAny(out, "\x1b\r\x00\x07\x08\x7f") || !utf8.ValidString(out) {
			t.Fatalf("unsafe output %q from %q", out, s)
		}
		for _, r := range out {
			if r < 0x20 && r != '\n' && r != '\t' || r >= 0x80 && r <= 0x9f {
				t.Fatalf("control %U in output of %q", r, s)
			}
		}
		if len(out) > 3*len(s) {
			t.Fatalf("output grew: %d from %d", len(out), len(s))
		}
	})
}
