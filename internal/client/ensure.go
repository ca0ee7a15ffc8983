package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/hostinfo"
	"github.com/banger-dev/banger/internal/logtail"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/version"
)

// EnsureOptions tune EnsureDaemon; zero values are the defaults.
type EnsureOptions struct {
	// Bin is the bangerd binary; "" = $BANGER_DAEMON_BIN, else bangerd next
	// to this executable, else bangerd in PATH.
	Bin string
	// BuildID the daemon must have; "" = version.ExpectedDaemonID(Bin).
	BuildID string
	// StartTimeout bounds waiting for a new daemon's socket (default 10s).
	StartTimeout time.Duration
	// Status receives one-line notes ("starting bangerd", "restarting stale bangerd").
	Status func(string)
}

// EnsureDaemon returns a client for a running daemon of this build, starting
// one when none answers and replacing one built from different sources
// (its VMs keep running).
func EnsureDaemon(ctx context.Context, layout paths.Layout, opts EnsureOptions) (*Client, error) {
	if opts.BuildID == "" {
		opts.BuildID = ExpectedBuildID(opts.Bin)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 10 * time.Second
	}
	if opts.Status == nil {
		opts.Status = func(string) {}
	}
	c := New(layout.DaemonSocket())
	if conn := alreadyVerified(ctx, layout, opts.BuildID); conn != nil {
		c.keepSpare(conn)
		return c, nil
	}
	// The socket's identity is taken before daemon.info: a daemon swapped
	// in after it binds a new socket, which the note then does not match.
	sockID, _ := socketID(layout.DaemonSocket())
	infoCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := c.Info(infoCtx)
	cancel()
	if err == nil {
		if info.BuildID == opts.BuildID {
			remember(layout, sockID, info.BuildID)
			return c, nil
		}
		opts.Status(fmt.Sprintf("bangerd (pid %d) is from another build (%s, want %s): restarting it; VMs keep running",
			info.PID, short(info.BuildID), short(opts.BuildID)))
		if err := StopDaemon(ctx, c, info.PID, false); err != nil {
			return nil, fmt.Errorf("stop stale bangerd: %w", err)
		}
	} else {
		var ue *UnreachableError
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code == api.CodeVersionMismatch {
			return nil, fmt.Errorf("%w: stop it with `banger daemon stop` or kill it", err)
		}
		if !errors.As(err, &ue) {
			return nil, err
		}
	}
	sockID, err = startDaemon(ctx, layout, opts)
	if err != nil {
		return nil, err
	}
	remember(layout, sockID, opts.BuildID) // startDaemon checked its build
	return c, nil
}

// Every banger command used to ask daemon.info which build answers on the
// socket: a round trip before the real call. Once a daemon is verified,
// its build is remembered with the identity of the socket file it bound
// (device, inode, change time) in verifiedPath; while the socket keeps
// that identity the same daemon serves it, so later commands skip
// daemon.info. Any daemon that starts binds a new socket file, which
// invalidates the note, and a build mismatch is still noticed, because
// the note names the build and the expected build is compared with it.

func verifiedPath(l paths.Layout) string { return l.DaemonSocket() + ".verified" }

// socketID identifies the socket file one daemon bound.
func socketID(sock string) (string, bool) {
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != os.ModeSocket {
		return "", false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", false
	}
	return fmt.Sprintf("%d:%d:%d.%09d", st.Dev, st.Ino, st.Ctim.Sec, st.Ctim.Nsec), true
}

// remember notes that the daemon on the socket with identity id is of build.
func remember(l paths.Layout, id, build string) {
	if id == "" {
		return
	}
	// Written aside and renamed: a concurrent banger reads all or nothing.
	tmp := fmt.Sprintf("%s.%d", verifiedPath(l), os.Getpid())
	err := os.WriteFile(tmp, []byte(id+" "+build+"\n"), 0o600)
	if err == nil {
		err = os.Rename(tmp, verifiedPath(l))
	}
	if err != nil {
		os.Remove(tmp) // the note is an optimisation: without it, daemon.info is asked
	}
}

// alreadyVerified checks whether the socket is still the one a daemon of
// build was verified on, and that daemon still accepts connections (a
// crashed one leaves its socket file behind). It returns the accepted
// connection, for the first call, or nil.
func alreadyVerified(ctx context.Context, l paths.Layout, build string) net.Conn {
	note, err := os.ReadFile(verifiedPath(l))
	if err != nil {
		return nil
	}
	id, ok := socketID(l.DaemonSocket())
	if !ok || string(note) != id+" "+build+"\n" {
		return nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", l.DaemonSocket())
	if err != nil {
		return nil
	}
	return conn
}

// StopDaemon asks the daemon to exit and waits until its process is gone.
func StopDaemon(ctx context.Context, c *Client, pid int, stopVMs bool) error {
	if err := c.Call(ctx, api.MethodDaemonStop, api.DaemonStopParams{StopVMs: stopVMs}, nil, nil); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for hostinfo.ProcessAlive(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("bangerd (pid %d) did not exit within 30s after daemon.stop: kill it with `kill %d`", pid, pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// ExpectedBuildID is the build id a daemon must report to be current for
// this CLI (see version.ExpectedDaemonID); bin as for DaemonBin.
func ExpectedBuildID(bin string) string {
	if b, err := DaemonBin(bin); err == nil {
		return version.ExpectedDaemonID(b)
	}
	return version.ID()
}

// DaemonBin finds the bangerd binary.
func DaemonBin(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if b := os.Getenv("BANGER_DAEMON_BIN"); b != "" {
		return b, nil
	}
	p, err := sysexec.Sibling("bangerd")
	if err != nil {
		return "", fmt.Errorf("bangerd not found next to banger nor in PATH: install it (make install) or set BANGER_DAEMON_BIN")
	}
	return p, nil
}

// startDaemon starts bangerd and waits until a daemon of opts.BuildID
// answers; it returns the identity of the socket that daemon answered on.
func startDaemon(ctx context.Context, layout paths.Layout, opts EnsureOptions) (string, error) {
	bin, err := DaemonBin(opts.Bin)
	if err != nil {
		return "", err
	}
	if err := layout.Ensure(); err != nil {
		return "", err
	}
	logPath := layout.DaemonLog()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("open daemon log: %w", err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, 2)
	opts.Status("starting bangerd")
	// Own session: the daemon outlives this CLI and its terminal. It
	// inherits the environment, so BANGER_* and XDG_* reach it.
	// Working directory "/": the daemon must not pin whatever directory the
	// user happened to be in.
	cmd, err := sysexec.Start(sysexec.Cmd{Argv: []string{bin}, Dir: "/", Stdout: logf, Stderr: logf}, true)
	if err != nil {
		return "", fmt.Errorf("start bangerd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reap it if it dies while we wait

	c := New(layout.DaemonSocket())
	deadline := time.Now().Add(opts.StartTimeout)
	var lastErr, exitErr error
	var exitedAt time.Time
	for time.Now().Before(deadline) {
		sockID, _ := socketID(layout.DaemonSocket())
		callCtx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := c.Info(callCtx)
		cancel()
		if err == nil {
			if info.BuildID != opts.BuildID {
				return "", fmt.Errorf("started %s but it reports build %s, not %s: banger and bangerd come from different builds; rebuild both (make build) or set BANGER_DAEMON_BIN",
					bin, short(info.BuildID), short(opts.BuildID))
			}
			return sockID, nil
		}
		lastErr = err
		if exitErr != nil && time.Since(exitedAt) > 500*time.Millisecond && !lockHolderAlive(layout.DaemonLock()) {
			// Ours died and no other daemon is starting: give up now.
			return "", fmt.Errorf("bangerd exited during start-up (%v); log %s:\n%s", exitErr, logPath, logTail(logPath, logStart))
		}
		select {
		case werr := <-exited:
			// Ours exits when another daemon (another banger started one
			// at the same moment) won the lock: that one may still be
			// opening its store, so keep waiting for it to answer.
			exitErr, exitedAt = werr, time.Now()
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
	if exitErr != nil {
		return "", fmt.Errorf("bangerd exited during start-up (%v) and no other bangerd answered on %s within %s; log %s:\n%s",
			exitErr, layout.DaemonSocket(), opts.StartTimeout, logPath, logTail(logPath, logStart))
	}
	return "", fmt.Errorf("bangerd did not answer on %s within %s (%v); log %s:\n%s",
		layout.DaemonSocket(), opts.StartTimeout, lastErr, logPath, logTail(logPath, logStart))
}

// lockHolderAlive reports whether the pid a daemon wrote into its lock
// file is alive: some daemon is running or starting up. It only reads the
// file; taking the lock, even briefly, could turn away a starting daemon.
func lockHolderAlive(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && hostinfo.ProcessAlive(pid)
}

// logTail returns the last lines the daemon wrote since from, indented.
func logTail(path string, from int64) string {
	s, err := logtail.Lines(path, from, 20)
	if err != nil {
		return "  (log unreadable: " + err.Error() + ")"
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
