package tui

import (
	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
)

// keyMap is every key of the VM list, as data: the handlers match against
// these bindings (key.Matches) and the help screen renders the same ones
// (bubbles/help), so what help says is what the keys do.
type keyMap struct {
	Up, Down, PageUp, PageDown, Home, End key.Binding
	Details, Back, Filter                 key.Binding
	Toggle, Restart, SSH, Exec, Delete    key.Binding
	Suspend, Snapshot, Clone              key.Binding
	Create                                key.Binding
	Refresh, Help, Quit                   key.Binding
}

var keys = keyMap{
	// Down, PageUp/PageDown and Home/End share Up's help line.
	Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/↓ j/k", "move")),
	Down:     key.NewBinding(key.WithKeys("down", "j")),
	PageUp:   key.NewBinding(key.WithKeys("pgup")),
	PageDown: key.NewBinding(key.WithKeys("pgdown")),
	Home:     key.NewBinding(key.WithKeys("home", "g")),
	End:      key.NewBinding(key.WithKeys("end", "G")),
	Details:  key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "details of the selected VM (esc closes)")),
	Back:     key.NewBinding(key.WithKeys("esc")),
	Filter:   key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter by name, image, IP or state (esc clears)")),
	Toggle:   key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "start or stop the selected VM")),
	Restart:  key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "restart the selected VM")),
	SSH:      key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "ssh into the selected VM (the TUI resumes when ssh exits)")),
	Suspend:  key.NewBinding(key.WithKeys("z"), key.WithHelp("z", "suspend the selected VM (memory to disk) or resume it")),
	Snapshot: key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "snapshot the selected VM (memory and disks)")),
	Clone:    key.NewBinding(key.WithKeys("C"), key.WithHelp("C", "clone the selected VM as NAME-clone (a running one keeps running)")),
	Exec:     key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "run a command in the selected VM (output below; esc closes)")),
	Delete:   key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "delete the selected VM (asks y/n)")),
	Create:   key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "create a VM")),
	Refresh:  key.NewBinding(key.WithKeys("R"), key.WithHelp("R", "refresh now / reconnect to the daemon")),
	Help:     key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
	Quit:     key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q ctrl+c", "quit (VMs keep running)")),
}

// ShortHelp is the header's reminder (quit in its short form; the help
// screen has the whole line).
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Help, key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit"))}
}

// FullHelp is the help screen: one column, one line per key.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Details, k.Filter, k.Toggle, k.Restart, k.Suspend, k.Snapshot, k.Clone, k.SSH, k.Exec, k.Delete, k.Create, k.Refresh, k.Quit}}
}

// Keys of the other modes.
var (
	confirmYes = key.NewBinding(key.WithKeys("y", "Y"))
	formKeys   = struct{ Next, Prev, Submit, Cancel key.Binding }{
		Next:   key.NewBinding(key.WithKeys("tab", "down"), key.WithHelp("tab", "next field")),
		Prev:   key.NewBinding(key.WithKeys("shift+tab", "up")),
		Submit: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "create")),
		Cancel: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
	}
	filterKeys = struct{ Keep, Clear key.Binding }{
		Keep:  key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "keeps")),
		Clear: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clears")),
	}
)

// newHelp renders key help in the theme's key style.
func newHelp(th theme) help.Model {
	h := help.New()
	h.ShortSeparator = " · "
	h.Styles.ShortKey, h.Styles.FullKey = th.key, th.key.PaddingRight(1)
	h.Styles.ShortDesc, h.Styles.FullDesc = th.plain(), th.plain()
	h.Styles.ShortSeparator, h.Styles.FullSeparator, h.Styles.Ellipsis = th.plain(), th.plain(), th.dim
	return h
}
