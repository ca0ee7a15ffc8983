package tui

import (
	"context"
	"fmt"

	tea "charm.land/bubbletea/v2"

	"github.com/banger-dev/banger/internal/api"
)

func (m *Model) onKey(k tea.KeyPressMsg) tea.Cmd {
	if k.String() == "ctrl+c" {
		return tea.Quit
	}
	switch m.mode {
	case modeFilter:
		return m.onFilterKey(k)
	case modeConfirmDelete:
		return m.onConfirmKey(k)
	case modeForm:
		return m.onFormKey(k)
	case modeHelp:
		m.mode = modeNormal // any key closes help
		if k.String() == "q" {
			return tea.Quit
		}
		return nil
	}
	return m.onNormalKey(k)
}

func (m *Model) onNormalKey(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "q":
		return tea.Quit
	case "?":
		m.mode = modeHelp
	case "up", "k":
		m.moveCursor(-1)
	case "down", "j":
		m.moveCursor(1)
	case "pgup":
		m.moveCursor(-10)
	case "pgdown":
		m.moveCursor(10)
	case "home", "g":
		m.moveCursor(-len(m.vms))
	case "end", "G":
		m.moveCursor(len(m.vms))
	case "/":
		m.mode = modeFilter
	case "esc":
		switch {
		case m.details:
			m.details = false
		case m.filter != "":
			m.filter = ""
			m.syncCursor()
		}
	case "enter":
		if _, ok := m.selectedVM(); ok {
			m.details = !m.details
		}
	case "R":
		if m.daemon.state == stateFailed {
			m.daemon = stage{}
			m.setStatus(levelInfo, "")
			return tea.Batch(m.connectCmd(), m.startSpinner())
		}
		return m.refreshCmd()
	case "c":
		if m.daemon.state != stateDone {
			m.setStatus(levelInfo, "the daemon is not connected yet")
			return nil
		}
		m.form = createForm{}
		m.mode = modeForm
	case "s":
		return m.toggleSelected()
	case "r":
		return m.restartSelected()
	case "d":
		vm, ok := m.actionable()
		if !ok {
			return nil
		}
		m.confirm = vm.Name
		m.mode = modeConfirmDelete
	case "x":
		return m.sshSelected()
	}
	return nil
}

// actionable returns the selected VM if no operation is running on it.
func (m *Model) actionable() (api.VM, bool) {
	vm, ok := m.selectedVM()
	if !ok {
		m.setStatus(levelInfo, "no VM selected")
		return api.VM{}, false
	}
	if op := m.ops[vm.Name]; op != "" {
		m.setStatus(levelInfo, fmt.Sprintf("%s is %s; wait for it to finish", vm.Name, op))
		return api.VM{}, false
	}
	return vm, true
}

func (m *Model) toggleSelected() tea.Cmd {
	vm, ok := m.actionable()
	if !ok {
		return nil
	}
	b, name := m.backend, vm.Name
	switch vm.State {
	case api.VMRunning:
		m.setStatus(levelInfo, "stopping "+name+"…")
		return m.opCmd(name, "stopping", func(ctx context.Context) error { return b.StopVM(ctx, name) })
	case api.VMStopped, api.VMError:
		m.setStatus(levelInfo, "starting "+name+"…")
		return m.opCmd(name, "starting", func(ctx context.Context) error { return b.StartVM(ctx, name) })
	default:
		m.setStatus(levelInfo, fmt.Sprintf("%s is %s; wait for it to finish", name, vm.State))
		return nil
	}
}

func (m *Model) restartSelected() tea.Cmd {
	vm, ok := m.actionable()
	if !ok {
		return nil
	}
	if vm.State != api.VMRunning {
		m.setStatus(levelInfo, fmt.Sprintf("%s is %s; press s to start it", vm.Name, vm.State))
		return nil
	}
	b, name := m.backend, vm.Name
	m.setStatus(levelInfo, "restarting "+name+"…")
	return m.opCmd(name, "restarting", func(ctx context.Context) error { return b.RestartVM(ctx, name) })
}

func (m *Model) sshSelected() tea.Cmd {
	vm, ok := m.actionable()
	if !ok {
		return nil
	}
	if vm.State != api.VMRunning {
		m.setStatus(levelInfo, fmt.Sprintf("%s is %s — press s to start it, then x to ssh in", vm.Name, vm.State))
		return nil
	}
	cmd, err := m.backend.SSHCommand(vm.Name)
	if err != nil {
		m.setError("ssh "+vm.Name+": ", err)
		return nil
	}
	name := vm.Name
	return tea.ExecProcess(cmd, func(err error) tea.Msg { return sshDoneMsg{name: name, err: err} })
}

func (m *Model) onFilterKey(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "esc":
		m.filter = ""
		m.mode = modeNormal
	case "enter":
		m.mode = modeNormal
	case "backspace":
		if r := []rune(m.filter); len(r) > 0 {
			m.filter = string(r[:len(r)-1])
		}
	case "up":
		m.moveCursor(-1)
		return nil
	case "down":
		m.moveCursor(1)
		return nil
	default:
		if k.Text == "" {
			return nil
		}
		m.filter += k.Text
	}
	m.cursor = 0
	if vis := m.visible(); len(vis) > 0 {
		m.selected = vis[0].Name
	}
	m.syncCursor()
	return nil
}

func (m *Model) onConfirmKey(k tea.KeyPressMsg) tea.Cmd {
	name := m.confirm
	m.confirm = ""
	m.mode = modeNormal
	switch k.String() {
	case "y", "Y":
		b := m.backend
		m.setStatus(levelInfo, "deleting "+name+"…")
		return m.opCmd(name, "deleting", func(ctx context.Context) error { return b.DeleteVM(ctx, name) })
	default:
		m.setStatus(levelInfo, "delete of "+name+" cancelled")
		return nil
	}
}

func (m *Model) onFormKey(k tea.KeyPressMsg) tea.Cmd {
	f := &m.form
	switch k.String() {
	case "esc":
		m.mode = modeNormal
		m.setStatus(levelInfo, "create cancelled")
	case "tab", "down":
		f.focus = (f.focus + 1) % numFields
	case "shift+tab", "up":
		f.focus = (f.focus + numFields - 1) % numFields
	case "backspace":
		if r := []rune(f.values[f.focus]); len(r) > 0 {
			f.values[f.focus] = string(r[:len(r)-1])
		}
	case "enter":
		p, ok := f.validate(m.images, m.host)
		if !ok {
			m.setStatus(levelError, "fix the fields marked in the form")
			return nil
		}
		m.mode = modeNormal
		b := m.backend
		m.setStatus(levelInfo, "creating "+p.Name+"…")
		return m.opCmd(p.Name, "creating", func(ctx context.Context) error {
			_, err := b.CreateVM(ctx, p)
			return err
		})
	default:
		if k.Text != "" {
			f.values[f.focus] += k.Text
			f.errs[f.focus] = ""
		}
	}
	return nil
}
