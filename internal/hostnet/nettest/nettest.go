// Package nettest gives host-integration tests their own network namespaces:
// each test creates fresh namespaces, runs code inside them and deletes them
// when it ends, so the host's network is never touched.
package nettest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/vishvananda/netns"
)

// RequireRoot skips the test when it cannot create network namespaces.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("host integration test: needs root to create network namespaces (run as root, e.g. sudo go test)")
	}
	if _, err := sysexec.LookPath("ip"); err != nil {
		t.Skip("host integration test: needs the ip command (apt-get install iproute2)")
	}
}

// NS is a network namespace created for one test.
type NS struct{ Name string }

// New creates a namespace (named bgt-<random>) with loopback up and deletes
// it when the test ends.
func New(t testing.TB) NS {
	t.Helper()
	RequireRoot(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "bgt-" + hex.EncodeToString(b)
	if _, err := sysexec.Run(context.Background(), "ip", "netns", "add", name); err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() {
		if _, err := sysexec.Run(context.Background(), "ip", "netns", "del", name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	ns := NS{Name: name}
	ns.Exec(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Do runs fn on an OS thread switched into the namespace and fails the test
// with fn's error. The thread is discarded afterwards (its goroutine exits
// while still locked), so no other code ever runs in the namespace by
// accident. fn must not call t.Fatal (it runs on another goroutine).
func (ns NS) Do(t testing.TB, fn func() error) {
	t.Helper()
	done := make(chan any, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns.Name)
		if err != nil {
			done <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			done <- err
			return
		}
		defer func() {
			if r := recover(); r != nil {
				done <- r
			}
		}()
		if err := fn(); err != nil {
			done <- err
			return
		}
		done <- nil
	}()
	if r := <-done; r != nil {
		t.Fatalf("in netns %s: %v", ns.Name, r)
	}
}

// Exec runs a program inside the namespace and fails the test on error.
func (ns NS) Exec(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := ns.Runner().Run(context.Background(), sysexec.Cmd{Argv: argv})
	if err != nil {
		t.Fatalf("%v", err)
	}
	return strings.TrimSpace(string(out.Stdout))
}

// Runner runs programs inside the namespace (through `ip netns exec`).
func (ns NS) Runner() sysexec.Runner { return runner{ns.Name} }

type runner struct{ ns string }

func (r runner) Run(ctx context.Context, c sysexec.Cmd) (sysexec.Result, error) {
	c.Argv = append([]string{"ip", "netns", "exec", r.ns}, c.Argv...)
	return sysexec.Exec{}.Run(ctx, c)
}
