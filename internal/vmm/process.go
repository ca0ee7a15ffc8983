package vmm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/banger-dev/banger/internal/hostinfo"
)

// ProcessAlive reports whether pid is a live (non-zombie) process whose
// command line contains needle (typically the VM's API or QMP socket path).
// Matching the command line keeps a recycled pid from being mistaken for a
// VMM.
func ProcessAlive(pid int, needle string) bool {
	if !hostinfo.ProcessAlive(pid) {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	return needle == "" || bytes.Contains(cmdline, []byte(needle))
}

// WaitGone polls until the process no longer matches or ctx ends.
func WaitGone(ctx context.Context, pid int, needle string) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for ProcessAlive(pid, needle) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Terminate sends SIGTERM, waits up to grace, then SIGKILL and waits up to
// another grace. It is a no-op for a process that is already gone.
func Terminate(pid int, needle string, grace time.Duration) error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if !ProcessAlive(pid, needle) {
			return nil
		}
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		err := WaitGone(ctx, pid, needle)
		cancel()
		if err == nil {
			return nil
		}
	}
	return errors.New("process " + strconv.Itoa(pid) + " survived SIGKILL")
}
