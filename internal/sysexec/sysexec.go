// Package sysexec is the only package in banger that runs external programs.
// Every program is run from an argv (never a shell string built from input),
// and every failure keeps the command line and the tail of its stderr so the
// user can see what was attempted and why it failed.
package sysexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Cmd describes one program invocation.
type Cmd struct {
	Argv []string // Argv[0] is the program (looked up in PATH when it has no slash)
	Dir  string
	Env  []string // nil = inherit; otherwise appended to the parent's environment
	// Stdin, Stdout and Stderr are optional. When Stdout/Stderr are set, the
	// output is streamed there as well as captured (stderr only its tail).
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// NoCapture skips capturing stdout (for interactive programs like ssh).
	NoCapture bool
}

// Result holds the captured output of a finished program.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
	// MaxRSSKiB is the program's peak resident memory (getrusage's
	// ru_maxrss, across the images it exec'd), when it ran.
	MaxRSSKiB int64
}

// Error is returned when a program cannot be started or exits non-zero.
type Error struct {
	Argv     []string
	ExitCode int // -1 when the program did not start or was killed
	Stderr   string
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(Quote(e.Argv))
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, ": exit status %d", e.ExitCode)
	} else if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString(": ")
		b.WriteString(s)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Runner runs programs. Code that runs programs takes a Runner so tests can
// substitute a recorder; Exec is the real one.
type Runner interface {
	Run(ctx context.Context, c Cmd) (Result, error)
}

// Exec runs real programs.
type Exec struct{}

// maxStderr bounds how much stderr an error keeps (the tail is what matters).
const maxStderr = 8 << 10

// Run runs the program to completion.
func (Exec) Run(ctx context.Context, c Cmd) (Result, error) {
	if len(c.Argv) == 0 {
		return Result{}, errors.New("sysexec: empty argv")
	}
	cmd := build(ctx, c)
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: maxStderr}
	if !c.NoCapture {
		cmd.Stdout = &stdout
		if c.Stdout != nil {
			cmd.Stdout = io.MultiWriter(&stdout, c.Stdout)
		}
	} else {
		cmd.Stdout = c.Stdout
	}
	cmd.Stderr = stderr
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(stderr, c.Stderr)
	}
	err := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: exitCode(cmd, err)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.MaxRSSKiB = ru.Maxrss
		}
	}
	if err != nil {
		if ctx.Err() != nil && res.ExitCode < 0 {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return res, &Error{Argv: c.Argv, ExitCode: res.ExitCode, Stderr: string(res.Stderr), Err: err}
	}
	return res, nil
}

// Run is a shorthand for Exec{}.Run with a plain argv; it returns stdout.
func Run(ctx context.Context, argv ...string) ([]byte, error) {
	res, err := Exec{}.Run(ctx, Cmd{Argv: argv})
	return res.Stdout, err
}

// Output runs argv and returns trimmed stdout as a string.
func Output(ctx context.Context, argv ...string) (string, error) {
	out, err := Run(ctx, argv...)
	return strings.TrimSpace(string(out)), err
}

// Start starts a program in the background and returns it without waiting.
// The caller owns the returned *exec.Cmd (call Wait to reap it). Stdout and
// Stderr go where Cmd says (typically a log file); nothing is captured.
func Start(c Cmd, newSession bool) (*exec.Cmd, error) {
	if len(c.Argv) == 0 {
		return nil, errors.New("sysexec: empty argv")
	}
	cmd := build(context.Background(), c)
	cmd.Stdout = c.Stdout
	cmd.Stderr = c.Stderr
	if newSession {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, &Error{Argv: c.Argv, ExitCode: -1, Err: err}
	}
	return cmd, nil
}

// StartChild starts a program, in its own session, that the kernel sends
// sig when the thread that started it ends (PR_SET_PDEATHSIG), so it cannot
// outlive a crashed parent. Call it from a goroutine locked to its OS thread
// (runtime.LockOSThread) that stays alive while the child runs: Go may
// otherwise end that thread, and the signal with it, at any time.
func StartChild(c Cmd, sig syscall.Signal) (*exec.Cmd, error) {
	if len(c.Argv) == 0 {
		return nil, errors.New("sysexec: empty argv")
	}
	cmd := build(context.Background(), c)
	cmd.Stdout = c.Stdout
	cmd.Stderr = c.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: sig}
	if err := cmd.Start(); err != nil {
		return nil, &Error{Argv: c.Argv, ExitCode: -1, Err: err}
	}
	return cmd, nil
}

// LookPath reports the absolute path of a program, or an error naming it.
func LookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in PATH", name)
	}
	return p, nil
}

// Sibling finds the program name installed beside this executable (banger's
// programs are installed together), else in PATH.
func Sibling(name string) (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	p, err := LookPath(name)
	if err != nil {
		return "", err
	}
	return filepath.Abs(p) // PATH may hold a relative directory
}

// Replace runs argv (Argv[0] an absolute path) in place of this process,
// with its environment and open stdin, stdout and stderr. It returns only
// when the program cannot be run.
func Replace(argv []string) error {
	if !filepath.IsAbs(argv[0]) {
		return &Error{Argv: argv, ExitCode: -1, Err: errors.New("not an absolute path")}
	}
	err := syscall.Exec(argv[0], argv, os.Environ())
	return &Error{Argv: argv, ExitCode: -1, Err: err}
}

// Quote renders an argv for messages, quoting arguments that need it.
func Quote(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`|&;<>()*?[]{}!#~") {
			parts[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			parts[i] = a
		}
	}
	return strings.Join(parts, " ")
}

func build(ctx context.Context, c Cmd) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Dir = c.Dir
	if c.Env != nil {
		cmd.Env = append(cmd.Environ(), c.Env...)
	}
	cmd.Stdin = c.Stdin
	return cmd
}

func exitCode(cmd *exec.Cmd, err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1
		}
		return ee.ExitCode()
	}
	return -1
}

// tailBuffer keeps only the last max bytes written to it.
type tailBuffer struct {
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte { return t.buf }

// CheckExecutable accepts a regular file with an execute bit, the one rule
// for "is this a program banger can run"; the error says what is wrong in
// words that follow the path ("does not exist", "not executable ...").
func CheckExecutable(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &notExecutable{msg: "does not exist", err: err}
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &notExecutable{msg: "not a regular file"}
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return &notExecutable{msg: "not executable (chmod +x it)"}
	}
	return nil
}

type notExecutable struct {
	msg string
	err error
}

func (e *notExecutable) Error() string { return e.msg }
func (e *notExecutable) Unwrap() error { return e.err }
