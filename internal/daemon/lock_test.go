package daemon

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// holdLock takes path's flock through its own open file, as another
// daemon would, and writes pid into it.
func holdLock(t *testing.T, path string, pid int) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// A daemon killed a moment ago may hold its lock while its last threads
// exit: the next daemon waits for it instead of refusing to start.
func TestAcquireLockWaitsForADyingHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bangerd.lock")
	held := holdLock(t, path, 1<<22+1) // above pid_max: no such process
	go func() {
		time.Sleep(300 * time.Millisecond)
		held.Close()
	}()
	l, err := AcquireLock(path)
	if err != nil {
		t.Fatalf("lock held by a process that is gone: %v", err)
	}
	l.Release()
}

// A live holder is refused at once, naming its pid.
func TestAcquireLockRefusesALiveHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bangerd.lock")
	held := holdLock(t, path, os.Getpid())
	defer held.Close()
	start := time.Now()
	_, err := AcquireLock(path)
	if err == nil || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %s", d)
	}
}
