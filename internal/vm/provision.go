package vm

// Provisioning at create time (vm create --provision/--copy/--ready): the
// request is checked before the VM is recorded, kept in the VM's directory
// (provision.json and a copy of each script under provision/), and carried
// out through the guest agent once the agent answers at the first boot:
// copies, then the scripts in order, then the ready check. Each completed
// piece is recorded at once, so a script that succeeded never runs again (a
// daemon restarted mid-way, a start after a failure resumes at the first
// script not done). The ready check runs at every start.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/provision"
	"github.com/banger-dev/banger/internal/store"
	"github.com/banger-dev/banger/internal/tarstream"
	"github.com/banger-dev/banger/internal/termsafe"
)

// Provisioning states (api.VMProvision.State).
const (
	provisionPending = "pending"
	provisionDone    = "done"
	provisionFailed  = "failed"
)

// guestProvisionDir is where the scripts are placed in the guest.
const guestProvisionDir = "/var/lib/banger/provision"

// maxProvisionLog bounds provision.log: output past it is dropped (the
// progress stream still shows it).
const maxProvisionLog = 16 << 20

// lastLinesKept is how many lines of a failed script the error shows.
const lastLinesKept = 20

// provisionRecord is provision.json in the VM's directory.
type provisionRecord struct {
	State      string              `json:"state"`
	Scripts    []provisionScript   `json:"scripts,omitempty"`
	Copies     []api.ProvisionCopy `json:"copies,omitempty"`
	CopiesDone bool                `json:"copies_done,omitempty"`
	Ready      string              `json:"ready,omitempty"`
	Error      string              `json:"error,omitempty"`
}

type provisionScript struct {
	Source string `json:"source"` // the host path it was read from (for messages)
	File   string `json:"file"`   // its copy under provision/, and its name in the guest
	Done   bool   `json:"done,omitempty"`
}

// pendingProvision is a checked request, scripts read, not yet saved.
type pendingProvision struct {
	rec      provisionRecord
	contents [][]byte
}

func provisionRecordPath(f paths.VMFiles) string { return filepath.Join(f.Dir, "provision.json") }
func provisionScriptsDir(f paths.VMFiles) string { return filepath.Join(f.Dir, "provision") }

// ProvisionLogPath is where a VM's provisioning output is kept.
func ProvisionLogPath(f paths.VMFiles) string { return filepath.Join(f.Dir, "provision.log") }

// checkProvision validates the provisioning part of a create request and
// reads the scripts; nil when there is nothing to provision.
func checkProvision(p api.VMCreateParams) (*pendingProvision, error) {
	if len(p.Provision) == 0 && len(p.Copy) == 0 && p.Ready == "" {
		return nil, nil
	}
	spec := provision.Spec{Scripts: p.Provision, Copies: p.Copy, Ready: p.Ready}
	if err := provision.Check(spec); err != nil {
		return nil, api.NewError(api.CodeInvalidArgument, err.Error(), "fix the path or spec; see `banger vm create --help`")
	}
	pp := &pendingProvision{rec: provisionRecord{State: provisionPending, Copies: p.Copy, Ready: p.Ready}}
	for i, src := range p.Provision {
		data, err := provision.ReadScript(src)
		if err != nil {
			return nil, api.NewError(api.CodeInvalidArgument, err.Error(), "")
		}
		pp.contents = append(pp.contents, data)
		pp.rec.Scripts = append(pp.rec.Scripts, provisionScript{
			Source: src, File: fmt.Sprintf("%02d-%s", i+1, safeName(filepath.Base(src))),
		})
	}
	return pp, nil
}

// safeName keeps a script's base name readable in the guest and harmless
// as a file name.
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 || b.Len() > 64 {
		return "script"
	}
	return b.String()
}

// save writes the scripts and the record into the VM's directory.
func (pp *pendingProvision) save(f paths.VMFiles) error {
	dir := provisionScriptsDir(f)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for i, s := range pp.rec.Scripts {
		if err := os.WriteFile(filepath.Join(dir, s.File), pp.contents[i], 0o600); err != nil {
			return err
		}
	}
	return saveRecord(f, &pp.rec)
}

// saveRecord replaces provision.json atomically: a crash leaves the old
// record or the new one.
func saveRecord(f paths.VMFiles, rec *provisionRecord) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	p := provisionRecordPath(f)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// loadRecord reads provision.json; nil when the VM has none.
func loadRecord(f paths.VMFiles) (*provisionRecord, error) {
	data, err := os.ReadFile(provisionRecordPath(f))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec provisionRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", provisionRecordPath(f), err)
	}
	return &rec, nil
}

// provisionStatus is the record as vm show presents it.
func provisionStatus(f paths.VMFiles) *api.VMProvision {
	rec, err := loadRecord(f)
	if err != nil {
		return &api.VMProvision{State: "unreadable", Error: err.Error()}
	}
	if rec == nil {
		return nil
	}
	st := &api.VMProvision{State: rec.State, Copies: len(rec.Copies), CopiesDone: rec.CopiesDone,
		Ready: rec.Ready, Error: rec.Error}
	for _, s := range rec.Scripts {
		st.Scripts = append(st.Scripts, s.Source)
		if s.Done {
			st.ScriptsDone++
		}
	}
	if _, err := os.Stat(ProvisionLogPath(f)); err == nil {
		st.LogPath = ProvisionLogPath(f)
	}
	return st
}

// needsBootWork says whether a start must do more than boot: provisioning
// not yet done, or a ready condition to wait for.
func needsBootWork(rec *provisionRecord) bool {
	return rec != nil && (rec.State != provisionDone || rec.Ready != "")
}

// provisioner carries out a VM's provisioning through its agent.
type provisioner struct {
	vmName   string
	files    paths.VMFiles
	agent    agentclient.Client
	progress func(api.Progress)
	// guestDir and user are where scripts go and whom they run as: the
	// guest's /var/lib/banger/provision and root; tests point them at a
	// temporary directory and themselves.
	guestDir string
	user     string
	workDir  string // where scripts and ready commands run: /root
	// readyTimeout bounds the ready check (agent_timeout).
	readyTimeout time.Duration
}

// run does what rec still needs, recording each step as it completes.
func (p *provisioner) run(ctx context.Context, rec *provisionRecord) error {
	fail := func(err error) error {
		rec.State, rec.Error = provisionFailed, err.Error()
		if serr := saveRecord(p.files, rec); serr != nil {
			err = fmt.Errorf("%w (and recording it: %v)", err, serr)
		}
		return err
	}
	if rec.State != provisionDone {
		if !rec.CopiesDone && len(rec.Copies) > 0 {
			for i, c := range rec.Copies {
				p.progress(api.Progress{Step: "provision-copy", Message: c.Src + " -> " + c.Dst,
					Current: int64(i + 1), Total: int64(len(rec.Copies))})
				if err := p.copyIn(ctx, c); err != nil {
					return fail(api.NewError(api.CodeProvisionFailed,
						fmt.Sprintf("%s: --copy %s:%s failed: %v", p.vmName, c.Src, c.Dst, err),
						"check the source and the guest path; banger vm start "+p.vmName+" tries again"))
				}
			}
			rec.CopiesDone = true
			if err := saveRecord(p.files, rec); err != nil {
				return err
			}
		}
		for i := range rec.Scripts {
			if rec.Scripts[i].Done {
				continue
			}
			p.progress(api.Progress{Step: "provision", Message: "running " + rec.Scripts[i].Source,
				Current: int64(i + 1), Total: int64(len(rec.Scripts))})
			if err := p.runScript(ctx, rec.Scripts[i]); err != nil {
				return fail(err)
			}
			rec.Scripts[i].Done = true
			if err := saveRecord(p.files, rec); err != nil {
				return err
			}
		}
		rec.State, rec.Error = provisionDone, ""
		if err := saveRecord(p.files, rec); err != nil {
			return err
		}
	}
	if rec.Ready != "" {
		if err := p.waitReady(ctx, rec.Ready); err != nil {
			// Provisioning is done; only this start failed. Keep the
			// record's state, note the error for vm show.
			rec.Error = err.Error()
			_ = saveRecord(p.files, rec)
			return err
		}
		if rec.Error != "" {
			rec.Error = ""
			return saveRecord(p.files, rec)
		}
	}
	return nil
}

// copyIn places one host file or tree in the guest, as `vm cp -r` does:
// into DST when it is a directory there (or ends in '/'), else as DST.
func (p *provisioner) copyIn(ctx context.Context, c api.ProvisionCopy) error {
	if _, err := os.Lstat(c.Src); err != nil {
		return err
	}
	dst := c.Dst
	if !path.IsAbs(dst) {
		dst = path.Join("/root", dst)
	}
	st, err := p.agent.Stat(ctx, dst)
	if err != nil {
		return err
	}
	dir, name := path.Clean(dst), ""
	if !(st.Exists && st.IsDir) && !strings.HasSuffix(c.Dst, "/") {
		dir, name = path.Dir(path.Clean(dst)), path.Base(dst)
	}
	if err := p.exec(ctx, "mkdir -p "+dir, []string{"mkdir", "-p", dir}, io.Discard); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarstream.Pack(pw, c.Src, "", true)) }()
	_, err = p.agent.Put(ctx, dir, name, pr)
	pr.Close()
	return err
}

// exec runs argv in the guest and fails unless it exits 0; out gets its
// output.
func (p *provisioner) exec(ctx context.Context, what string, argv []string, out io.Writer) error {
	x, err := p.start(ctx, agentproto.ExecRequest{Argv: argv, User: p.user, WorkDir: "/"}, out)
	if err != nil {
		return err
	}
	if x.Code != 0 {
		return fmt.Errorf("%s in the guest: exit status %d", what, x.Code)
	}
	return nil
}

func (p *provisioner) start(ctx context.Context, req agentproto.ExecRequest, out io.Writer) (agentproto.Exit, error) {
	conn, err := p.agent.Exec(ctx, req)
	if err != nil {
		return agentproto.Exit{}, err
	}
	// The request's end (the CLI went away) ends the command's stream.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	x, err := agentclient.RunExec(conn, agentclient.ExecIO{Stdout: out, Stderr: out})
	if err != nil && ctx.Err() != nil {
		return x, ctx.Err()
	}
	return x, err
}

// runScript uploads one script and runs it as root in /root; its output
// goes to the progress stream and provision.log.
func (p *provisioner) runScript(ctx context.Context, s provisionScript) error {
	data, err := os.ReadFile(filepath.Join(provisionScriptsDir(p.files), s.File))
	if err != nil {
		return err
	}
	if err := p.exec(ctx, "mkdir "+p.guestDir, []string{"mkdir", "-p", p.guestDir}, io.Discard); err != nil {
		return err
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := tw.WriteHeader(&tar.Header{Name: s.File, Mode: 0o700, Size: int64(len(data)), ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if _, err := p.agent.Put(ctx, p.guestDir, "", &tb); err != nil {
		return fmt.Errorf("%s: upload %s: %w", p.vmName, s.Source, err)
	}
	guestPath := path.Join(p.guestDir, s.File)
	// A script with a #! line runs with its interpreter, any other with
	// sh. Its stderr joins its stdout in the guest, so the lines keep the
	// order they were written in (two pipes would not).
	argv := []string{"/bin/sh", "-c", `exec "$@" 2>&1`, "sh", "/bin/sh", guestPath}
	if bytes.HasPrefix(data, []byte("#!")) {
		argv = []string{"/bin/sh", "-c", `exec "$@" 2>&1`, "sh", guestPath}
	}
	out, err := p.openLog(s)
	if err != nil {
		return err
	}
	defer out.Close()
	x, err := p.start(ctx, agentproto.ExecRequest{Argv: argv, User: p.user, WorkDir: p.workDir}, out)
	out.flush()
	if err != nil {
		return api.NewError(api.CodeProvisionFailed, fmt.Sprintf("%s: provisioning script %s: %v%s", p.vmName, s.Source, err, out.lastLines()),
			"banger vm logs --provision "+p.vmName+" shows its output; banger vm start "+p.vmName+" runs it again")
	}
	if x.Code != 0 {
		status := fmt.Sprintf("exit status %d", x.Code)
		if x.Signal != 0 {
			status = fmt.Sprintf("killed by signal %d (exit status %d)", x.Signal, x.Code)
		}
		return api.NewError(api.CodeProvisionFailed,
			fmt.Sprintf("%s: provisioning script %s failed: %s%s", p.vmName, s.Source, status, out.lastLines()),
			"the VM is kept, stopped: banger vm logs --provision "+p.vmName+" shows the whole output; "+
				"banger vm start "+p.vmName+" runs this script (and those after it) again, or banger vm delete "+p.vmName)
	}
	return nil
}

// scriptOutput takes a script's output: to provision.log (bounded), to the
// progress stream one sanitised line at a time, and its last lines kept
// for the error.
type scriptOutput struct {
	mu       sync.Mutex
	log      *os.File
	logged   int64
	script   string
	progress func(api.Progress)
	partial  []byte
	last     []string
}

func (p *provisioner) openLog(s provisionScript) (*scriptOutput, error) {
	f, err := os.OpenFile(ProvisionLogPath(p.files), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	o := &scriptOutput{log: f, script: filepath.Base(s.Source), progress: p.progress}
	if fi, err := f.Stat(); err == nil {
		o.logged = fi.Size()
	}
	o.writeLog([]byte(fmt.Sprintf("=== %s %s\n", time.Now().UTC().Format(time.RFC3339), s.Source)))
	return o, nil
}

func (o *scriptOutput) writeLog(b []byte) {
	if o.logged >= maxProvisionLog {
		return
	}
	if room := maxProvisionLog - o.logged; int64(len(b)) > room {
		b = append(b[:room:room], "\n[provision.log is full: further output dropped]\n"...)
	}
	n, _ := o.log.Write(b)
	o.logged += int64(n)
}

// maxLine bounds one line as shown in progress and errors.
const maxLine = 500

func (o *scriptOutput) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writeLog(b)
	o.partial = append(o.partial, b...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		o.line(o.partial[:i])
		o.partial = o.partial[i+1:]
	}
	if len(o.partial) > 4*maxLine {
		o.line(o.partial)
		o.partial = nil
	}
	return len(b), nil
}

func (o *scriptOutput) line(b []byte) {
	s := strings.TrimRight(termsafe.String(string(b)), "\r")
	if len(s) > maxLine {
		s = s[:maxLine] + "..."
	}
	o.progress(api.Progress{Step: "provision", Message: o.script + ": " + s})
	o.last = append(o.last, s)
	if len(o.last) > lastLinesKept {
		o.last = o.last[len(o.last)-lastLinesKept:]
	}
}

func (o *scriptOutput) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.partial) > 0 {
		o.line(o.partial)
		o.partial = nil
	}
}

func (o *scriptOutput) lastLines() string {
	if len(o.last) == 0 {
		return " (no output)"
	}
	return "\n--- last lines of its output ---\n" + strings.Join(o.last, "\n")
}

func (o *scriptOutput) Close() error { return o.log.Close() }

// waitReady polls the ready condition until it holds or readyTimeout ends.
func (p *provisioner) waitReady(ctx context.Context, spec string) error {
	r, err := provision.ParseReady(spec)
	if err != nil {
		return api.NewError(api.CodeInvalidArgument, err.Error(), "")
	}
	p.progress(api.Progress{Step: "ready", Message: fmt.Sprintf("waiting for %s (deadline %s, agent_timeout in config.toml)", spec, p.readyTimeout)})
	ctx, cancel := context.WithTimeout(ctx, p.readyTimeout)
	defer cancel()
	var last string
	for attempt := 1; ; attempt++ {
		ok, why := p.readyOnce(ctx, r)
		if ok {
			p.progress(api.Progress{Step: "ready", Message: spec + " holds"})
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return api.NewError(api.CodeProvisionFailed,
				fmt.Sprintf("%s: ready check %s did not hold within %s (%d attempts): %s", p.vmName, spec, p.readyTimeout, attempt, last),
				"the VM is kept, stopped: banger vm start "+p.vmName+" boots it and checks again; raise agent_timeout in config.toml if the service needs longer")
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// readyOnce checks r once; when it does not hold, why says what was seen.
func (p *provisioner) readyOnce(ctx context.Context, r provision.Ready) (bool, string) {
	if r.Command == "" {
		ls, err := p.agent.Listeners(ctx)
		if err != nil {
			return false, "asking the agent for listening ports: " + err.Error()
		}
		for _, l := range ls {
			if l.Port == r.Port {
				return true, ""
			}
		}
		return false, fmt.Sprintf("nothing listens on TCP port %d in the guest", r.Port)
	}
	timeout := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if timeout < time.Millisecond {
		return false, "no time left"
	}
	var out lastBytes
	x, err := p.start(ctx, agentproto.ExecRequest{Argv: []string{"/bin/sh", "-c", r.Command}, User: p.user,
		WorkDir: p.workDir, TimeoutMillis: timeout.Milliseconds()}, &out)
	if err != nil {
		return false, err.Error()
	}
	if x.Code == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("the command exited %d: %s", x.Code, termsafe.String(strings.TrimSpace(string(out.b))))
}

// lastBytes keeps the last 1 KiB written to it.
type lastBytes struct{ b []byte }

func (l *lastBytes) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if len(l.b) > 1024 {
		l.b = l.b[len(l.b)-1024:]
	}
	return len(p), nil
}

// bootWork runs after the agent answered at a start: the provisioning not
// yet done, then the ready check. vm carries the VMM and pid of this boot.
func (s *Service) bootWork(ctx context.Context, vm api.VM, rec *provisionRecord, progress func(api.Progress)) error {
	p := &provisioner{
		vmName: vm.Name, files: s.Layout.VM(vm.ID), progress: progress,
		guestDir: guestProvisionDir, user: "root", workDir: "/root", readyTimeout: s.Config.AgentTimeout,
		agent: agentclient.Client{Dial: func(ctx context.Context) (net.Conn, error) { return s.Runtime.DialAgent(ctx, vm) }},
	}
	if s.provisionGuestDir != "" {
		p.guestDir, p.user, p.workDir = s.provisionGuestDir, s.provisionUser, s.provisionGuestDir
	}
	if p.readyTimeout <= 0 {
		p.readyTimeout = 90 * time.Second
	}
	return p.run(ctx, rec)
}

// afterBoot runs the boot work of a VM whose agent answered: it records the
// VMM while the VM is still "starting" (so a crash or settle finds the
// process), then provisions and waits for ready. On failure the VM is
// stopped and kept with the error recorded, for the user to look at.
func (s *Service) afterBoot(ctx context.Context, vm, started api.VM, startedAt time.Time, progress func(api.Progress)) error {
	rec, err := loadRecord(s.Layout.VM(vm.ID))
	if err != nil {
		return s.failBoot(vm, started, fmt.Errorf("%s: %w", vm.Name, err))
	}
	if !needsBootWork(rec) {
		return nil
	}
	st := api.VMStarting
	if _, err := s.Store.UpdateVM(context.Background(), vm.ID, store.VMUpdate{
		State: &st, VMM: &started.VMM, PID: &started.PID, StartedAt: &startedAt,
	}); err != nil {
		return s.failBoot(vm, started, s.mapErr(err))
	}
	started.Name, started.ID = vm.Name, vm.ID
	if err := s.bootWork(ctx, started, rec, progress); err != nil {
		return s.failBoot(vm, started, err)
	}
	return nil
}

// failBoot stops a VM whose boot work failed and records it stopped with
// the error; the error returned is err.
func (s *Service) failBoot(vm, started api.VM, err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msg := err.Error()
	state := api.VMStopped
	if _, serr := s.Runtime.Stop(ctx, started, false); serr != nil {
		state = api.VMError
		msg += "; stopping the VM: " + serr.Error()
	}
	zero := 0
	_, _ = s.Store.UpdateVM(ctx, vm.ID, store.VMUpdate{State: &state, PID: &zero, LastError: &msg, ClearStartedAt: true})
	s.changed(ctx)
	var ae *api.Error
	if errors.As(err, &ae) {
		return err
	}
	return api.NewError(api.CodeProvisionFailed, msg, "banger vm show "+vm.Name+"; banger vm logs --provision "+vm.Name)
}
