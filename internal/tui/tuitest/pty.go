// Package tuitest runs a terminal program in a pseudo-terminal and waits for
// text to appear on its screen, for end-to-end tests and benchmarks of
// `banger tui` (e.g. exec-to-first-frame time).
package tuitest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/creack/pty"

	"github.com/banger-dev/banger/internal/sysexec"
)

// Session is a program running in a pty.
type Session struct {
	started time.Time
	ptmx    *os.File
	cmd     *exec.Cmd // owned: Close reaps it

	mu      sync.Mutex
	out     []byte        // everything the program wrote
	changed chan struct{} // closed and replaced on every read
	readErr error
	done    chan struct{} // closed when the program exited
	waitErr error
}

// Start runs argv in a new session whose stdin, stdout and stderr are a pty
// of cols x rows. env is appended to the environment (TERM defaults to
// xterm-256color). The clock for Elapsed starts just before the program does.
func Start(argv []string, env []string, cols, rows int) (*Session, error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}); err != nil {
		ptmx.Close()
		tty.Close()
		return nil, fmt.Errorf("set pty size %dx%d: %w", cols, rows, err)
	}
	s := &Session{ptmx: ptmx, changed: make(chan struct{}), done: make(chan struct{})}
	s.started = time.Now()
	cmd, err := sysexec.Start(sysexec.Cmd{
		Argv:   argv,
		Env:    append([]string{"TERM=xterm-256color"}, env...),
		Stdin:  tty,
		Stdout: tty,
		Stderr: tty,
	}, true)
	tty.Close() // the child holds its own copy
	if err != nil {
		ptmx.Close()
		return nil, err
	}
	s.cmd = cmd
	go s.read()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(s.done)
	}()
	return s, nil
}

func (s *Session) read() {
	buf := make([]byte, 32<<10)
	for {
		n, err := s.ptmx.Read(buf)
		s.mu.Lock()
		s.out = append(s.out, buf[:n]...)
		close(s.changed)
		s.changed = make(chan struct{})
		if err != nil {
			s.readErr = err
		}
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Screen returns everything the program printed so far with escape
// sequences removed. Renderers move the cursor instead of printing runs of
// spaces, so match on words, not on column layout.
func (s *Session) Screen() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ansi.Strip(string(s.out))
}

// Output returns the raw bytes the program wrote so far, escape sequences
// included (to check colors, for example).
func (s *Session) Output() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.out...)
}

// WaitFor blocks until the screen contains want and returns the time since
// Start. It fails when ctx ends or the program exits first, with the screen
// so far in the error.
func (s *Session) WaitFor(ctx context.Context, want string) (time.Duration, error) {
	for {
		s.mu.Lock()
		found := strings.Contains(ansi.Strip(string(s.out)), want)
		changed, readErr := s.changed, s.readErr
		s.mu.Unlock()
		if found {
			return time.Since(s.started), nil
		}
		if readErr != nil {
			return 0, fmt.Errorf("program output ended (%v) before %q appeared; screen:\n%s", readErr, want, s.Screen())
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, fmt.Errorf("%q did not appear: %w; screen:\n%s", want, ctx.Err(), s.Screen())
		}
	}
}

// Type sends keys to the program as if typed.
func (s *Session) Type(keys string) error {
	_, err := io.WriteString(s.ptmx, keys)
	return err
}

// Wait waits for the program to exit on its own and returns its exit error.
func (s *Session) Wait(ctx context.Context) error {
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.waitErr
	case <-ctx.Done():
		return fmt.Errorf("program still running: %w", ctx.Err())
	}
}

// Close kills the program if it still runs, reaps it and closes the pty.
func (s *Session) Close() error {
	select {
	case <-s.done:
	default:
		if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("kill pid %d: %w", s.cmd.Process.Pid, err)
		}
		<-s.done
	}
	return s.ptmx.Close()
}
