package tui

import "charm.land/lipgloss/v2"

// theme holds every style the views use. With NoColor all of them carry no
// color, so the output is the same characters without escape codes for color.
type theme struct {
	title, dim, accent, ok, warn, bad, header, selected, key lipgloss.Style
	noColor                                                  bool
}

func newTheme(noColor bool) theme {
	plain := lipgloss.NewStyle()
	if noColor {
		return theme{title: plain, dim: plain, accent: plain, ok: plain, warn: plain,
			bad: plain, header: plain, selected: plain, key: plain, noColor: true}
	}
	// Basic ANSI colors follow the user's terminal palette.
	return theme{
		title:    plain.Bold(true).Foreground(lipgloss.Color("6")),
		dim:      plain.Foreground(lipgloss.Color("8")),
		accent:   plain.Foreground(lipgloss.Color("6")),
		ok:       plain.Foreground(lipgloss.Color("2")),
		warn:     plain.Foreground(lipgloss.Color("3")),
		bad:      plain.Foreground(lipgloss.Color("1")),
		header:   plain.Bold(true),
		selected: plain.Reverse(true),
		key:      plain.Bold(true).Foreground(lipgloss.Color("6")),
	}
}

func (t theme) level(l Level) lipgloss.Style {
	switch l {
	case LevelHigh:
		return t.bad
	case LevelWarn:
		return t.warn
	default:
		return t.ok
	}
}

// plain is the unstyled style (explicit, so help's defaults never apply).
func (t theme) plain() lipgloss.Style { return lipgloss.NewStyle() }
