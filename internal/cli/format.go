package cli

import (
	"bufio"
	"io"
	"strconv"
	"time"

	"github.com/banger-dev/banger/internal/validate"
)

// table writes aligned columns, two spaces apart. Rows are kept until
// flush, which measures each column and writes the whole table through one
// buffer. (text/tabwriter wrote every cell and pad separately, 16,000 write
// syscalls for 1,000 VMs, and counted colour escapes as width.)
type table struct {
	w    io.Writer
	rows [][]string
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{w: w}
	t.row(header...)
	return t
}

func (t *table) row(cols ...string) { t.rows = append(t.rows, cols) }

func (t *table) flush() {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displayWidth(c))
		}
	}
	buf := bufio.NewWriterSize(t.w, 64<<10)
	for _, r := range t.rows {
		for i, c := range r {
			buf.WriteString(c)
			if i < len(r)-1 {
				writeSpaces(buf, widths[i]-displayWidth(c)+2)
			}
		}
		buf.WriteByte('\n')
	}
	buf.Flush()
	t.rows = nil
}

// spaces pads table cells without allocating a string per cell (a
// 1,000-row list has 7,000 of them).
const spaces = "                                                                "

func writeSpaces(w *bufio.Writer, n int) {
	for n > len(spaces) {
		w.WriteString(spaces)
		n -= len(spaces)
	}
	w.WriteString(spaces[:n])
}

// displayWidth is the columns s takes on a terminal: runes, not counting
// ANSI colour escapes (ESC [ ... m).
func displayWidth(s string) int {
	n, esc := 0, false
	for _, r := range s {
		switch {
		case esc:
			esc = r != 'm'
		case r == 0x1b:
			esc = true
		default:
			n++
		}
	}
	return n
}

// age renders a duration as the largest whole unit: 45s, 3m, 2h, 5d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	default:
		return strconv.Itoa(int(d.Hours()/24)) + "d"
	}
}

func bytesStr(n int64) string { return validate.FormatBytes(n) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
