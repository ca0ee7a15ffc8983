package tui

import (
	"context"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/banger-dev/banger/internal/api"
)

func (m *Model) onKey(k tea.KeyPressMsg) tea.Cmd {
	if k.String() == "ctrl+c" {
		return tea.Quit // in every mode, even while typing
	}
	switch m.mode {
	case modeFilter:
		return m.onFilterKey(k)
	case modeConfirmDelete:
		return m.onConfirmKey(k)
	case modeForm:
		return m.onFormKey(k)
	case modeExec:
		return m.onExecKey(k)
	case modeHelp:
		m.mode = modeNormal // any key closes help
		if key.Matches(k, keys.Quit) {
			return tea.Quit
		}
		return nil
	}
	return m.onNormalKey(k)
}

func (m *Model) onNormalKey(k tea.KeyPressMsg) tea.Cmd {
	switch {
	case key.Matches(k, keys.Quit):
		return tea.Quit
	case key.Matches(k, keys.Help):
		m.mode = modeHelp
	case key.Matches(k, keys.Up):
		m.moveCursor(-1)
	case key.Matches(k, keys.Down):
		m.moveCursor(1)
	case key.Matches(k, keys.PageUp):
		m.moveCursor(-10)
	case key.Matches(k, keys.PageDown):
		m.moveCursor(10)
	case key.Matches(k, keys.Home):
		m.moveCursor(-len(m.vms))
	case key.Matches(k, keys.End):
		m.moveCursor(len(m.vms))
	case key.Matches(k, keys.Filter):
		m.mode = modeFilter
	case key.Matches(k, keys.Back):
		switch {
		case m.execResult != nil:
			m.execResult = nil
		case m.details:
			m.details = false
		case m.filter != "":
			m.filter = ""
			m.syncCursor()
		}
	case key.Matches(k, keys.Details):
		if _, ok := m.selectedVM(); ok {
			m.details = !m.details
		}
	case key.Matches(k, keys.Refresh):
		if m.daemon.state == stateFailed {
			m.daemon = stage{}
			m.setStatus(levelInfo, "")
			return tea.Batch(m.connectCmd(), m.startSpinner())
		}
		return m.refreshCmd()
	case key.Matches(k, keys.Create):
		if m.daemon.state != stateDone {
			m.setStatus(levelInfo, "the daemon is not connected yet")
			return nil
		}
		m.form = newCreateForm(m.th)
		m.mode = modeForm
	case key.Matches(k, keys.Toggle):
		return m.toggleSelected()
	case key.Matches(k, keys.Restart):
		return m.restartSelected()
	case key.Matches(k, keys.Suspend):
		return m.suspendSelected()
	case key.Matches(k, keys.Snapshot):
		return m.snapshotSelected()
	case key.Matches(k, keys.Clone):
		return m.cloneSelected()
	case key.Matches(k, keys.Delete):
		vm, ok := m.actionable()
		if !ok {
			return nil
		}
		m.confirm = vm.Name
		m.mode = modeConfirmDelete
	case key.Matches(k, keys.SSH):
		return m.sshSelected()
	case key.Matches(k, keys.Exec):
		vm, ok := m.actionable()
		if !ok {
			return nil
		}
		if vm.State != api.VMRunning {
			m.setStatus(levelInfo, fmt.Sprintf("%s is %s — press s to start it, then e to run a command", vm.Name, vm.State))
			return nil
		}
		if m.execRunning {
			m.setStatus(levelInfo, "a command is still running in "+m.execVM)
			return nil
		}
		m.execVM, m.execLine, m.mode = vm.Name, "", modeExec
	}
	return nil
}

// onExecKey edits the command line; enter runs it, esc cancels.
func (m *Model) onExecKey(k tea.KeyPressMsg) tea.Cmd {
	switch {
	case key.Matches(k, filterKeys.Clear):
		m.mode = modeNormal
	case key.Matches(k, filterKeys.Keep):
		m.mode = modeNormal
		line := strings.TrimSpace(m.execLine)
		if line == "" {
			return nil
		}
		m.execRunning, m.execResult = true, nil
		m.setStatus(levelInfo, "running "+line+" in "+m.execVM+"…")
		b, name, ctx := m.backend, m.execVM, m.ctx
		return func() tea.Msg {
			res, err := b.Exec(ctx, name, line)
			return execDoneMsg{name: name, command: line, res: res, err: err}
		}
	case key.Matches(k, filterBackspace):
		if r := []rune(m.execLine); len(r) > 0 {
			m.execLine = string(r[:len(r)-1])
		}
	default:
		m.execLine += k.Text
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
	case api.VMSuspended:
		m.setStatus(levelInfo, "resuming "+name+"…")
		return m.opCmd(name, "resuming", func(ctx context.Context) error { return b.ResumeVM(ctx, name) })
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

func (m *Model) suspendSelected() tea.Cmd {
	vm, ok := m.actionable()
	if !ok {
		return nil
	}
	b, name := m.backend, vm.Name
	switch vm.State {
	case api.VMRunning:
		m.setStatus(levelInfo, "suspending "+name+"…")
		return m.opCmd(name, "suspending", func(ctx context.Context) error { return b.SuspendVM(ctx, name) })
	case api.VMSuspended:
		m.setStatus(levelInfo, "resuming "+name+"…")
		return m.opCmd(name, "resuming", func(ctx context.Context) error { return b.ResumeVM(ctx, name) })
	default:
		m.setStatus(levelInfo, fmt.Sprintf("%s is %s; only a running VM can be suspended", name, vm.State))
		return nil
	}
}

// settledSelected is the selected VM when it runs or is stopped (what a
// snapshot or a clone needs); otherwise the status line says why not.
func (m *Model) settledSelected(verb string) (api.VM, bool) {
	vm, ok := m.actionable()
	if !ok {
		return api.VM{}, false
	}
	switch vm.State {
	case api.VMRunning, api.VMStopped, api.VMError:
		return vm, true
	}
	m.setStatus(levelInfo, fmt.Sprintf("%s is %s; %s it when it runs or is stopped", vm.Name, vm.State, verb))
	return api.VM{}, false
}

func (m *Model) snapshotSelected() tea.Cmd {
	vm, ok := m.settledSelected("snapshot")
	if !ok {
		return nil
	}
	b, name := m.backend, vm.Name
	m.setStatus(levelInfo, "snapshotting "+name+"…")
	return m.opCmd(name, "snapshotting", func(ctx context.Context) error {
		_, err := b.SnapshotVM(ctx, name)
		return err
	})
}

func (m *Model) cloneSelected() tea.Cmd {
	vm, ok := m.settledSelected("clone")
	if !ok {
		return nil
	}
	b, src := m.backend, vm.Name
	name := m.cloneName(src)
	m.setStatus(levelInfo, "cloning "+src+" as "+name+"…")
	return m.opCmd(src, "cloning", func(ctx context.Context) error { return b.CloneVM(ctx, src, name) })
}

// cloneName is the first of SRC-clone, SRC-clone-2, ... no VM has, kept
// within a DNS label's 63 characters.
func (m *Model) cloneName(src string) string {
	taken := map[string]bool{}
	for _, v := range m.vms {
		taken[v.Name] = true
	}
	for n := 1; ; n++ {
		suffix := "-clone"
		if n > 1 {
			suffix = fmt.Sprintf("-clone-%d", n)
		}
		base := src
		if len(base)+len(suffix) > 63 {
			base = strings.TrimRight(base[:63-len(suffix)], "-")
		}
		if !taken[base+suffix] {
			return base + suffix
		}
	}
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

// In the filter, letters are text: only keys no name contains act.
var (
	filterUp        = key.NewBinding(key.WithKeys("up"))
	filterDown      = key.NewBinding(key.WithKeys("down"))
	filterBackspace = key.NewBinding(key.WithKeys("backspace"))
)

func (m *Model) onFilterKey(k tea.KeyPressMsg) tea.Cmd {
	switch {
	case key.Matches(k, filterKeys.Clear):
		m.filter = ""
		m.mode = modeNormal
	case key.Matches(k, filterKeys.Keep):
		m.mode = modeNormal
	case key.Matches(k, filterBackspace):
		if r := []rune(m.filter); len(r) > 0 {
			m.filter = string(r[:len(r)-1])
		}
	case key.Matches(k, filterUp):
		m.moveCursor(-1)
		return nil
	case key.Matches(k, filterDown):
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
	if !key.Matches(k, confirmYes) {
		m.setStatus(levelInfo, "delete of "+name+" cancelled")
		return nil
	}
	b := m.backend
	m.setStatus(levelInfo, "deleting "+name+"…")
	return m.opCmd(name, "deleting", func(ctx context.Context) error { return b.DeleteVM(ctx, name) })
}

func (m *Model) onFormKey(k tea.KeyPressMsg) tea.Cmd {
	f := &m.form
	switch {
	case key.Matches(k, formKeys.Cancel):
		m.mode = modeNormal
		m.setStatus(levelInfo, "create cancelled")
	case key.Matches(k, formKeys.Next):
		f.setFocus(f.focus + 1)
	case key.Matches(k, formKeys.Prev):
		f.setFocus(f.focus - 1)
	case key.Matches(k, formKeys.Submit):
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
		// Typing, deleting and moving within the field: the text input's.
		before := f.inputs[f.focus].Value()
		var cmd tea.Cmd
		f.inputs[f.focus], cmd = f.inputs[f.focus].Update(k)
		if f.inputs[f.focus].Value() != before {
			f.errs[f.focus] = ""
		}
		return cmd
	}
	return nil
}
