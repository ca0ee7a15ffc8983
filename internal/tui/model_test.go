package tui

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/banger-dev/banger/internal/api"
)

func isMsg[T any](msg tea.Msg) bool { _, ok := msg.(T); return ok }

// The first frame is complete before the daemon is contacted: Init only
// returns a command, and Connect runs when that command runs.
func TestFirstFrameBeforeConnect(t *testing.T) {
	fb := &fakeBackend{}
	h := newHarness(t, fb, nil)
	cmd := h.m.Init()
	out := h.m.Render()
	for _, want := range []string{"banger v0.1.0", "connecting…", "capacity", "VMs", "loading…", "Images", "daemon …"} {
		if !strings.Contains(out, want) {
			t.Errorf("first frame lacks %q:\n%s", want, out)
		}
	}
	if calls := fb.Calls(); len(calls) != 0 {
		t.Fatalf("backend called before the first command ran: %v", calls)
	}
	h.run(cmd)
	h.until("connected", isMsg[connectedMsg])
	if calls := fb.Calls(); len(calls) != 1 || calls[0] != "Connect" {
		t.Errorf("calls after Init's command = %v, want [Connect]", calls)
	}
}

// VMs are drawn while the image list is still loading.
func TestVMsRenderWhileImagesLoad(t *testing.T) {
	fb := &fakeBackend{vms: sampleVMs(), images: sampleImages(), host: sampleHost(), imagesGate: make(chan struct{})}
	h := newHarness(t, fb, nil)
	h.run(h.m.Init())
	h.until("VM list", isMsg[vmsMsg])
	out := h.m.Render()
	if !strings.Contains(out, "api-server") || !strings.Contains(out, "scratch") {
		t.Errorf("VMs not drawn after the VM list arrived:\n%s", out)
	}
	if !strings.Contains(out, "Images  ⠋ loading…") || strings.Contains(out, "void-musl  void") {
		t.Errorf("image pane should still be loading:\n%s", out)
	}
	if !strings.Contains(out, "images …") {
		t.Errorf("status line should show the images stage pending:\n%s", out)
	}
	close(fb.imagesGate)
	h.until("image list", isMsg[imagesMsg])
	if out := h.m.Render(); !strings.Contains(out, "void-musl  void") {
		t.Errorf("images not drawn after they arrived:\n%s", out)
	}
}

// Images are drawn while the VM list is still loading.
func TestImagesRenderWhileVMsLoad(t *testing.T) {
	fb := &fakeBackend{vms: sampleVMs(), images: sampleImages(), host: sampleHost(), vmsGate: make(chan struct{})}
	h := newHarness(t, fb, nil)
	h.run(h.m.Init())
	h.until("image list", isMsg[imagesMsg])
	out := h.m.Render()
	if !strings.Contains(out, "void-musl  void") {
		t.Errorf("images not drawn after they arrived:\n%s", out)
	}
	if !strings.Contains(out, "VMs ⠋ loading…") || strings.Contains(out, "api-server") {
		t.Errorf("VM table should still be loading:\n%s", out)
	}
	close(fb.vmsGate)
	h.until("VM list", isMsg[vmsMsg])
	if out := h.m.Render(); !strings.Contains(out, "api-server") {
		t.Errorf("VMs not drawn after they arrived:\n%s", out)
	}
}

// Stage durations in the status line are the ones measured with the
// injected clock around each backend call.
func TestStageTimingsFromClock(t *testing.T) {
	clock := newClock()
	fb := &fakeBackend{clock: clock, vms: sampleVMs(), images: sampleImages(), host: sampleHost(),
		connectTook: 1234 * time.Millisecond, vmsTook: 8 * time.Millisecond, imagesTook: 31 * time.Millisecond}
	h := newHarness(t, fb, clock)
	msgs := runSync(h.m.Init())
	if len(msgs) != 1 || !isMsg[connectedMsg](msgs[0]) {
		t.Fatalf("Init produced %#v, want one connectedMsg", msgs)
	}
	if got := h.m.stageTimes(); got != "daemon …" {
		t.Errorf("before Connect returns: %q", got)
	}
	_, cmd := h.m.Update(msgs[0])
	if got := h.m.stageTimes(); got != "daemon 1.2s · vms … · images …" {
		t.Errorf("after Connect: %q", got)
	}
	for _, msg := range runSync(cmd) {
		h.m.Update(msg)
	}
	want := "daemon 1.2s · vms 8ms · images 31ms"
	if got := h.m.stageTimes(); got != want {
		t.Errorf("stage times = %q, want %q", got, want)
	}
	if out := h.m.Render(); !strings.Contains(out, want) {
		t.Errorf("status line lacks %q:\n%s", want, out)
	}
}

func TestConnectErrorShowsHintAndRetries(t *testing.T) {
	fb := &fakeBackend{connectErr: &api.Error{Code: api.CodeFailedPrecondition, Message: "bangerd exited: bad config", Hint: "fix ~/.config/banger/config.toml"}}
	h := newHarness(t, fb, nil)
	h.run(h.m.Init())
	h.until("connect failure", isMsg[connectedMsg])
	out := h.m.Render()
	for _, want := range []string{"cannot reach the daemon: bangerd exited: bad config", "hint: fix ~/.config/banger/config.toml", "daemon unreachable"} {
		if !strings.Contains(out, want) {
			t.Errorf("render lacks %q:\n%s", want, out)
		}
	}
	if fb.called("ListVMs") || fb.called("ListImages") {
		t.Error("lists requested although Connect failed")
	}
	// R retries; this time the daemon is up.
	fb.mu.Lock()
	fb.connectErr = nil
	fb.mu.Unlock()
	_, cmd := h.m.Update(keyPress("R"))
	h.run(cmd)
	h.until("VM list", isMsg[vmsMsg])
	if out := h.m.Render(); strings.Contains(out, "cannot reach") || !strings.Contains(out, "daemon connected") {
		t.Errorf("after a successful retry:\n%s", out)
	}
}

// Health is polled for running VMs only, one call at a time.
func TestHealthPolledOneAtATime(t *testing.T) {
	clock := newClock()
	fb := &fakeBackend{vms: sampleVMs(), images: sampleImages(), host: sampleHost(), health: map[string]api.VMHealthResult{
		"dev": {Name: "dev", State: api.VMRunning, Healthy: true},
		"web": {Name: "web", State: api.VMRunning, Healthy: true},
	}}
	h := newHarness(t, fb, clock)
	h.run(h.m.Init())
	h.until("VM list", isMsg[vmsMsg])
	if h.m.healthInFlight == "" {
		t.Fatal("no health check started after the VM list arrived")
	}
	seen := map[string]bool{}
	for range 3 { // api-server, dev, web are running
		msg := h.until("health", isMsg[healthMsg]).(healthMsg)
		seen[msg.name] = true
	}
	for _, name := range []string{"api-server", "dev", "web"} {
		if !seen[name] {
			t.Errorf("no health check of running VM %s (saw %v)", name, seen)
		}
	}
	if fb.called("Health scratch") || fb.called("Health broken") {
		t.Errorf("health checked on a VM that is not running: %v", fb.Calls())
	}
	if h.m.healthInFlight != "" {
		t.Errorf("health still in flight for %q although every VM is fresh", h.m.healthInFlight)
	}
	// Not every refresh: fresh results are not polled again...
	h.m.Update(vmsMsg{vms: sampleVMs()})
	if h.m.healthInFlight != "" {
		t.Errorf("fresh health polled again at once")
	}
	// ...but stale ones are.
	clock.Advance(h.m.healthEvery())
	h.m.Update(vmsMsg{vms: sampleVMs()})
	if h.m.healthInFlight == "" {
		t.Errorf("stale health not polled again")
	}
	out := h.m.Render()
	if !strings.Contains(out, "unhealthy") || !strings.Contains(out, "healthy") {
		t.Errorf("health column:\n%s", out)
	}
}

func TestFilter(t *testing.T) {
	m := populated(120, 30, true)
	m.Update(keyPress("/"))
	typeText(m, "sc")
	if vis := names(m.visible()); !slices.Equal(vis, []string{"scratch"}) {
		t.Errorf("filter sc: visible %v", vis)
	}
	out := m.Render()
	if strings.Contains(out, "api-server ") || !strings.Contains(out, "filter: sc") {
		t.Errorf("filtered view:\n%s", out)
	}
	if vm, _ := m.selectedVM(); vm.Name != "scratch" {
		t.Errorf("selection = %q, want the only match", vm.Name)
	}
	m.Update(keyPress("backspace"))
	m.Update(keyPress("backspace"))
	typeText(m, "zzz")
	if out := m.Render(); !strings.Contains(out, `No VM matches "zzz"`) {
		t.Errorf("no-match message missing:\n%s", out)
	}
	m.Update(keyPress("esc"))
	if m.filter != "" || m.mode != modeNormal || len(m.visible()) != len(sampleVMs()) {
		t.Errorf("esc did not clear the filter: %q mode %v visible %d", m.filter, m.mode, len(m.visible()))
	}
	// enter keeps the filter; esc in normal mode clears it.
	m.Update(keyPress("/"))
	typeText(m, "web")
	m.Update(keyPress("enter"))
	if m.filter != "web" || m.mode != modeNormal {
		t.Fatalf("enter: filter %q mode %v", m.filter, m.mode)
	}
	// While filtering, letters are text, not commands.
	if m.ops["web"] != "" {
		t.Error("typing in the filter triggered an action")
	}
	m.Update(keyPress("esc"))
	if m.filter != "" {
		t.Errorf("esc in normal mode kept filter %q", m.filter)
	}
}

func TestNavigationSortedByName(t *testing.T) {
	m := populated(120, 30, true)
	want := []string{"api-server", "broken", "ci-runner-with-a-very-long-name", "dev", "scratch", "web"}
	if got := names(m.visible()); !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	m.Update(keyPress("j"))
	m.Update(keyPress("down"))
	m.Update(keyPress("k"))
	if vm, _ := m.selectedVM(); vm.Name != "broken" {
		t.Errorf("after j, down, k: selected %q", vm.Name)
	}
	// The selection follows the VM across a refresh that inserts one above.
	vms := append(sampleVMs(), api.VM{Name: "aaa", State: api.VMStopped})
	m.Update(vmsMsg{vms: vms})
	if vm, _ := m.selectedVM(); vm.Name != "broken" {
		t.Errorf("after refresh: selected %q", vm.Name)
	}
}

func TestDeleteConfirmation(t *testing.T) {
	fb := &fakeBackend{}
	m := populated(120, 30, true)
	m.backend = fb
	m.Update(keyPress("j")) // broken
	m.Update(keyPress("d"))
	if out := m.Render(); !strings.Contains(out, "delete broken and its disks? y/n") {
		t.Fatalf("no confirmation prompt:\n%s", out)
	}
	_, cmd := m.Update(keyPress("n"))
	if cmd != nil {
		runSync(cmd)
	}
	if fb.called("DeleteVM broken") {
		t.Fatal("n deleted the VM")
	}
	if !strings.Contains(m.Render(), "delete of broken cancelled") {
		t.Errorf("no cancel message:\n%s", m.Render())
	}
	m.Update(keyPress("d"))
	_, cmd = m.Update(keyPress("y"))
	if m.ops["broken"] != "deleting" || !strings.Contains(m.Render(), "deleting…") {
		t.Errorf("no in-progress marker after y:\n%s", m.Render())
	}
	msgs := runSync(cmd)
	if !fb.called("DeleteVM broken") {
		t.Fatalf("y did not call DeleteVM: %v", fb.Calls())
	}
	for _, msg := range msgs {
		m.Update(msg)
	}
	if _, busy := m.ops["broken"]; busy || !strings.Contains(m.Render(), "broken deleted") {
		t.Errorf("after delete finished:\n%s", m.Render())
	}
}

func TestDeleteFailureGoesToStatusLine(t *testing.T) {
	fb := &fakeBackend{opErr: &api.Error{Code: api.CodeConflict, Message: "dev is running", Hint: "banger vm stop dev"}}
	m := populated(120, 30, true)
	m.backend = fb
	m.Update(keyPress("j"))
	m.Update(keyPress("j"))
	m.Update(keyPress("j")) // dev
	m.Update(keyPress("d"))
	_, cmd := m.Update(keyPress("y"))
	for _, msg := range runSync(cmd) {
		m.Update(msg)
	}
	out := m.Render()
	if !strings.Contains(out, "deleting dev failed: dev is running") || !strings.Contains(out, "hint: banger vm stop dev") {
		t.Errorf("error not in status line:\n%s", out)
	}
}

func TestCreateFormValidation(t *testing.T) {
	fb := &fakeBackend{}
	m := populated(120, 30, true)
	m.backend = fb
	m.Update(keyPress("c"))
	typeText(m, "Bad_Name")
	_, cmd := m.Update(keyPress("enter"))
	if cmd != nil {
		runSync(cmd)
	}
	if fb.called("CreateVM Bad_Name") || len(fb.created) != 0 {
		t.Fatal("CreateVM called with an invalid name")
	}
	if m.mode != modeForm || !strings.Contains(m.Render(), `✗ invalid VM name "Bad_Name"`) {
		t.Fatalf("no inline error:\n%s", m.Render())
	}
	// Fix the name, give valid sizes: the request carries them.
	for range len("Bad_Name") {
		m.Update(keyPress("backspace"))
	}
	typeText(m, "dev2")
	m.Update(keyPress("tab"))
	typeText(m, "debian")
	m.Update(keyPress("tab"))
	typeText(m, "4")
	m.Update(keyPress("tab"))
	typeText(m, "1536M")
	m.Update(keyPress("tab"))
	typeText(m, "30G")
	_, cmd = m.Update(keyPress("enter"))
	for _, msg := range runSync(cmd) {
		m.Update(msg)
	}
	if len(fb.created) != 1 {
		t.Fatalf("CreateVM calls: %v", fb.Calls())
	}
	p := fb.created[0]
	if p.Name != "dev2" || *p.Image != "debian" || *p.VCPUs != 4 || *p.MemoryMiB != 1536 || *p.DiskBytes != 30<<30 {
		t.Errorf("params = %+v", p)
	}
	if m.mode != modeNormal || !strings.Contains(m.Render(), "dev2 created") {
		t.Errorf("after create:\n%s", m.Render())
	}
}

func TestCreateFormOmitsEmptyFields(t *testing.T) {
	f := newCreateForm(newTheme(true))
	f.inputs[fieldName].SetValue("dev")
	p, ok := f.validate(nil, api.HostResources{})
	if !ok || p.Image != nil || p.VCPUs != nil || p.MemoryMiB != nil || p.DiskBytes != nil {
		t.Errorf("validate = %+v, %v; want only the name", p, ok)
	}
}

func TestSSHOnStoppedVMExplains(t *testing.T) {
	fb := &fakeBackend{}
	m := populated(120, 30, true)
	m.backend = fb
	m.Update(keyPress("j"))
	m.Update(keyPress("j")) // ci-runner…, stopped
	_, cmd := m.Update(keyPress("x"))
	if cmd != nil {
		t.Error("x on a stopped VM returned a command")
	}
	if fb.called("SSHCommand ci-runner-with-a-very-long-name") {
		t.Error("x on a stopped VM asked for an ssh command")
	}
	if out := m.Render(); !strings.Contains(out, "ci-runner-with-a-very-long-name is stopped — press s to start it, then x to ssh in") {
		t.Errorf("no explanation:\n%s", out)
	}
}

func TestSSHThenReminder(t *testing.T) {
	fb := &fakeBackend{sshCmd: exec.Command("true"), health: map[string]api.VMHealthResult{
		"dev": {Name: "dev", State: api.VMRunning, Healthy: true},
	}}
	m := populated(120, 30, true)
	m.backend = fb
	for range 3 {
		m.Update(keyPress("j")) // dev
	}
	_, cmd := m.Update(keyPress("x"))
	if cmd == nil || !fb.called("SSHCommand dev") {
		t.Fatalf("x on a running VM: cmd %v, calls %v", cmd, fb.Calls())
	}
	// Bubble Tea runs the process and then calls back; simulate its return.
	_, cmd = m.Update(sshDoneMsg{name: "dev"})
	for _, msg := range runSync(cmd) {
		m.Update(msg)
	}
	if !fb.called("Health dev") {
		t.Fatal("no health check after ssh")
	}
	want := "dev is still running (healthy, up 3m) — s to stop"
	if out := m.Render(); !strings.Contains(out, want) {
		t.Errorf("status lacks %q:\n%s", want, out)
	}
}

func TestStartStopToggleAndRestart(t *testing.T) {
	fb := &fakeBackend{}
	m := populated(120, 30, true)
	m.backend = fb
	m.Update(keyPress("j")) // broken (error) -> start
	_, cmd := m.Update(keyPress("s"))
	if m.ops["broken"] != "starting" {
		t.Fatalf("s on an errored VM: ops %v", m.ops)
	}
	// A second action on the same VM waits.
	if _, c := m.Update(keyPress("s")); c != nil {
		t.Error("second s on a busy VM returned a command")
	}
	for _, msg := range runSync(cmd) {
		m.Update(msg)
	}
	m.Update(keyPress("k")) // api-server, running -> stop
	_, cmd = m.Update(keyPress("s"))
	runSync(cmd)
	m.Update(keyPress("j"))
	m.Update(keyPress("j"))
	m.Update(keyPress("j")) // dev: running -> restart
	_, cmd = m.Update(keyPress("r"))
	runSync(cmd)
	for _, c := range []string{"StartVM broken", "StopVM api-server", "RestartVM dev"} {
		if !fb.called(c) {
			t.Errorf("%s not called: %v", c, fb.Calls())
		}
	}
}

func TestSuspendResumeSnapshotKeys(t *testing.T) {
	fb := &fakeBackend{}
	m := populated(120, 30, true)
	m.backend = fb
	// The first row (api-server) runs: z suspends it, n snapshots it.
	_, cmd := m.Update(keyPress("z"))
	if m.ops["api-server"] != "suspending" {
		t.Fatalf("z on a running VM: ops %v", m.ops)
	}
	for _, msg := range runSync(cmd) {
		m.Update(msg)
	}
	_, cmd = m.Update(keyPress("n"))
	for _, msg := range runSync(cmd) {
		m.Update(msg)
	}
	for _, c := range []string{"SuspendVM api-server", "SnapshotVM api-server"} {
		if !fb.called(c) {
			t.Errorf("%s not called: %v", c, fb.Calls())
		}
	}
	// A suspended VM: z and s resume it.
	m.vms[0].State = api.VMSuspended
	_, cmd = m.Update(keyPress("z"))
	if m.ops["api-server"] != "resuming" {
		t.Fatalf("z on a suspended VM: ops %v", m.ops)
	}
	runSync(cmd)
	if !fb.called("ResumeVM api-server") {
		t.Errorf("ResumeVM not called: %v", fb.Calls())
	}
}

func TestOpErrorDoesNotCrash(t *testing.T) {
	m := populated(80, 24, true)
	m.backend = &fakeBackend{opErr: errors.New("qemu-system-x86_64 exited with status 1")}
	m.Update(keyPress("j"))
	_, cmd := m.Update(keyPress("s"))
	for _, msg := range runSync(cmd) {
		m.Update(msg)
	}
	if out := m.Render(); !strings.Contains(out, "starting broken failed: qemu-system") {
		t.Errorf("error not shown:\n%s", out)
	}
}

func TestQuitKeys(t *testing.T) {
	for _, k := range []string{"q", "ctrl+c"} {
		m := populated(80, 24, true)
		_, cmd := m.Update(keyPress(k))
		if cmd == nil || !isMsg[tea.QuitMsg](cmd()) {
			t.Errorf("%s did not quit", k)
		}
	}
	// q inside the filter is text.
	m := populated(80, 24, true)
	m.Update(keyPress("/"))
	if _, cmd := m.Update(keyPress("q")); cmd != nil {
		t.Error("q in the filter quit")
	}
}

func names(vms []api.VM) []string {
	out := make([]string, len(vms))
	for i, v := range vms {
		out[i] = v.Name
	}
	return out
}

// A failed refresh keeps the last list on screen and says why; the next
// good refresh clears the error. A failed first load recovers the same way.
func TestRefreshErrorKeepsListAndRecovers(t *testing.T) {
	m := populated(120, 30, true)
	m.Update(vmsMsg{err: &api.Error{Code: api.CodeInternal, Message: "database is locked", Hint: "retry"}})
	out := m.Render()
	if !strings.Contains(out, "listing VMs: database is locked") || !strings.Contains(out, "api-server") {
		t.Errorf("after a failed refresh:\n%s", out)
	}
	m.Update(vmsMsg{vms: sampleVMs()})
	if out := m.Render(); strings.Contains(out, "database is locked") {
		t.Errorf("error not cleared by a good refresh:\n%s", out)
	}

	m = newStatic(120, 30, true)
	m.Update(connectedMsg{took: time.Millisecond})
	_, cmd := m.Update(vmsMsg{err: errors.New("connection reset"), took: 3 * time.Millisecond})
	if cmd == nil {
		t.Fatal("a failed first load scheduled no retry")
	}
	if out := m.Render(); !strings.Contains(out, "VMs could not be listed: connection reset") {
		t.Errorf("failed first load:\n%s", out)
	}
	m.Update(vmsMsg{vms: sampleVMs(), took: 4 * time.Millisecond})
	if out := m.Render(); !strings.Contains(out, "api-server") || strings.Contains(out, "could not be listed") {
		t.Errorf("after the retry succeeded:\n%s", out)
	}
}

// e runs a command in the selected VM and shows its output, made safe to
// print, until esc; the details pane lists the VM's forwarded ports.
func TestExecPaneAndPorts(t *testing.T) {
	fb := &fakeBackend{execRes: ExecResult{Output: []byte("Linux dev\n\x1b]0;pwned\x07done\n"), Code: 3}}
	m := populated(120, 30, true)
	m.backend = fb
	for range 3 {
		m.Update(keyPress("j")) // dev, running
	}
	m.Update(keyPress("e"))
	typeText(m, "uname -a")
	if out := m.Render(); !strings.Contains(out, "$ uname -a") {
		t.Fatalf("the command line is not shown:\n%s", out)
	}
	_, cmd := m.Update(keyPress("enter"))
	for _, msg := range runSync(cmd) {
		m.Update(msg)
	}
	if !fb.called("Exec dev uname -a") {
		t.Fatalf("calls %v", fb.Calls())
	}
	out := m.Render()
	if !strings.Contains(out, "dev: $ uname -a  (exit 3)") || !strings.Contains(out, "Linux dev") || !strings.Contains(out, "done") {
		t.Errorf("no output pane:\n%s", out)
	}
	if strings.Contains(out, "pwned") || strings.Contains(out, "\x1b]") {
		t.Errorf("the guest's escape sequence reached the screen:\n%q", out)
	}
	m.Update(keyPress("esc"))
	if strings.Contains(m.Render(), "Linux dev") {
		t.Error("esc did not close the output pane")
	}

	// Ports in the details pane.
	for i := range m.vms {
		if m.vms[i].Name == "dev" {
			m.vms[i].Forwards = []api.ForwardStatus{
				{PortForward: api.PortForward{HostAddr: "127.0.0.1", HostPort: 8080, GuestPort: 80}},
				{PortForward: api.PortForward{HostAddr: "127.0.0.1", HostPort: 3000, GuestPort: 3000}, Auto: true},
			}
		}
	}
	m.Update(keyPress("enter"))
	if out := m.Render(); !strings.Contains(out, "127.0.0.1:8080->80, 127.0.0.1:3000->3000 (auto)") {
		t.Errorf("details pane lacks the forwarded ports:\n%s", out)
	}
}

// C clones the selected VM under the first free NAME-clone name.
func TestCloneKey(t *testing.T) {
	fb := &fakeBackend{}
	m := populated(120, 30, true)
	m.backend = fb
	src := m.vms[0].Name
	_, cmd := m.Update(keyPress("C"))
	if m.ops[src] != "cloning" {
		t.Fatalf("C on %s (%s): ops %v", src, m.vms[0].State, m.ops)
	}
	for _, msg := range runSync(cmd) {
		m.Update(msg)
	}
	if !fb.called("CloneVM " + src + " " + src + "-clone") {
		t.Errorf("CloneVM not called as expected: %v", fb.Calls())
	}
	// With NAME-clone taken, the next free name.
	m.vms = append(m.vms, api.VM{Name: src + "-clone", State: api.VMRunning})
	if got := m.cloneName(src); got != src+"-clone-2" {
		t.Errorf("clone name with %s-clone taken: %s", src, got)
	}
	long := strings.Repeat("a", 63)
	if got := m.cloneName(long); len(got) > 63 || !strings.HasSuffix(got, "-clone") {
		t.Errorf("clone name of a 63-character VM: %q (%d)", got, len(got))
	}
}
