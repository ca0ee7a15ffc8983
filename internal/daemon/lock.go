package daemon

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/banger-dev/banger/internal/hostinfo"
)

// Lock is the held single-instance lock.
type Lock struct{ f *os.File }

// AcquireLock takes an exclusive flock on path and writes our pid into it.
// A second daemon on the same state directory is refused, naming the lock
// file and the pid holding it.
func AcquireLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	// A daemon that was just killed can still hold the lock for a moment
	// after its main thread is gone (its other threads are exiting), so a
	// holder that is no longer alive gets a short grace before we give up.
	deadline := time.Now().Add(3 * time.Second)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		b, _ := os.ReadFile(path)
		holder := strings.TrimSpace(string(b))
		pid, perr := strconv.Atoi(holder)
		if errors.Is(err, syscall.EWOULDBLOCK) && perr == nil && !hostinfo.ProcessAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if perr != nil {
				holder = "unknown"
			}
			return nil, fmt.Errorf("another bangerd (pid %s) holds the lock %s: stop it with `banger daemon stop` before starting a new one", holder, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		l.f.Close()
	}
}
