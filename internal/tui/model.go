package tui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/spinner"
	tea "charm.land/bubbletea/v2"

	"github.com/banger-dev/banger/internal/api"
)

// loadState is the state of one bootstrap stage (daemon, vms, images, host).
type loadState int

const (
	statePending loadState = iota
	stateDone
	stateFailed
)

type stage struct {
	state loadState
	took  time.Duration // duration of the first successful (or failed) attempt
	err   error
}

type healthEntry struct {
	res api.VMHealthResult
	err error
	at  time.Time
}

type statusLevel int

const (
	levelInfo statusLevel = iota
	levelOK
	levelError
)

// Model is the TUI state. It is a plain Bubble Tea model: tests drive it with
// messages and read View() without a terminal.
type Model struct {
	// ctx is Run's context: commands run after Update returns, so they take
	// it from the model rather than from a caller.
	ctx     context.Context
	backend Backend
	now     func() time.Time
	poll    time.Duration
	timeout time.Duration
	version string
	th      theme

	width, height int

	daemon, vmStage, imgStage, hostStage stage

	vms    []api.VM // sorted by name
	images []api.Image
	host   api.HostResources

	health         map[string]healthEntry
	healthInFlight string            // name of the VM whose health is being fetched
	ops            map[string]string // VM name -> "starting", "stopping", ...
	vmsInFlight    bool
	polling        bool

	selected string // name of the selected VM; survives refreshes and filtering
	cursor   int    // index into visible()
	filter   string
	mode     mode
	details  bool
	form     createForm
	help     help.Model // renders key help from the key map (keymap.go)
	confirm  string     // VM name awaiting delete confirmation
	// exec: the command line being typed (modeExec), then the result shown
	// in the lower pane until esc.
	execVM, execLine string
	execRunning      bool
	execResult       *execDoneMsg

	status      string
	statusHint  string
	statusLevel statusLevel
	errSource   string // "vms", "images" or "host" when a refresh failed

	spin     spinner.Model
	spinning bool
}

type mode int

const (
	modeNormal mode = iota
	modeFilter
	modeConfirmDelete
	modeForm
	modeHelp
	modeExec
)

// Messages produced by commands.
type (
	connectedMsg struct {
		err  error
		took time.Duration
	}
	vmsMsg struct {
		vms  []api.VM
		err  error
		took time.Duration
	}
	imagesMsg struct {
		images []api.Image
		err    error
		took   time.Duration
	}
	hostMsg struct {
		host api.HostResources
		err  error
		took time.Duration
	}
	healthMsg struct {
		name     string
		res      api.VMHealthResult
		err      error
		afterSSH bool
	}
	opDoneMsg struct {
		name, op string
		err      error
	}
	sshDoneMsg struct {
		name string
		err  error
	}
	pollMsg     struct{}
	execDoneMsg struct {
		name, command string
		res           ExecResult
		err           error
	}
)

// New builds the model. Nothing contacts the daemon until the program runs
// Init's command.
func New(ctx context.Context, b Backend, opts Options) *Model {
	m := &Model{
		ctx:     ctx,
		backend: b,
		now:     opts.Now,
		poll:    opts.Poll,
		timeout: opts.CallTimeout,
		version: opts.Version,
		th:      newTheme(opts.NoColor),
		help:    newHelp(newTheme(opts.NoColor)),
		width:   80,
		height:  24,
		health:  map[string]healthEntry{},
		ops:     map[string]string{},
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.poll <= 0 {
		m.poll = defaultPoll
	}
	if m.timeout <= 0 {
		m.timeout = defaultCallTimeout
	}
	if m.version == "" {
		m.version = "dev"
	}
	m.spin = spinner.New(spinner.WithSpinner(spinner.MiniDot), spinner.WithStyle(m.th.accent))
	return m
}

// Init starts the daemon bootstrap after the first frame is drawn.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.connectCmd(), m.startSpinner())
}

// timed runs f and measures it with the model's clock.
func timed(now func() time.Time, f func()) time.Duration {
	t0 := now()
	f()
	return now().Sub(t0)
}

func (m *Model) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(m.ctx, m.timeout)
}

func (m *Model) connectCmd() tea.Cmd {
	b, now, ctx := m.backend, m.now, m.ctx
	return func() tea.Msg {
		var err error
		took := timed(now, func() { err = b.Connect(ctx) })
		return connectedMsg{err: err, took: took}
	}
}

func (m *Model) listVMsCmd() tea.Cmd {
	m.vmsInFlight = true
	b, now := m.backend, m.now
	ctx, cancel := m.callCtx()
	return func() tea.Msg {
		defer cancel()
		var vms []api.VM
		var err error
		took := timed(now, func() { vms, err = b.ListVMs(ctx) })
		return vmsMsg{vms: vms, err: err, took: took}
	}
}

func (m *Model) listImagesCmd() tea.Cmd {
	b, now := m.backend, m.now
	ctx, cancel := m.callCtx()
	return func() tea.Msg {
		defer cancel()
		var imgs []api.Image
		var err error
		took := timed(now, func() { imgs, err = b.ListImages(ctx) })
		return imagesMsg{images: imgs, err: err, took: took}
	}
}

func (m *Model) hostCmd() tea.Cmd {
	b, now := m.backend, m.now
	ctx, cancel := m.callCtx()
	return func() tea.Msg {
		defer cancel()
		var h api.HostResources
		var err error
		took := timed(now, func() { h, err = b.HostResources(ctx) })
		return hostMsg{host: h, err: err, took: took}
	}
}

func (m *Model) healthCmd(name string, afterSSH bool) tea.Cmd {
	b := m.backend
	ctx, cancel := m.callCtx()
	return func() tea.Msg {
		defer cancel()
		res, err := b.Health(ctx, name)
		return healthMsg{name: name, res: res, err: err, afterSSH: afterSSH}
	}
}

// opCmd runs one lifecycle call. Start, stop and create may take as long as
// a boot, so they get the model's context without the per-call timeout: the
// daemon applies its own deadlines.
func (m *Model) opCmd(name, op string, f func(ctx context.Context) error) tea.Cmd {
	m.ops[name] = op
	ctx := m.ctx
	return tea.Batch(func() tea.Msg {
		return opDoneMsg{name: name, op: op, err: f(ctx)}
	}, m.startSpinner())
}

func (m *Model) pollCmd() tea.Cmd {
	return tea.Tick(m.poll, func(time.Time) tea.Msg { return pollMsg{} })
}

func (m *Model) busy() bool {
	return m.daemon.state == statePending || len(m.ops) > 0 ||
		(m.daemon.state == stateDone && (m.vmStage.state == statePending || m.imgStage.state == statePending))
}

func (m *Model) startSpinner() tea.Cmd {
	if m.spinning {
		return nil
	}
	m.spinning = true
	return m.spin.Tick
}

func (m *Model) setStatus(level statusLevel, msg string) {
	m.status, m.statusHint, m.statusLevel, m.errSource = msg, "", level, ""
}

// setLoadError reports a failed refresh; source lets the next successful
// refresh of the same list clear it instead of leaving a stale error.
func (m *Model) setLoadError(source, prefix string, err error) {
	m.setError(prefix, err)
	m.errSource = source
}

func (m *Model) clearLoadError(source string) {
	if m.statusLevel == levelError && m.errSource == source {
		m.setStatus(levelInfo, "")
	}
}

// setError puts err in the status line, with the daemon's hint on its own.
func (m *Model) setError(prefix string, err error) {
	var ae *api.Error
	if errors.As(err, &ae) {
		m.status, m.statusHint = prefix+ae.Message, ae.Hint
	} else {
		m.status, m.statusHint = prefix+err.Error(), ""
	}
	m.statusLevel = levelError
	m.errSource = ""
}

// visible returns the VMs shown: sorted by name, filtered.
func (m *Model) visible() []api.VM {
	if m.filter == "" {
		return m.vms
	}
	f := strings.ToLower(m.filter)
	out := make([]api.VM, 0, len(m.vms))
	for _, vm := range m.vms {
		if strings.Contains(vm.Name, f) || strings.Contains(strings.ToLower(vm.Image), f) ||
			strings.Contains(vm.IP, f) || strings.Contains(string(vm.State), f) {
			out = append(out, vm)
		}
	}
	return out
}

// selectedVM returns the VM under the cursor.
func (m *Model) selectedVM() (api.VM, bool) {
	vis := m.visible()
	if m.cursor < 0 || m.cursor >= len(vis) {
		return api.VM{}, false
	}
	return vis[m.cursor], true
}

// syncCursor moves the cursor to the selected name after the list changed,
// or keeps it in range when that VM is gone.
func (m *Model) syncCursor() {
	vis := m.visible()
	if i := slices.IndexFunc(vis, func(v api.VM) bool { return v.Name == m.selected }); i >= 0 {
		m.cursor = i
		return
	}
	m.cursor = max(0, min(m.cursor, len(vis)-1))
	if len(vis) > 0 {
		m.selected = vis[m.cursor].Name
	} else {
		m.selected = ""
	}
}

func (m *Model) moveCursor(delta int) {
	vis := m.visible()
	if len(vis) == 0 {
		return
	}
	m.cursor = max(0, min(m.cursor+delta, len(vis)-1))
	m.selected = vis[m.cursor].Name
}

// healthEvery is how old a health result may get before it is polled again.
func (m *Model) healthEvery() time.Duration { return 5 * m.poll }

// nextHealthCmd polls the stalest running VM's health, one VM at a time.
func (m *Model) nextHealthCmd() tea.Cmd {
	if m.healthInFlight != "" {
		return nil
	}
	now := m.now()
	pick := ""
	var oldest time.Time
	for _, vm := range m.vms {
		if vm.State != api.VMRunning {
			continue
		}
		h, ok := m.health[vm.Name]
		if ok && now.Sub(h.at) < m.healthEvery() {
			continue
		}
		if pick == "" || !ok || h.at.Before(oldest) {
			pick, oldest = vm.Name, h.at
			if !ok {
				break
			}
		}
	}
	if pick == "" {
		return nil
	}
	m.healthInFlight = pick
	return m.healthCmd(pick, false)
}

// refreshCmd reloads VMs and host figures (after an operation, or a poll).
func (m *Model) refreshCmd() tea.Cmd {
	if m.vmsInFlight || m.daemon.state != stateDone {
		return nil
	}
	return tea.Batch(m.listVMsCmd(), m.hostCmd())
}

func (m *Model) findVM(name string) (api.VM, bool) {
	i, ok := slices.BinarySearchFunc(m.vms, name, func(v api.VM, n string) int { return strings.Compare(v.Name, n) })
	if !ok {
		return api.VM{}, false
	}
	return m.vms[i], true
}

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		return m, nil
	case spinner.TickMsg:
		if !m.busy() {
			m.spinning = false
			return m, nil
		}
		var cmd tea.Cmd
		m.spin, cmd = m.spin.Update(msg)
		return m, cmd
	case connectedMsg:
		m.daemon = stage{state: stateDone, took: msg.took}
		if msg.err != nil {
			m.daemon = stage{state: stateFailed, took: msg.took, err: msg.err}
			m.setError("cannot reach the daemon: ", msg.err)
			if m.statusHint == "" {
				m.statusHint = "check `banger doctor`, then press R to retry"
			}
			return m, nil
		}
		if m.statusLevel == levelError {
			m.setStatus(levelInfo, "")
		}
		// Three independent loads: whichever returns first is drawn first.
		return m, tea.Batch(m.listVMsCmd(), m.listImagesCmd(), m.hostCmd())
	case vmsMsg:
		return m, m.onVMs(msg)
	case imagesMsg:
		if msg.err != nil {
			if m.imgStage.state != stateDone {
				m.imgStage = stage{state: stateFailed, took: msg.took, err: msg.err}
			}
			m.setLoadError("images", "listing images: ", msg.err)
			return m, nil
		}
		if m.imgStage.state != stateDone {
			m.imgStage = stage{state: stateDone, took: msg.took}
		}
		m.clearLoadError("images")
		m.images = slices.Clone(msg.images)
		if m.images == nil {
			m.images = []api.Image{}
		}
		slices.SortFunc(m.images, func(a, b api.Image) int { return strings.Compare(a.Name, b.Name) })
		return m, nil
	case hostMsg:
		if msg.err != nil {
			if m.hostStage.state != stateDone {
				m.hostStage = stage{state: stateFailed, took: msg.took, err: msg.err}
			}
			m.setLoadError("host", "reading host resources: ", msg.err)
			return m, nil
		}
		m.clearLoadError("host")
		m.host = msg.host
		m.hostStage = stage{state: stateDone, took: msg.took}
		return m, nil
	case healthMsg:
		return m, m.onHealth(msg)
	case pollMsg:
		cmd := m.refreshCmd()
		if cmd != nil {
			cmd = tea.Batch(cmd, m.listImagesCmd())
		}
		return m, tea.Batch(cmd, m.pollCmd())
	case opDoneMsg:
		delete(m.ops, msg.name)
		if msg.err != nil {
			m.setError(fmt.Sprintf("%s %s failed: ", msg.op, msg.name), msg.err)
		} else {
			m.setStatus(levelOK, fmt.Sprintf("%s %s", msg.name, opPast[msg.op]))
			delete(m.health, msg.name) // state changed: health is stale
		}
		return m, m.refreshCmd()
	case sshDoneMsg:
		if msg.err != nil {
			m.setError("ssh "+msg.name+": ", msg.err)
		}
		// Whatever ssh did, tell the user the VM keeps running.
		return m, m.healthCmd(msg.name, true)
	case execDoneMsg:
		m.execRunning = false
		m.execResult = &msg
		if msg.err != nil {
			m.setError("exec in "+msg.name+": ", msg.err)
		} else {
			m.setStatus(levelInfo, fmt.Sprintf("%s in %s: exit %d (esc closes the output)", msg.command, msg.name, msg.res.Code))
		}
		return m, nil
	case tea.KeyPressMsg:
		return m, m.onKey(msg)
	}
	return m, nil
}

var opPast = map[string]string{
	"starting":   "started",
	"stopping":   "stopped",
	"restarting": "restarted",
	"deleting":   "deleted",
	"creating":   "created",
}

func (m *Model) onVMs(msg vmsMsg) tea.Cmd {
	m.vmsInFlight = false
	var poll tea.Cmd
	if !m.polling {
		// The first answer, good or bad, starts the refresh loop: a failed
		// list is retried at the next poll.
		m.polling = true
		poll = m.pollCmd()
	}
	if msg.err != nil {
		if m.vmStage.state != stateDone {
			m.vmStage = stage{state: stateFailed, took: msg.took, err: msg.err}
		}
		m.setLoadError("vms", "listing VMs: ", msg.err)
		return poll
	}
	if m.vmStage.state != stateDone {
		m.vmStage = stage{state: stateDone, took: msg.took}
	}
	m.clearLoadError("vms")
	m.vms = slices.Clone(msg.vms)
	if m.vms == nil {
		m.vms = []api.VM{}
	}
	slices.SortFunc(m.vms, func(a, b api.VM) int { return strings.Compare(a.Name, b.Name) })
	// Forget health of VMs that are gone or no longer running.
	for name := range m.health {
		if vm, ok := m.findVM(name); !ok || vm.State != api.VMRunning {
			delete(m.health, name)
		}
	}
	m.syncCursor()
	return tea.Batch(m.nextHealthCmd(), poll)
}

func (m *Model) onHealth(msg healthMsg) tea.Cmd {
	if m.healthInFlight == msg.name && !msg.afterSSH {
		m.healthInFlight = ""
	}
	m.health[msg.name] = healthEntry{res: msg.res, err: msg.err, at: m.now()}
	if msg.afterSSH {
		m.sshReminder(msg)
		return m.refreshCmd()
	}
	return m.nextHealthCmd()
}

// sshReminder tells the user, after ssh returns, that the VM keeps running.
func (m *Model) sshReminder(msg healthMsg) {
	if msg.err != nil {
		m.setError(fmt.Sprintf("%s: health check after ssh failed: ", msg.name), msg.err)
		return
	}
	if msg.res.State != "" && msg.res.State != api.VMRunning {
		m.setStatus(levelInfo, fmt.Sprintf("%s is %s", msg.name, msg.res.State))
		return
	}
	var parts []string
	if msg.res.Healthy {
		parts = append(parts, "healthy")
	} else if msg.res.Error != "" {
		parts = append(parts, "unhealthy: "+msg.res.Error)
	} else {
		parts = append(parts, "unhealthy")
	}
	if up := m.uptime(msg.name, msg.res); up != "" {
		parts = append(parts, "up "+up)
	}
	m.setStatus(levelInfo, fmt.Sprintf("%s is still running (%s) — s to stop", msg.name, strings.Join(parts, ", ")))
}

// uptime prefers the daemon's start time, else the agent's uptime.
func (m *Model) uptime(name string, res api.VMHealthResult) string {
	if vm, ok := m.findVM(name); ok && vm.StartedAt != nil {
		return formatDuration(m.now().Sub(*vm.StartedAt))
	}
	if res.Agent != nil && res.Agent.UptimeSeconds > 0 {
		return formatDuration(time.Duration(res.Agent.UptimeSeconds * float64(time.Second)))
	}
	return ""
}
