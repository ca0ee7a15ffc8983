package qemu

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/vmm"
)

var countRE = regexp.MustCompile(`BANGER-COUNT (\d+) ([0-9a-f-]+)`)

// lastCount returns the last counter line in the console log.
func lastCount(t *testing.T, path string) (int, string) {
	t.Helper()
	b, _ := os.ReadFile(path)
	m := countRE.FindAllStringSubmatch(string(b), -1)
	if len(m) == 0 {
		return 0, ""
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n, m[len(m)-1][2]
}

// waitCount waits until the console shows a counter value above min.
func waitCount(t *testing.T, spec vmm.Spec, min int, limit time.Duration) (int, string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if n, boot := lastCount(t, spec.ConsoleLog); n > min {
			return n, boot
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(spec.ConsoleLog)
			v, _ := os.ReadFile(spec.VMMLog)
			t.Fatalf("counter never passed %d in %v.\nconsole:\n%s\nvmm log:\n%s", min, limit, tail(string(b), 2000), tail(string(v), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSnapshotRestoreContinues pauses a counting guest, saves its state,
// kills it and restores it into a new QEMU with different sockets and a
// different console log: the counter continues from where it was, with the
// same boot id and no new boot.
func TestSnapshotRestoreContinues(t *testing.T) {
	f := newBootFixture(t)
	spec := f.spec(t, "quiet banger.test=counter")
	d := New(Options{Accel: AccelTCG})
	h, err := d.Start(ctxFor(t, 60*time.Second), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background(), h, time.Second) })
	// The guest greets on the agent port and blocks until someone reads.
	agent, err := net.Dial("unix", spec.AgentSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	go io.Copy(io.Discard, agent)
	waitCount(t, spec, 3, 120*time.Second)

	ctx := ctxFor(t, 120*time.Second)
	if err := d.Pause(ctx, h); err != nil {
		t.Fatal(err)
	}
	if st, err := d.Status(ctx, h); err != nil || st.Running {
		t.Fatalf("status after Pause = %+v, %v", st, err)
	}
	atPause, boot := lastCount(t, spec.ConsoleLog)
	stateDir := t.TempDir()
	if err := d.SaveState(ctx, h, stateDir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(stateDir, StateFile))
	if err != nil || fi.Size() < 1<<20 {
		t.Fatalf("state file: %v, %v", fi, err)
	}
	if st, err := d.Status(ctx, h); err != nil || st.Running {
		t.Fatalf("status after SaveState = %+v, %v (want still paused)", st, err)
	}
	// The source resumes after a save (postmigrate -> running) and keeps
	// counting.
	if err := d.Resume(ctx, h); err != nil {
		t.Fatal(err)
	}
	waitCount(t, spec, atPause+1, 30*time.Second)
	if err := d.Stop(ctx, h, time.Second); err != nil {
		t.Fatal(err)
	}

	// A second VM with its own sockets and console restores the state.
	clone := spec
	run, err := os.MkdirTemp("", "bg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	clone.APISocket = filepath.Join(run, "vm", "qmp.sock")
	clone.AgentSocket = filepath.Join(run, "vm", "agent.sock")
	clone.ConsoleLog = filepath.Join(t.TempDir(), "console.log")
	h2, err := d.Restore(ctxFor(t, 120*time.Second), clone, stateDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background(), h2, time.Second) })
	if st, err := d.Status(ctx, h2); err != nil || !st.Running {
		t.Fatalf("status after Restore = %+v, %v", st, err)
	}
	n, boot2 := waitCount(t, clone, 0, 60*time.Second)
	console, _ := os.ReadFile(clone.ConsoleLog)
	if strings.Contains(string(console), "BANGER-BOOT-MARKER") || strings.Contains(string(console), "Linux version") {
		t.Errorf("the restored guest booted again:\n%s", tail(string(console), 2000))
	}
	first := countRE.FindStringSubmatch(string(console))
	firstN, _ := strconv.Atoi(first[1])
	if firstN != atPause+1 {
		t.Errorf("restored counter starts at %d, want %d (the value after the pause)", firstN, atPause+1)
	}
	if boot2 != boot {
		t.Errorf("boot id changed from %s to %s: the guest rebooted", boot, boot2)
	}
	t.Logf("paused at %d, restored guest at %d", atPause, n)
	if err := d.Stop(ctx, h2, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestSaveStateRefusesRunningVM(t *testing.T) {
	f := newBootFixture(t)
	spec := f.spec(t, "quiet banger.test=hold")
	d := New(Options{Accel: AccelTCG})
	h, err := d.Start(ctxFor(t, 60*time.Second), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background(), h, time.Second) })
	err = d.SaveState(ctxFor(t, 30*time.Second), h, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "pause it") {
		t.Fatalf("SaveState of a running VM: %v", err)
	}
}

func TestRestoreFailureCleansUp(t *testing.T) {
	f := newBootFixture(t)
	spec := f.spec(t, "")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, StateFile), []byte("not a migration stream"), 0o600)
	os.WriteFile(filepath.Join(dir, InfoFile), []byte(fmt.Sprintf(`{"accel":%q}`, AccelTCG)), 0o600)
	d := New(Options{Accel: AccelTCG})
	_, err := d.Restore(ctxFor(t, 60*time.Second), spec, dir)
	if err == nil {
		t.Fatal("Restore accepted a garbage state file")
	}
	t.Log(err)
	for _, s := range []string{spec.APISocket, spec.AgentSocket, filepath.Dir(spec.APISocket)} {
		if _, err := os.Lstat(s); !os.IsNotExist(err) {
			t.Errorf("%s left behind", s)
		}
	}
	if _, err := d.Restore(ctxFor(t, 10*time.Second), spec, t.TempDir()); err == nil || !strings.Contains(err.Error(), "state info") {
		t.Errorf("Restore of an empty dir: %v", err)
	}
}
