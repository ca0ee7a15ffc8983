package cli

import (
	"bufio"
	"strings"
	"unicode/utf8"

	"github.com/banger-dev/banger/internal/api"
)

// printChecks renders doctor/verify checks. Into a pipe: one row per check,
// NAME STATUS DETAIL FIX, for grep and awk. On a terminal: NAME STATUS
// DETAIL with DETAIL wrapped to the terminal's width and the fix on its own
// line under it, so nothing runs past the right edge.
func (a *App) printChecks(checks []api.CheckResult) {
	width := 0
	if a.Width != nil {
		width = a.Width(a.Stdout)
	}
	if width <= 0 {
		t := newTable(a.Stdout, "NAME", "STATUS", "DETAIL", "FIX")
		for _, c := range checks {
			t.row(c.Name, a.statusText(c.Status), dash(c.Detail), dash(c.Fix))
		}
		t.flush()
		return
	}

	nameW, statusW := len("NAME"), len("STATUS")
	for _, c := range checks {
		nameW = max(nameW, utf8.RuneCountInString(c.Name))
		statusW = max(statusW, utf8.RuneCountInString(string(c.Status)))
	}
	indent := nameW + 2 + statusW + 2
	if width-indent < 30 {
		// Too narrow for a DETAIL column: text goes under the name.
		indent = 4
	}
	textW := width - indent
	const fixLabel = "fix: "
	pad := strings.Repeat(" ", indent)
	w := bufio.NewWriter(a.Stdout)
	defer w.Flush()
	line := func(s string) { w.WriteString(strings.TrimRight(s, " ") + "\n") }

	head := padRight("NAME", nameW) + "  " + padRight("STATUS", statusW) + "  "
	if indent == 4 {
		line(head)
	} else {
		line(head + "DETAIL")
	}
	for _, c := range checks {
		// Pad before painting: escape codes have no width.
		head := padRight(c.Name, nameW) + "  " + a.statusText(c.Status) +
			strings.Repeat(" ", statusW-utf8.RuneCountInString(string(c.Status))) + "  "
		detail := wrapText(dash(c.Detail), textW)
		if indent == 4 {
			line(head)
			detail[0] = pad + detail[0]
		} else {
			detail[0] = head + detail[0]
		}
		for i, l := range detail {
			if i > 0 {
				l = pad + l
			}
			line(l)
		}
		if c.Fix == "" {
			continue
		}
		for i, l := range wrapText(c.Fix, textW-len(fixLabel)) {
			if i == 0 {
				line(pad + fixLabel + l)
			} else {
				line(pad + strings.Repeat(" ", len(fixLabel)) + l)
			}
		}
	}
}

func (a *App) statusText(s api.CheckStatus) string {
	switch s {
	case api.CheckOK:
		return a.paint(a.Stdout, string(s), "32")
	case api.CheckWarn:
		return a.paint(a.Stdout, string(s), "33")
	case api.CheckFail:
		return a.paint(a.Stdout, string(s), "31")
	}
	return string(s)
}

func padRight(s string, w int) string {
	return s + strings.Repeat(" ", max(0, w-utf8.RuneCountInString(s)))
}

// wrapText breaks s into lines of at most width runes at spaces. A word
// longer than width (a URL in a fix) gets a line of its own, whole: cut, it
// would no longer work when copied out of the terminal.
func wrapText(s string, width int) []string {
	width = max(width, 10)
	var lines []string
	cur, curW := "", 0
	for _, word := range strings.Fields(s) {
		ww := utf8.RuneCountInString(word)
		if curW > 0 && curW+1+ww <= width {
			cur, curW = cur+" "+word, curW+1+ww
			continue
		}
		if curW > 0 {
			lines = append(lines, cur)
		}
		cur, curW = word, ww
	}
	if curW > 0 || len(lines) == 0 {
		lines = append(lines, cur)
	}
	return lines
}
