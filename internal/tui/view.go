package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/termsafe"
)

// View renders the full screen in the alternate buffer.
func (m *Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	v.WindowTitle = "banger"
	return v
}

// Render draws the whole screen for the model's width and height. It only
// reads the model, so tests compare it against golden files.
func (m *Model) Render() string {
	w, h := max(m.width, 20), max(m.height, 8)
	top := []string{m.renderHeader(w), m.renderCapacity(w), ""}
	var lower []string
	switch {
	case m.mode == modeHelp:
		lower = m.renderHelp()
	case m.mode == modeForm:
		lower = m.renderForm(w)
	case m.mode == modeExec || m.execRunning || m.execResult != nil:
		lower = m.renderExec(w, h)
	case m.details:
		lower = m.renderDetails(w)
	default:
		lower = m.renderImages(w, h)
	}
	status := m.renderStatus(w)
	// The VM table keeps at least its header and two rows; the lower pane
	// gives up its last lines on a short screen.
	const minTable = 3
	if room := h - len(top) - 1 - len(status) - minTable; len(lower) > room {
		lower = lower[:max(room, 0)]
	}
	bottom := append([]string{""}, lower...)
	bottom = append(bottom, status...)

	tableRows := max(h-len(top)-len(bottom)-1, minTable-1) // -1: the table's header line
	table := m.renderVMTable(w, tableRows)

	lines := append(top, table...)
	for len(lines)+len(bottom) < h {
		lines = append(lines, "")
	}
	lines = append(lines, bottom...)
	for i, l := range lines {
		// The layout assumes at least 20 columns; a narrower terminal gets
		// it clipped rather than wrapped.
		lines[i] = strings.TrimRight(clip(l, max(m.width, 1)), " ")
	}
	return strings.Join(lines, "\n")
}

func (m *Model) spinnerView() string { return m.spin.View() }

func (m *Model) renderHeader(w int) string {
	left := m.th.title.Render("banger") + " " + m.th.dim.Render(m.version) + "  "
	switch m.daemon.state {
	case statePending:
		left += "daemon " + m.spinnerView() + " connecting…"
	case stateFailed:
		left += "daemon " + m.th.bad.Render("unreachable")
	default:
		left += "daemon " + m.th.ok.Render("connected")
	}
	if m.filter != "" || m.mode == modeFilter {
		cursor := ""
		if m.mode == modeFilter {
			cursor = "▏"
		}
		left += "  filter: " + m.th.accent.Render(m.filter) + cursor
	}
	right := m.help.ShortHelpView(keys.ShortHelp())
	gap := w - ansi.StringWidth(left) - ansi.StringWidth(right)
	if gap < 2 {
		return left
	}
	return left + strings.Repeat(" ", gap) + right
}

func (m *Model) renderCapacity(w int) string {
	switch {
	case m.daemon.state == stateFailed:
		return m.th.dim.Render("capacity unknown: daemon unreachable")
	case m.hostStage.state == stateFailed:
		return m.th.dim.Render("capacity unknown: " + m.hostStage.err.Error())
	case m.daemon.state == statePending || m.hostStage.state == statePending || m.vmStage.state != stateDone:
		return m.th.dim.Render("capacity ") + m.spinnerView() + m.th.dim.Render(" loading…")
	}
	f := Capacity(m.vms, m.host)
	type seg struct {
		label, figures string
		used, total    int64
	}
	segs := []seg{
		{"CPU", fmt.Sprintf("%d/%d vCPU", f.VCPUsUsed, f.VCPUsTotal), int64(f.VCPUsUsed), int64(f.VCPUsTotal)},
		{"RAM", fmt.Sprintf("%s/%s GiB", inGiB(f.MemUsedBytes), inGiB(f.MemTotalBytes)), f.MemUsedBytes, f.MemTotalBytes},
		{"Disk", fmt.Sprintf("%s/%s GiB", inGiB(f.DiskUsedBytes), inGiB(f.DiskTotalBytes)), f.DiskUsedBytes, f.DiskTotalBytes},
	}
	fixed := 2 * 3 // gaps between segments (3 cells each, 2 gaps)
	for _, s := range segs {
		fixed += len(s.label) + 1 + 1 + len(s.figures)
	}
	barW := max(4, min(20, (w-fixed)/3))
	parts := make([]string, len(segs))
	for i, s := range segs {
		filled, empty := bar(s.used, s.total, barW)
		st := m.th.level(UsageLevel(s.used, s.total))
		parts[i] = s.label + " " + st.Render(filled) + m.th.dim.Render(empty) + " " + s.figures
	}
	return strings.Join(parts, "   ")
}

// column is one VM table column. Columns with a higher drop value disappear
// first when the screen is narrow; drop 0 columns always stay.
type column struct {
	title string
	width int
	drop  int
	right bool
	cell  func(vm api.VM) string
}

func (m *Model) vmColumns(vis []api.VM) []column {
	nameW, imgW := 4, 5
	for _, vm := range vis {
		nameW = max(nameW, ansi.StringWidth(vm.Name))
		imgW = max(imgW, ansi.StringWidth(vm.Image))
	}
	nameW, imgW = min(nameW, 24), min(imgW, 20)
	now := m.now()
	return []column{
		{title: "NAME", width: nameW, cell: func(vm api.VM) string { return vm.Name }},
		{title: "STATE", width: 11, cell: m.stateCell},
		{title: "HEALTH", width: 9, drop: 2, cell: m.healthCell},
		{title: "IP", width: 15, drop: 3, cell: func(vm api.VM) string { return orDash(vm.IP) }},
		{title: "VCPU", width: 4, drop: 6, right: true, cell: func(vm api.VM) string { return fmt.Sprint(vm.VCPUs) }},
		{title: "MEM", width: 5, drop: 5, right: true, cell: func(vm api.VM) string { return humanBytes(int64(vm.MemoryMiB) << 20) }},
		{title: "DISK", width: 5, drop: 4, right: true, cell: func(vm api.VM) string { return humanBytes(vm.DiskAllocatedBytes) }},
		{title: "SIZE", width: 5, drop: 10, right: true, cell: func(vm api.VM) string { return humanBytes(vm.DiskBytes) }},
		{title: "UPTIME", width: 6, drop: 7, right: true, cell: func(vm api.VM) string {
			if vm.State != api.VMRunning || vm.StartedAt == nil {
				return "-"
			}
			return formatDuration(now.Sub(*vm.StartedAt))
		}},
		{title: "IMAGE", width: imgW, drop: 8, cell: func(vm api.VM) string { return vm.Image }},
		{title: "VMM", width: 11, drop: 11, cell: func(vm api.VM) string { return orDash(vm.VMM) }},
		{title: "ID", width: 8, drop: 12, cell: func(vm api.VM) string { return vm.ID }},
	}
}

// fitColumns fits a row into w cells: the first (name) column first gives up
// its width down to a readable minimum, then columns go by their drop order
// (highest first), and any room left goes back to the name column.
func fitColumns(cols []column, w int) []column {
	const gap, marker, nameMin = 2, 2, 14
	total := func(cs []column) int {
		t := marker
		for _, c := range cs {
			t += c.width + gap
		}
		return t - gap
	}
	natural := cols[0].width
	cols[0].width = min(natural, nameMin)
	for total(cols) > w {
		worst := -1
		for i, c := range cols {
			if c.drop > 0 && (worst < 0 || c.drop > cols[worst].drop) {
				worst = i
			}
		}
		if worst < 0 {
			break
		}
		cols = append(cols[:worst:worst], cols[worst+1:]...)
	}
	if room := w - total(cols); room > 0 {
		cols[0].width = min(natural, cols[0].width+room)
	} else if room < 0 {
		cols[0].width = max(4, cols[0].width+room)
	}
	return cols
}

func (m *Model) renderVMTable(w, rows int) []string {
	switch {
	case m.daemon.state == stateFailed:
		return []string{m.th.dim.Render("VMs unavailable until the daemon is reachable")}
	case m.daemon.state == statePending || m.vmStage.state == statePending:
		return []string{m.th.dim.Render("VMs ") + m.spinnerView() + m.th.dim.Render(" loading…")}
	case m.vmStage.state == stateFailed:
		return []string{m.th.bad.Render("VMs could not be listed: " + m.vmStage.err.Error())}
	}
	if len(m.vms) == 0 {
		return []string{"No VMs yet — press " + m.th.key.Render("c") + " to create one (or: banger vm create --name dev)"}
	}
	vis := m.visible()
	if len(vis) == 0 {
		return []string{fmt.Sprintf("No VM matches %q — esc clears the filter", m.filter)}
	}
	cols := fitColumns(m.vmColumns(vis), w)
	hdr := make([]string, len(cols))
	for i, c := range cols {
		hdr[i] = fit(c.title, c.width, c.right)
	}
	out := []string{m.th.header.Render("  " + strings.Join(hdr, "  "))}

	// Scroll so the cursor stays visible; one line says what is hidden.
	dataRows := rows
	if len(vis) > rows {
		dataRows = max(1, rows-1)
	}
	start := max(0, m.cursor-dataRows+1)
	end := min(len(vis), start+dataRows)
	for i := start; i < end; i++ {
		vm := vis[i]
		cells := make([]string, len(cols))
		for j, c := range cols {
			cells[j] = fit(c.cell(vm), c.width, c.right)
		}
		line := strings.Join(cells, "  ")
		if i == m.cursor {
			out = append(out, "› "+m.th.selected.Render(ansi.Strip(line)))
		} else {
			out = append(out, "  "+line)
		}
	}
	if start > 0 || end < len(vis) {
		var hidden []string
		if start > 0 {
			hidden = append(hidden, fmt.Sprintf("%d above", start))
		}
		if end < len(vis) {
			hidden = append(hidden, fmt.Sprintf("%d below", len(vis)-end))
		}
		out = append(out, m.th.dim.Render(fmt.Sprintf("  … %s (%d VMs%s)",
			strings.Join(hidden, ", "), len(vis), filteredNote(len(vis), len(m.vms)))))
	}
	return out
}

func filteredNote(shown, all int) string {
	if shown == all {
		return ""
	}
	return fmt.Sprintf(" of %d", all)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (m *Model) stateCell(vm api.VM) string {
	if op := m.ops[vm.Name]; op != "" {
		return m.spinnerView() + " " + m.th.accent.Render(op+"…")
	}
	s := string(vm.State)
	switch vm.State {
	case api.VMRunning:
		return m.th.ok.Render(s)
	case api.VMError:
		return m.th.bad.Render(s)
	case api.VMStarting, api.VMStopping, api.VMSuspended:
		return m.th.warn.Render(s)
	default:
		return m.th.dim.Render(s)
	}
}

func (m *Model) healthCell(vm api.VM) string {
	if vm.State != api.VMRunning {
		return m.th.dim.Render("-")
	}
	h, ok := m.health[vm.Name]
	switch {
	case !ok:
		return m.th.dim.Render("…")
	case h.err == nil && h.res.Healthy:
		return m.th.ok.Render("healthy")
	default:
		return m.th.bad.Render("unhealthy")
	}
}

func (m *Model) renderImages(w, h int) []string {
	title := m.th.header.Render("Images")
	switch {
	case m.daemon.state == stateFailed:
		return []string{title + m.th.dim.Render("  unavailable until the daemon is reachable")}
	case m.daemon.state == statePending || m.imgStage.state == statePending:
		return []string{title + "  " + m.spinnerView() + m.th.dim.Render(" loading…")}
	case m.imgStage.state == stateFailed:
		return []string{title + "  " + m.th.bad.Render("could not be listed: "+m.imgStage.err.Error())}
	case len(m.images) == 0:
		return []string{title + "  none yet — build one: banger image build --name debian"}
	}
	// The image pane gets a bounded share of the screen; the VM table matters more.
	maxRows := max(1, min(len(m.images), (h-12)/3))
	nameW := 4
	for _, img := range m.images {
		nameW = max(nameW, ansi.StringWidth(img.Name))
	}
	cols := []column{
		{title: "NAME", width: min(nameW, 24), cell: nil},
		{title: "DISTRO", width: 7, drop: 2},
		{title: "SUITE", width: 10, drop: 4},
		{title: "SIZE", width: 5, right: true, drop: 3},
		{title: "KERNEL", width: 16, drop: 6},
		{title: "CREATED", width: 10, drop: 5},
	}
	cell := map[string]func(api.Image) string{
		"NAME":    func(i api.Image) string { return i.Name },
		"DISTRO":  func(i api.Image) string { return i.Distro },
		"SUITE":   func(i api.Image) string { return orDash(i.Suite) },
		"SIZE":    func(i api.Image) string { return humanBytes(i.SizeBytes) },
		"KERNEL":  func(i api.Image) string { return orDash(i.KernelVersion) },
		"CREATED": func(i api.Image) string { return i.CreatedAt.UTC().Format(time.DateOnly) },
	}
	cols = fitColumns(cols, w)
	hdr := make([]string, len(cols))
	for i, c := range cols {
		hdr[i] = fit(c.title, c.width, c.right)
	}
	out := []string{title + m.th.dim.Render(fmt.Sprintf("  %d", len(m.images))), m.th.header.Render("  " + strings.Join(hdr, "  "))}
	for i, img := range m.images {
		if i == maxRows {
			out = append(out, m.th.dim.Render(fmt.Sprintf("  … %d more (banger image list)", len(m.images)-maxRows)))
			break
		}
		cells := make([]string, len(cols))
		for j, c := range cols {
			cells[j] = fit(cell[c.title](img), c.width, c.right)
		}
		out = append(out, "  "+strings.Join(cells, "  "))
	}
	return out
}

func (m *Model) renderDetails(w int) []string {
	vm, ok := m.selectedVM()
	if !ok {
		return []string{m.th.dim.Render("no VM selected")}
	}
	kv := func(k, v string) string { return m.th.dim.Render(fmt.Sprintf("  %-9s ", k)) + v }
	out := []string{m.th.header.Render("VM "+vm.Name) + m.th.dim.Render("  (esc closes)")}
	state := string(vm.State)
	if vm.VMM != "" {
		state += " on " + vm.VMM
	}
	if vm.PID > 0 {
		state += fmt.Sprintf(", pid %d", vm.PID)
	}
	out = append(out, kv("id", vm.ID), kv("state", state))
	net := orDash(vm.IP)
	if vm.IP != "" {
		net += "  " + vm.Name + ".vm"
	}
	if vm.MAC != "" {
		net += "  mac " + vm.MAC
	}
	if vm.Tap != "" {
		net += "  tap " + vm.Tap
	}
	out = append(out, kv("network", net),
		kv("size", fmt.Sprintf("%d vCPU, %s RAM, work disk %s (%s allocated on host)",
			vm.VCPUs, humanBytes(int64(vm.MemoryMiB)<<20), humanBytes(vm.DiskBytes), humanBytes(vm.DiskAllocatedBytes))),
		kv("image", vm.Image),
		kv("created", vm.CreatedAt.UTC().Format(time.RFC3339)))
	if vm.StartedAt != nil && vm.State == api.VMRunning {
		out = append(out, kv("started", vm.StartedAt.UTC().Format(time.RFC3339)+" (up "+formatDuration(m.now().Sub(*vm.StartedAt))+")"))
	}
	if h, ok := m.health[vm.Name]; ok && vm.State == api.VMRunning {
		out = append(out, kv("health", m.healthDetail(h)))
	}
	if vm.LastError != "" {
		out = append(out, kv("error", m.th.bad.Render(vm.LastError)))
	}
	if len(vm.Forwards) > 0 {
		var ports []string
		for _, f := range vm.Forwards {
			p := fmt.Sprintf("%s->%d", hostPort(f.HostAddr, f.HostPort), f.GuestPort)
			if f.Auto {
				p += " (auto)"
			}
			if f.Error != "" {
				p = m.th.bad.Render(p + " failed: " + f.Error)
			}
			ports = append(ports, p)
		}
		out = append(out, kv("ports", strings.Join(ports, ", ")))
	}
	if vm.State == api.VMRunning {
		out = append(out, kv("ssh", "x here, or: banger vm ssh "+vm.Name))
		out = append(out, kv("exec", "e here, or: banger vm exec "+vm.Name+" -- COMMAND"))
	}
	return out
}

// renderExec is the `e` pane: the command line being typed, then the
// command's output (its last lines that fit), made safe to print: it is the
// guest's.
func (m *Model) renderExec(w, h int) []string {
	if m.mode == modeExec {
		return []string{m.th.header.Render("run in " + m.execVM), "  $ " + m.execLine + "▏"}
	}
	if m.execRunning {
		return []string{m.th.header.Render("run in " + m.execVM), m.th.dim.Render("  running…")}
	}
	r := m.execResult
	title := fmt.Sprintf("%s: $ %s", r.name, r.command)
	if r.err == nil {
		title += fmt.Sprintf("  (exit %d)", r.res.Code)
	}
	out := []string{m.th.header.Render(clip(title, w)) + m.th.dim.Render("  (esc closes)")}
	text := strings.TrimRight(termsafe.String(string(r.res.Output)), "\n")
	if r.err != nil {
		text = m.th.bad.Render(r.err.Error())
	}
	lines := strings.Split(strings.ReplaceAll(text, "\t", "    "), "\n")
	if r.res.Truncated {
		lines = append([]string{m.th.dim.Render("(earlier output dropped)")}, lines...)
	}
	// The newest lines matter most: keep the end when the pane is short.
	room := max(h/2, 3)
	if len(lines) > room {
		lines = lines[len(lines)-room:]
	}
	for _, l := range lines {
		out = append(out, "  "+clip(l, w-2))
	}
	return out
}

func (m *Model) healthDetail(h healthEntry) string {
	if h.err != nil {
		return m.th.bad.Render("check failed: " + h.err.Error())
	}
	if !h.res.Healthy {
		return m.th.bad.Render("unhealthy: " + orDash(h.res.Error))
	}
	s := m.th.ok.Render("healthy")
	if a := h.res.Agent; a != nil {
		s += fmt.Sprintf(", agent %s", a.Version)
		if !a.WorkDiskMounted {
			s += ", " + m.th.warn.Render("/root work disk NOT mounted")
		}
	}
	if h.res.RTTMillis > 0 {
		s += fmt.Sprintf(", rtt %.1fms", h.res.RTTMillis)
	}
	return s
}

func (m *Model) renderForm(w int) []string {
	f := &m.form
	out := []string{m.th.header.Render("Create VM") + "  " + m.help.ShortHelpView(
		[]key.Binding{formKeys.Next, formKeys.Submit, formKeys.Cancel})}
	for i := range numFields {
		marker := "  "
		if i == f.focus {
			marker = "› "
		}
		out = append(out, marker+fmt.Sprintf("%-7s ", fieldLabels[i])+f.inputs[i].View())
		if f.errs[i] != "" {
			// Own line(s) under the field: the rules are long and must be read.
			for _, l := range wrap("✗ "+f.errs[i], w-10, 2) {
				out = append(out, "          "+m.th.bad.Render(l))
			}
		}
	}
	return out
}

func (m *Model) renderHelp() []string {
	out := []string{m.th.header.Render("Keys") + m.th.dim.Render("  any key closes")}
	for _, l := range strings.Split(m.help.FullHelpView(keys.FullHelp()), "\n") {
		out = append(out, "  "+l)
	}
	return out
}

// renderStatus is the bottom line: the last message (or a prompt) on the
// left, the bootstrap stage timings on the right; a daemon hint goes on a
// second line.
func (m *Model) renderStatus(w int) []string {
	var left string
	switch {
	case m.mode == modeConfirmDelete:
		left = m.th.warn.Render(fmt.Sprintf("delete %s and its disks? y/n", m.confirm))
	case m.mode == modeFilter:
		left = "filter: type to narrow · " + m.help.ShortHelpView([]key.Binding{filterKeys.Keep, filterKeys.Clear})
	case m.mode == modeExec:
		left = "run in " + m.execVM + ": enter runs it · esc cancels"
	case m.status != "":
		st := lipgloss.NewStyle()
		switch m.statusLevel {
		case levelError:
			st = m.th.bad
		case levelOK:
			st = m.th.ok
		}
		prefix := ""
		if len(m.ops) > 0 && m.statusLevel == levelInfo && strings.HasSuffix(m.status, "…") {
			prefix = m.spinnerView() + " "
		}
		left = prefix + st.Render(m.status)
	}
	right := m.th.dim.Render(m.stageTimes())
	gap := w - ansi.StringWidth(left) - ansi.StringWidth(right)
	var line string
	if gap >= 2 {
		line = left + strings.Repeat(" ", gap) + right
	} else {
		line = clip(left, w)
	}
	out := []string{line}
	if m.statusHint != "" {
		out = append(out, m.th.dim.Render("hint: ")+m.statusHint)
	}
	return out
}

func (m *Model) stageTimes() string {
	one := func(name string, s stage) string {
		switch s.state {
		case statePending:
			return name + " …"
		case stateFailed:
			return name + " failed " + formatStageTime(s.took)
		default:
			return name + " " + formatStageTime(s.took)
		}
	}
	parts := []string{one("daemon", m.daemon)}
	if m.daemon.state == stateDone {
		parts = append(parts, one("vms", m.vmStage), one("images", m.imgStage))
	}
	return strings.Join(parts, " · ")
}

// hostPort is addr:port, [addr]:port for IPv6 (net.JoinHostPort: the
// detail pane's local "net" variable shadows the package).
func hostPort(addr string, port int) string {
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}
