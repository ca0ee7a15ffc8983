package client

import (
	"context"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
