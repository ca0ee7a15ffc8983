package guestinit

import (
	"errors"
	"log"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Service is a process PID 1 keeps running.
type Service struct {
	Name string
	Argv []string
	Env  []string
	Dir  string
	Cred *syscall.Credential // nil: root
	// Once services run to their end and are not restarted (a key
	// generator before sshd).
	Once bool
	// Done, if set, is called with the exit status of a Once service.
	Done func(syscall.WaitStatus)
}

// Backoff bounds between restarts of a service that keeps exiting.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
	// A service that ran this long before exiting is restarted at once
	// (after minBackoff) again.
	healthyRun = 10 * time.Second
)

// Supervisor starts services and is the only waiter for every child of the
// process: one wait4(-1) loop reaps all of them, dispatching the exits of
// services it started (restart with backoff) and discarding those of
// orphans the kernel re-parented to it. Nothing else in the process may
// wait for children (no os/exec): the exec server runs in its own child
// process (the agent, a service), whose children are its own to wait for,
// so this loop never takes an exit status they need.
type Supervisor struct {
	log  *log.Logger
	out  *os.File // the services' stdout and stderr (the console)
	null *os.File // their stdin (nil if /dev/null cannot be opened: closed)

	mu       sync.Mutex
	running  map[int]*svcState
	started  map[string]int // starts per service name
	stopping bool
	// Reaped counts orphans reaped (tests read it).
	reaped int
}

type svcState struct {
	svc     Service
	started time.Time
	backoff time.Duration
	starts  int
}

// NewSupervisor returns a supervisor writing its services' output to out.
func NewSupervisor(logger *log.Logger, out *os.File) *Supervisor {
	null, _ := os.Open(os.DevNull)
	return &Supervisor{log: logger, out: out, null: null, running: map[int]*svcState{}, started: map[string]int{}}
}

// Start starts a service. The registration happens under the lock the
// reaper takes before it looks an exit up, so even a service that exits at
// once is seen as a service and not as an orphan.
func (s *Supervisor) Start(svc Service) error {
	return s.start(&svcState{svc: svc, backoff: minBackoff})
}

func (s *Supervisor) start(st *svcState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return errors.New("shutting down")
	}
	attr := &os.ProcAttr{
		Dir:   st.svc.Dir,
		Env:   st.svc.Env,
		Files: []*os.File{s.null, s.out, s.out},
		Sys:   &syscall.SysProcAttr{Setsid: true, Credential: st.svc.Cred},
	}
	p, err := os.StartProcess(st.svc.Argv[0], st.svc.Argv, attr)
	if err != nil {
		return err
	}
	pid := p.Pid // Release sets it to -1
	st.started = time.Now()
	st.starts++
	s.running[pid] = st
	s.started[st.svc.Name] = st.starts
	_ = p.Release() // its exit is collected by the reaper, never by os.Process.Wait
	s.log.Printf("%s: started (pid %d): %q", st.svc.Name, pid, st.svc.Argv)
	return nil
}

// Reap runs the wait loop until stop is closed: on every SIGCHLD it
// collects all exited children.
func (s *Supervisor) Reap(stop <-chan struct{}) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	// A child may have exited before Notify: reap once first.
	s.ReapNow()
	for {
		select {
		case <-stop:
			return
		case <-sigs:
			s.ReapNow()
		case <-time.After(5 * time.Second):
			// SIGCHLDs coalesce; a periodic pass is cheap insurance.
			s.ReapNow()
		}
	}
}

// ReapNow collects every child that has exited, without blocking.
func (s *Supervisor) ReapNow() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		s.exited(pid, ws)
	}
}

func (s *Supervisor) exited(pid int, ws syscall.WaitStatus) {
	s.mu.Lock()
	st, ok := s.running[pid]
	delete(s.running, pid)
	stopping := s.stopping
	if !ok {
		s.reaped++
	}
	s.mu.Unlock()
	if !ok {
		return // an orphan: its parent is gone, nobody wants its status
	}
	s.log.Printf("%s: pid %d %s", st.svc.Name, pid, describe(ws))
	if st.svc.Once {
		if st.svc.Done != nil {
			st.svc.Done(ws)
		}
		return
	}
	if stopping {
		return
	}
	if time.Since(st.started) >= healthyRun {
		st.backoff = minBackoff
	}
	delay := st.backoff
	st.backoff = min(st.backoff*2, maxBackoff)
	s.log.Printf("%s: restarting in %s", st.svc.Name, delay)
	time.AfterFunc(delay, func() {
		s.restart(st)
	})
}

// restart starts a service again, retrying after maxBackoff while it
// cannot be started (its binary briefly missing, say).
func (s *Supervisor) restart(st *svcState) {
	if err := s.start(st); err != nil && !s.isStopping() {
		s.log.Printf("%s: restart failed: %v; retrying in %s", st.svc.Name, err, maxBackoff)
		time.AfterFunc(maxBackoff, func() { s.restart(st) })
	}
}

func (s *Supervisor) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// StopRestarts makes exits final (shutdown).
func (s *Supervisor) StopRestarts() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
}

// Running is the number of services alive.
func (s *Supervisor) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running)
}

// Starts is how often the service named name was started.
func (s *Supervisor) Starts(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started[name]
}

// Orphans is the number of orphans reaped so far.
func (s *Supervisor) Orphans() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reaped
}

func describe(ws syscall.WaitStatus) string {
	switch {
	case ws.Signaled():
		return "killed by " + ws.Signal().String()
	default:
		return "exited with status " + strconv.Itoa(ws.ExitStatus())
	}
}
