package mapdns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/banger-dev/banger/internal/sysexec"
)

// Supervisor runs one mapdns for banger: Bin, started with no arguments in
// the data file's directory. Restart replaces it with a new instance (the
// only way mapdns reads a changed file); one that dies is started again
// after a backoff; Stop ends it. The kernel ends it too if the daemon dies
// (PR_SET_PDEATHSIG), so it never outlives banger.
//
// It never signals a mapdns it did not start: while another process runs
// Bin (the user's own mapdns), it starts none, and Status names that process.
type Supervisor struct {
	Bin      string // absolute path of the mapdns binary
	DataFile string // absolute path of mapdns.json
	LogFile  string // mapdns's output is appended here; "" discards it
	Logf     func(format string, args ...any)
	// MinBackoff and MaxBackoff bound the wait before starting again after
	// mapdns exits on its own: it doubles from Min up to Max, and is back to
	// Min after an instance that ran longer than Max. Zero: 1s and 30s.
	MinBackoff, MaxBackoff time.Duration
	// ProcRoot is where processes are listed ("" = /proc).
	ProcRoot string

	mu      sync.Mutex
	running bool
	restart chan struct{}
	quit    chan struct{}
	done    chan struct{}
	status  Status
}

// Status is what the supervisor knows.
type Status struct {
	PID      int   // the mapdns banger runs now; 0 when none
	Starts   int   // how many times banger started one
	Foreign  []int // processes running Bin that banger did not start
	LastExit string
}

// Start begins supervising; it does nothing when already started.
func (s *Supervisor) Start() error {
	if !filepath.IsAbs(s.Bin) {
		return fmt.Errorf("mapdns_bin %q must be an absolute path", s.Bin)
	}
	if err := CheckDataFile(s.DataFile); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	s.running = true
	s.restart = make(chan struct{}, 1)
	s.quit = make(chan struct{})
	s.done = make(chan struct{})
	go s.loop(s.restart, s.quit, s.done)
	return nil
}

// Restart makes the supervisor replace the running mapdns with a new one,
// which reads the data file afresh. It returns at once; requests made while
// one is pending are merged.
func (s *Supervisor) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	select {
	case s.restart <- struct{}{}:
	default:
	}
}

// Stop ends the mapdns banger started (SIGTERM, then SIGKILL) and the
// supervision, and waits for both.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return
	}
	s.running = false
	close(s.quit)
	done := s.done
	s.mu.Unlock()
	<-done
}

// Status reports the running instance, and any mapdns banger did not start.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Foreign = slices.Clone(st.Foreign)
	return st
}

func (s *Supervisor) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

func (s *Supervisor) backoffs() (lo, hi time.Duration) {
	lo, hi = s.MinBackoff, s.MaxBackoff
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	return lo, max(lo, hi)
}

func (s *Supervisor) loop(restart, quit, done chan struct{}) {
	// The children's PR_SET_PDEATHSIG follows the thread that started them:
	// keep this goroutine on one thread, which ends when it returns.
	runtime.LockOSThread()
	defer close(done)
	lo, hi := s.backoffs()
	backoff := lo
	// wait returns false when the supervisor is stopping.
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-quit:
			return false
		case <-restart:
			return true
		case <-t.C:
			return true
		}
	}
	var reported []int
	for {
		select {
		case <-quit:
			return
		default:
		}
		foreign, err := findProcesses(s.procRoot(), s.Bin)
		if err != nil {
			s.logf("mapdns: %v", err)
		}
		s.mu.Lock()
		s.status.Foreign = foreign
		s.mu.Unlock()
		if len(foreign) > 0 {
			if !slices.Equal(foreign, reported) {
				s.logf("mapdns: %s already runs (pid %v) and banger did not start it: banger starts none and leaves it alone; it reads %s only when it starts, so restart it to pick up VM names",
					s.Bin, foreign, s.DataFile)
				reported = foreign
			}
			if !wait(hi) {
				return
			}
			continue
		}
		reported = nil
		cmd, exited, err := s.start()
		if err != nil {
			s.logf("mapdns: %v; trying again in %s", err, backoff)
			if !wait(backoff) {
				return
			}
			backoff = min(2*backoff, hi)
			continue
		}
		began := time.Now()
		select {
		case <-quit:
			s.terminate(cmd, exited)
			return
		case <-restart:
			s.terminate(cmd, exited)
			backoff = lo
		case err := <-exited:
			s.exited(cmd, err)
			if time.Since(began) > hi {
				backoff = lo
			}
			s.logf("mapdns (pid %d) exited: %s; starting it again in %s (its output: %s)", cmd.Process.Pid, s.Status().LastExit, backoff, s.LogFile)
			if !wait(backoff) {
				return
			}
			backoff = min(2*backoff, hi)
		}
	}
}

func (s *Supervisor) procRoot() string {
	if s.ProcRoot == "" {
		return "/proc"
	}
	return s.ProcRoot
}

// start starts one mapdns; exited receives its Wait result.
func (s *Supervisor) start() (*exec.Cmd, <-chan error, error) {
	c := sysexec.Cmd{Argv: []string{s.Bin}, Dir: filepath.Dir(s.DataFile)}
	if s.LogFile != "" {
		f, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("open mapdns log: %w", err)
		}
		defer f.Close() // the child has its own descriptor
		c.Stdout, c.Stderr = f, f
	}
	cmd, err := sysexec.StartChild(c, syscall.SIGTERM)
	if err != nil {
		return nil, nil, fmt.Errorf("start mapdns (mapdns_bin = %q): %w", s.Bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.mu.Lock()
	s.status.PID = cmd.Process.Pid
	s.status.Starts++
	s.mu.Unlock()
	s.logf("mapdns: started %s (pid %d) in %s", s.Bin, cmd.Process.Pid, c.Dir)
	return cmd, exited, nil
}

// terminate ends an instance banger started: SIGTERM, then SIGKILL after
// five seconds. The process is not reaped before exited reports, so its pid
// cannot have been reused.
func (s *Supervisor) terminate(cmd *exec.Cmd, exited <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	var err error
	select {
	case err = <-exited:
	case <-t.C:
		_ = cmd.Process.Kill()
		err = <-exited
	}
	s.exited(cmd, err)
}

func (s *Supervisor) exited(cmd *exec.Cmd, err error) {
	why := "exit status 0"
	if err != nil {
		why = err.Error()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ProcessState != nil {
		why = ee.ProcessState.String()
	}
	s.mu.Lock()
	if s.status.PID == cmd.Process.Pid {
		s.status.PID = 0
	}
	s.status.LastExit = why
	s.mu.Unlock()
}
