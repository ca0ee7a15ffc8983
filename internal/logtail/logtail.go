// Package logtail reads the end of a log file for error messages: what
// bangerd, QEMU, Firecracker or a guest console wrote last.
package logtail

import (
	"io"
	"os"
	"strings"
)

// maxRead bounds how much of a log is read: the last lines of a huge log
// are all an error message needs.
const maxRead = 64 << 10

// Lines returns the last n lines written to path at or after byte offset
// from (0: the whole file), without the final newline. An offset past the
// end means the file was replaced, so it reads from the start.
func Lines(path string, from int64, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	size := fi.Size()
	if from < 0 || from > size {
		from = 0
	}
	if size-from > maxRead {
		from = size - maxRead
	}
	b, err := io.ReadAll(io.NewSectionReader(f, from, size-from))
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return "", nil
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n"), nil
}
