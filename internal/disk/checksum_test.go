package disk

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/sysexec"
)

// The sparse-aware digest must equal sha256sum's for files with leading,
// inner and trailing holes, a file with no holes, and an empty file.
func TestSHA256MatchesSha256sum(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]func(f *os.File) error{
		"empty": func(f *os.File) error { return nil },
		"dense": func(f *os.File) error { _, err := f.Write([]byte(strings.Repeat("banger", 50000))); return err },
		"holes": func(f *os.File) error {
			if _, err := f.WriteAt([]byte("middle"), 5<<20); err != nil {
				return err
			}
			if _, err := f.WriteAt([]byte(strings.Repeat("x", 70000)), 9<<20+123); err != nil {
				return err
			}
			return f.Truncate(40 << 20) // trailing hole
		},
		"only-hole": func(f *os.File) error { return f.Truncate(3 << 20) },
	}
	for name, fill := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := fill(f); err != nil {
				t.Fatal(err)
			}
			f.Close()
			got, size, err := SHA256(p)
			if err != nil {
				t.Fatal(err)
			}
			out, err := sysexec.Output(context.Background(), "sha256sum", p)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.Fields(out)[0]; got != want {
				t.Errorf("SHA256 = %s, sha256sum = %s", got, want)
			}
			st, _ := os.Stat(p)
			if size != st.Size() {
				t.Errorf("size = %d, want %d", size, st.Size())
			}
		})
	}
}

func BenchmarkSHA256SparseImage(b *testing.B) {
	p := filepath.Join(b.TempDir(), "img")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("d", 64<<20)), 1<<30); err != nil {
		b.Fatal(err)
	}
	f.Truncate(4 << 30)
	f.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := SHA256(p); err != nil {
			b.Fatal(err)
		}
	}
}
