package client

import (
	"context"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/server"
)

// loserDaemon is a bangerd that exits at once, as one does when another
// daemon holds the lock.
func loserDaemon(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "bangerd")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho 'another bangerd holds the lock' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// Many banger processes start bangerd at once: all but one daemon lose the
// lock and exit, while the winner may still be opening its store. A loser's
// banger must wait for the winner instead of failing.
func TestEnsureDaemonWaitsForTheDaemonThatWonTheLock(t *testing.T) {
	layout := paths.UnderRoot(socketDir(t))
	if err := layout.Ensure(); err != nil {
		t.Fatal(err)
	}
	// The winner: holds the lock (its pid, ours, is in the lock file) and
	// answers only after our daemon has exited.
	if err := os.WriteFile(layout.DaemonLock(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := server.New(log.New(io.Discard, "", 0))
	srv.Register(api.MethodDaemonInfo, server.Method(func(context.Context, struct{}, func(api.Progress)) (api.DaemonInfo, error) {
		return api.DaemonInfo{BuildID: "winner", APIVersion: api.Version, PID: os.Getpid()}, nil
	}))
	go func() {
		time.Sleep(800 * time.Millisecond)
		ln, err := server.Listen(layout.DaemonSocket())
		if err != nil {
			t.Error(err)
			return
		}
		go srv.Serve(ln)
	}()
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := EnsureDaemon(ctx, layout, EnsureOptions{Bin: loserDaemon(t), BuildID: "winner"}); err != nil {
		t.Fatalf("EnsureDaemon gave up while the winning daemon was starting: %v", err)
	}
}

// With no other daemon alive, a daemon that exits during start-up is
// reported at once, with its log.
func TestEnsureDaemonReportsADaemonThatDied(t *testing.T) {
	layout := paths.UnderRoot(socketDir(t))
	if err := layout.Ensure(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := EnsureDaemon(context.Background(), layout, EnsureOptions{Bin: loserDaemon(t), BuildID: "x", StartTimeout: 2 * time.Minute})
	if err == nil || !strings.Contains(err.Error(), "exited during start-up") || !strings.Contains(err.Error(), "holds the lock") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("took %s to report a dead daemon: want well under the 2m start timeout", d)
	}
}

// fakeDaemon serves daemon.info for build on the layout's socket and counts
// the calls; stop closes it, leaving the socket file when keepSocket (as a
// crashed daemon does).
type fakeDaemon struct {
	srv     *server.Server
	ln      net.Listener
	infos   atomic.Int32
	accepts atomic.Int32 // connections accepted
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func startFake(t *testing.T, layout paths.Layout, build string) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{srv: server.New(log.New(io.Discard, "", 0))}
	f.srv.Register(api.MethodDaemonInfo, server.Method(func(context.Context, struct{}, func(api.Progress)) (api.DaemonInfo, error) {
		f.infos.Add(1)
		return api.DaemonInfo{BuildID: build, APIVersion: api.Version, PID: os.Getpid()}, nil
	}))
	ln, err := server.Listen(layout.DaemonSocket())
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	go f.srv.Serve(countingListener{ln, &f.accepts})
	t.Cleanup(func() { f.srv.Shutdown(context.Background()) })
	return f
}

// withFakeDaemon serves a fake daemon of build in a fresh layout, with the
// options EnsureDaemon expects of that build (a daemon it would start
// instead fails at once) and a context for the test.
func withFakeDaemon(t *testing.T, build string) (paths.Layout, context.Context, EnsureOptions, *fakeDaemon) {
	t.Helper()
	layout := paths.UnderRoot(socketDir(t))
	if err := layout.Ensure(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return layout, ctx, EnsureOptions{Bin: loserDaemon(t), BuildID: build}, startFake(t, layout, build)
}

func (f *fakeDaemon) stop(keepSocket bool) {
	f.ln.(*net.UnixListener).SetUnlinkOnClose(!keepSocket)
	f.srv.Shutdown(context.Background())
}

// The first banger command asks daemon.info which build serves the socket;
// later ones skip that round trip while the same daemon serves the same
// socket, and ask again once another daemon has bound it or the first one
// died.
func TestEnsureDaemonAsksForTheBuildOncePerDaemon(t *testing.T) {
	layout, ctx, opts, first := withFakeDaemon(t, "b1")
	for i := 0; i < 3; i++ {
		if _, err := EnsureDaemon(ctx, layout, opts); err != nil {
			t.Fatal(err)
		}
	}
	if n := first.infos.Load(); n != 1 {
		t.Fatalf("%d daemon.info calls for 3 commands against one daemon, want 1", n)
	}

	// Another build expected (banger was rebuilt): asked again, and refused
	// here since this daemon cannot be replaced (a real one would be).
	if _, err := EnsureDaemon(ctx, layout, EnsureOptions{Bin: loserDaemon(t), BuildID: "b2"}); err == nil {
		t.Fatal("a daemon of build b1 accepted for build b2")
	}
	if n := first.infos.Load(); n != 2 {
		t.Fatalf("%d daemon.info calls after the expected build changed, want 2", n)
	}

	// A new daemon binds a new socket: asked again.
	first.stop(false)
	second := startFake(t, layout, "b1")
	if _, err := EnsureDaemon(ctx, layout, opts); err != nil {
		t.Fatal(err)
	}
	if n := second.infos.Load(); n != 1 {
		t.Fatalf("new daemon on a new socket: %d daemon.info calls, want 1", n)
	}

	// The daemon died and left its socket file: noticed, and a new one is
	// started (here it fails to start, which is the proof).
	second.stop(true)
	if _, err := os.Stat(layout.DaemonSocket()); err != nil {
		t.Fatalf("socket file not left behind: %v", err)
	}
	_, err := EnsureDaemon(ctx, layout, opts)
	if err == nil || !strings.Contains(err.Error(), "exited during start-up") {
		t.Fatalf("dead daemon behind a verified socket: err = %v, want an attempt to start one", err)
	}
}

// A command against a verified daemon connects once: the connection that
// checks the daemon still accepts carries the first call. A spare older
// than spareMaxAge (bangerd may have closed it) is dropped for a new one.
func TestVerifiedDaemonIsDialedOnce(t *testing.T) {
	layout, ctx, opts, f := withFakeDaemon(t, "b1")
	if _, err := EnsureDaemon(ctx, layout, opts); err != nil { // verifies, remembers
		t.Fatal(err)
	}
	before := f.accepts.Load()
	c, err := EnsureDaemon(ctx, layout, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.accepts.Load() - before; n != 1 {
		t.Errorf("a command against a verified daemon made %d connections, want 1", n)
	}

	// A stream (vm exec, cp, ports) is carried by the spare too.
	before = f.accepts.Load()
	if c, err = EnsureDaemon(ctx, layout, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stream(ctx, "test.stream", nil); err == nil {
		t.Fatal("a stream of a method the fake does not serve was opened")
	}
	if n := f.accepts.Load() - before; n != 1 {
		t.Errorf("a stream against a verified daemon made %d connections, want 1", n)
	}

	before = f.accepts.Load()
	c, err = EnsureDaemon(ctx, layout, opts)
	if err != nil {
		t.Fatal(err)
	}
	old := c.spare.Load()
	if old == nil {
		t.Fatal("no spare connection kept")
	}
	old.at = time.Now().Add(-spareMaxAge)
	if _, err := c.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.accepts.Load() - before; n != 2 {
		t.Errorf("a command whose spare connection aged made %d connections, want 2 (the spare, a new one)", n)
	}
	if _, err := old.conn.Write([]byte("x")); err == nil {
		t.Error("the aged spare connection was not closed")
	}
}
