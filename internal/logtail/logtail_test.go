package logtail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	os.WriteFile(p, []byte("one\ntwo\nthree\nfour\n"), 0o600)
	for _, c := range []struct {
		from int64
		n    int
		want string
	}{
		{0, 2, "three\nfour"},
		{0, 10, "one\ntwo\nthree\nfour"},
		{8, 10, "three\nfour"}, // written since byte 8
		{19, 10, ""},           // nothing new
		{100, 1, "four"},       // past the end: the file was replaced
	} {
		if got, err := Lines(p, c.from, c.n); err != nil || got != c.want {
			t.Errorf("Lines(from %d, n %d) = %q, %v; want %q", c.from, c.n, got, err, c.want)
		}
	}
	big := strings.Repeat("x\n", maxRead) + "last\n"
	os.WriteFile(p, []byte(big), 0o600)
	if got, _ := Lines(p, 0, 1); got != "last" {
		t.Errorf("big log: %q", got)
	}
	if _, err := Lines(filepath.Join(t.TempDir(), "none"), 0, 1); err == nil {
		t.Error("missing log: no error")
	}
}
