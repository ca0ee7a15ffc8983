package agent

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
)

// defaultPath is the PATH of an exec'd process unless --env sets one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// workRoute returns the handler of a work endpoint (exec, files, connect,
// listeners), or nil for the health and info endpoints.
func (h *handler) workRoute(path string) http.HandlerFunc {
	switch path {
	case agentproto.ExecPath:
		return h.exec
	case agentproto.FilesPath:
		return h.files
	case agentproto.StatPath:
		return h.stat
	case agentproto.ConnectPath:
		return h.connect
	case agentproto.ListenersPath:
		return h.listeners
	case agentproto.DirPath:
		return h.dir
	}
	return nil
}

// requireMethod answers 405 unless r uses one of methods.
func requireMethod(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, api.NewError(api.CodeBadRequest,
		fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path), "use "+strings.Join(methods, " or ")+" "+r.URL.Path))
	return false
}

// requireUpgrade answers 426 unless r asks to upgrade to proto.
func requireUpgrade(w http.ResponseWriter, r *http.Request, proto string) bool {
	if strings.EqualFold(r.Header.Get("Upgrade"), proto) {
		return true
	}
	w.Header().Set("Upgrade", proto)
	writeError(w, http.StatusUpgradeRequired, api.NewError(api.CodeBadRequest,
		fmt.Sprintf("%s needs \"Upgrade: %s\"", r.URL.Path, proto), "this agent speaks protocol "+strconv.Itoa(agentproto.Version)))
	return false
}

// hijack answers 101 and takes the connection over, clearing the
// deadlines the HTTP server set: an upgraded stream lives as long as its
// work.
func hijack(w http.ResponseWriter, proto string) (net.Conn, *bufio.Reader, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be taken over")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", proto); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, brw.Reader, nil
}

// exec runs a command for POST /v1/exec. Everything that can be refused is
// refused with an HTTP error before the upgrade: bad request, unknown user,
// missing directory, command not found (127) or not executable (126). Once
// started, the connection carries frames until the exit frame.
func (h *handler) exec(w http.ResponseWriter, r *http.Request) {
	if !requireMethod(w, r, http.MethodPost) || !requireUpgrade(w, r, agentproto.ExecUpgrade) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, agentproto.MaxExecRequestBytes+1))
	if err != nil || len(body) > agentproto.MaxExecRequestBytes {
		writeError(w, http.StatusRequestEntityTooLarge, api.NewError(api.CodeTooLarge,
			fmt.Sprintf("exec request unreadable or over %d bytes", agentproto.MaxExecRequestBytes), "send fewer or shorter arguments and variables"))
		return
	}
	var req agentproto.ExecRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, api.NewError(api.CodeBadRequest, "malformed exec request: "+err.Error(), ""))
		return
	}
	cmd, apiErr := h.prepare(req)
	if apiErr != nil {
		status := http.StatusBadRequest
		if apiErr.Code == agentproto.CodeCommandNotFound {
			status = http.StatusNotFound
		}
		writeError(w, status, apiErr)
		return
	}
	var run *execRun
	if req.TTY {
		run, apiErr = startPTY(cmd, req)
	} else {
		run, apiErr = startPipes(cmd)
	}
	if apiErr != nil {
		writeError(w, http.StatusInternalServerError, apiErr)
		return
	}
	conn, rd, err := hijack(w, agentproto.ExecUpgrade)
	if err != nil {
		run.kill()
		_ = cmd.Wait()
		return
	}
	defer conn.Close()
	run.serve(conn, rd, time.Duration(req.TimeoutMillis)*time.Millisecond)
}

// prepare checks req and builds the command without starting it.
func (h *handler) prepare(req agentproto.ExecRequest) (*exec.Cmd, *api.Error) {
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return nil, api.NewError(api.CodeInvalidArgument, "exec needs a command", "banger vm exec NAME -- COMMAND [ARG...]")
	}
	for _, s := range append(append([]string(nil), req.Argv...), req.Env...) {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, api.NewError(api.CodeInvalidArgument, "exec arguments and variables cannot contain NUL bytes", "")
		}
	}
	env := map[string]string{"PATH": defaultPath}
	order := []string{"PATH"}
	set := func(k, v string) {
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}

	cred, home, name, apiErr := lookupUser(req.User)
	if apiErr != nil {
		return nil, apiErr
	}
	set("HOME", home)
	set("USER", name)
	set("LOGNAME", name)
	if req.TTY {
		term := req.Term
		if term == "" {
			term = "xterm-256color"
		}
		set("TERM", term)
	}
	for _, kv := range req.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k, "= ") {
			return nil, api.NewError(api.CodeInvalidArgument, fmt.Sprintf("environment entry %q is not KEY=VALUE", kv), "use --env KEY=VALUE")
		}
		set(k, v)
	}

	dir := req.WorkDir
	if dir == "" {
		dir = h.opts.WorkDir
		if req.User != "" && req.User != "root" {
			dir = home
			// Service users' homes often do not exist (nobody's is
			// /nonexistent): start in / as login(1) would.
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				dir = "/"
			}
		}
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, api.NewError(api.CodeInvalidArgument, fmt.Sprintf("working directory %s does not exist in the guest", dir),
			"pass an existing directory with --workdir")
	}

	path, apiErr := lookPath(req.Argv[0], env["PATH"], dir)
	if apiErr != nil {
		return nil, apiErr
	}
	cmd := &exec.Cmd{Path: path, Args: req.Argv, Dir: dir}
	for _, k := range order {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if req.TTY {
		cmd.SysProcAttr.Setsid = true
		cmd.SysProcAttr.Setctty = true
		return cmd, nil
	}
	// Its own process group, so a signal or the timeout reaches what it
	// started too.
	cmd.SysProcAttr.Setpgid = true
	return cmd, nil
}

// lookupUser resolves the user to run as: "" is root. The credential is
// nil when the agent already runs as that user (tests run unprivileged).
func lookupUser(name string) (*syscall.Credential, string, string, *api.Error) {
	if name == "" {
		name = "root"
	}
	u, err := user.Lookup(name)
	if err != nil {
		u, err = user.LookupId(name)
	}
	if err != nil {
		return nil, "", "", api.NewError(api.CodeInvalidArgument, fmt.Sprintf("no user %q in the guest", name),
			"pass an existing user with --user (see the guest's /etc/passwd)")
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	home := u.HomeDir
	if home == "" {
		home = "/"
	}
	if uint64(os.Getuid()) == uid {
		return nil, home, u.Username, nil
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if groups, err := u.GroupIds(); err == nil {
		for _, g := range groups {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	return cred, home, u.Username, nil
}

// lookPath finds name as a shell would: a name with a slash is a path
// (relative to dir), anything else is searched in path.
func lookPath(name, path, dir string) (string, *api.Error) {
	check := func(p string) (string, *api.Error) {
		fi, err := os.Stat(p)
		if err != nil {
			return "", nil
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return p, api.NewError(agentproto.CodeCommandNotExecutable, fmt.Sprintf("%s in the guest is not an executable file", p),
				"chmod +x it, or run it through its interpreter (sh FILE)")
		}
		return p, nil
	}
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		found, apiErr := check(p)
		if apiErr != nil || found != "" {
			return found, apiErr
		}
		return "", api.NewError(agentproto.CodeCommandNotFound, fmt.Sprintf("%s: no such file in the guest", name), "check the path")
	}
	var notExec *api.Error
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		found, apiErr := check(filepath.Join(d, name))
		if apiErr != nil {
			if notExec == nil {
				notExec = apiErr
			}
			continue
		}
		if found != "" {
			return found, nil
		}
	}
	if notExec != nil {
		return "", notExec
	}
	return "", api.NewError(agentproto.CodeCommandNotFound, fmt.Sprintf("%s: command not found in the guest (PATH=%s)", name, path),
		"check the name, or install it in the guest image")
}

// execRun is a started process and what feeds and drains it.
type execRun struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser // the pipe, or the pty
	pty    *os.File       // nil without a tty
	output []outputPipe
	// closers are the read ends of the output, closed to stop reading.
	closers []io.Closer
}

// outputGrace is how long output is still read after the process exited:
// what it wrote is in the pipe already, so this only bounds how long a
// child it left behind (a `sleep &` that ignores SIGINT) may keep the
// exec open by holding its stdout.
const outputGrace = time.Second

type outputPipe struct {
	typ agentproto.Type
	r   io.Reader
}

func startPipes(cmd *exec.Cmd) (*execRun, *api.Error) {
	run := &execRun{cmd: cmd}
	var err error
	if run.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, startErr(cmd, err)
	}
	// Our own pipes, not StdoutPipe: Wait must not close the read ends, so
	// the process can be reaped while what it wrote is still being read.
	var readers, writers []*os.File
	closeAll := func() {
		for _, f := range append(readers, writers...) {
			f.Close()
		}
	}
	for range 2 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, startErr(cmd, err)
		}
		readers, writers = append(readers, r), append(writers, w)
	}
	cmd.Stdout, cmd.Stderr = writers[0], writers[1]
	err = cmd.Start()
	for _, w := range writers {
		w.Close() // the child has its copies
	}
	if err != nil {
		for _, r := range readers {
			r.Close()
		}
		return nil, startErr(cmd, err)
	}
	run.output = []outputPipe{{agentproto.TypeStdout, readers[0]}, {agentproto.TypeStderr, readers[1]}}
	run.closers = []io.Closer{readers[0], readers[1]}
	return run, nil
}

func startPTY(cmd *exec.Cmd, req agentproto.ExecRequest) (*execRun, *api.Error) {
	size := &pty.Winsize{Rows: 24, Cols: 80}
	if req.Rows > 0 && req.Cols > 0 && req.Rows <= 0xFFFF && req.Cols <= 0xFFFF {
		size = &pty.Winsize{Rows: uint16(req.Rows), Cols: uint16(req.Cols)}
	}
	// pty.StartWithAttrs keeps our SysProcAttr (Setsid, Setctty, Credential).
	f, err := pty.StartWithAttrs(cmd, size, cmd.SysProcAttr)
	if err != nil {
		return nil, startErr(cmd, err)
	}
	return &execRun{cmd: cmd, stdin: f, pty: f, output: []outputPipe{{agentproto.TypeStdout, f}}, closers: []io.Closer{f}}, nil
}

func startErr(cmd *exec.Cmd, err error) *api.Error {
	if errors.Is(err, os.ErrPermission) {
		return api.NewError(agentproto.CodeCommandNotExecutable, fmt.Sprintf("start %s: %v", cmd.Path, err), "check its mode and the user")
	}
	return api.NewError(api.CodeInternal, fmt.Sprintf("start %s: %v", cmd.Path, err), "")
}

// kill ends the process group.
func (run *execRun) kill() { run.signal(syscall.SIGKILL) }

func (run *execRun) signal(sig syscall.Signal) {
	if run.cmd.Process == nil {
		return
	}
	// Both with Setpgid and with Setsid the process leads its group.
	if err := syscall.Kill(-run.cmd.Process.Pid, sig); err != nil {
		_ = run.cmd.Process.Signal(sig)
	}
}

// serve pumps frames until the process has exited and its output is
// drained, then sends the exit frame. A host that goes away kills the
// process group.
func (run *execRun) serve(conn net.Conn, rd *bufio.Reader, timeout time.Duration) {
	var wmu sync.Mutex
	send := func(t agentproto.Type, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return agentproto.WriteFrame(conn, t, p)
	}
	_ = send(agentproto.TypeStarted, agentproto.Started{PID: run.cmd.Process.Pid}.Encode())

	var fired atomic.Bool
	if timeout > 0 {
		t := time.AfterFunc(timeout, func() {
			fired.Store(true)
			run.kill()
		})
		defer t.Stop()
	}

	exited := make(chan struct{})
	go run.readHost(rd, exited)

	var drained sync.WaitGroup
	for _, o := range run.output {
		drained.Go(func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := o.r.Read(buf)
				if n > 0 {
					if send(o.typ, buf[:n]) != nil {
						run.kill() // the host is gone
					}
				}
				if err != nil {
					return
				}
			}
		})
	}
	// Reap the process, then read what is left of its output until every
	// writer is gone, or for outputGrace when something it started still
	// holds a pipe (or the pty) open.
	waitErr := run.cmd.Wait()
	drainedCh := make(chan struct{})
	go func() { drained.Wait(); close(drainedCh) }()
	grace := time.NewTimer(outputGrace)
	select {
	case <-drainedCh:
	case <-grace.C:
	}
	grace.Stop()
	for _, c := range run.closers {
		c.Close()
	}
	<-drainedCh
	close(exited)

	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		data, _ := json.Marshal(api.NewError(api.CodeInternal, "wait for the command: "+waitErr.Error(), ""))
		_ = send(agentproto.TypeError, data)
		return
	}
	exit := exitOf(run.cmd.ProcessState, waitErr)
	if fired.Load() {
		exit = agentproto.Exit{Code: 124, Signal: exit.Signal, TimedOut: true}
	}
	_ = send(agentproto.TypeExit, exit.Encode())
}

// readHost applies the host's frames: stdin, EOF, resize, signals. A broken
// connection before the process exits kills it.
func (run *execRun) readHost(rd *bufio.Reader, exited <-chan struct{}) {
	fr := agentproto.NewReader(rd)
	stdinOpen := true
	for {
		t, p, err := fr.Next()
		if err != nil {
			select {
			case <-exited:
			default:
				run.kill()
			}
			return
		}
		switch t {
		case agentproto.TypeStdin:
			if stdinOpen {
				if _, err := run.stdin.Write(p); err != nil {
					stdinOpen = false // the process closed its stdin
				}
			}
		case agentproto.TypeStdinEOF:
			if stdinOpen && run.pty == nil {
				run.stdin.Close()
			} else if stdinOpen {
				_, _ = run.stdin.Write([]byte{4}) // ^D: EOF at the line discipline
			}
			stdinOpen = false
		case agentproto.TypeResize:
			if sz, err := agentproto.DecodeResize(p); err == nil && run.pty != nil {
				_ = pty.Setsize(run.pty, &pty.Winsize{Rows: uint16(sz.Rows), Cols: uint16(sz.Cols)})
			}
		case agentproto.TypeSignal:
			if sig, err := agentproto.DecodeSignal(p); err == nil {
				run.signal(syscall.Signal(sig))
			}
		default:
			// A newer host's frame this agent does not know: ignore it.
		}
	}
}

// exitOf turns a wait status into what a shell would report.
func exitOf(ps *os.ProcessState, waitErr error) agentproto.Exit {
	if ps == nil {
		return agentproto.Exit{Code: 255}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		sig := int(ws.Signal())
		return agentproto.Exit{Code: 128 + sig, Signal: sig}
	}
	code := ps.ExitCode()
	if code < 0 {
		code = 255
	}
	return agentproto.Exit{Code: code & 0xFF}
}
