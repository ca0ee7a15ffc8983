package vmruntime

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

// step is one named, undoable piece of a lifecycle operation.
type step struct {
	name string
	msg  string // what the user sees while it runs
	do   func(ctx context.Context) error
	// undo reverses do after a later step failed. It gets a fresh context:
	// the request's may be the reason we are undoing.
	undo func(ctx context.Context)
}

// StepError says which step of an operation failed.
type StepError struct {
	Op   string // "start", "provision", ...
	Step string
	Err  error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("%s failed at step %q: %v", e.Op, e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// undoTimeout bounds the whole undo of a failed operation.
const undoTimeout = 60 * time.Second

// runSteps runs steps in order, reporting each as progress. When one fails,
// the undos of the steps that completed run in reverse order and the error
// names the failed step.
func runSteps(ctx context.Context, op string, steps []step, progress func(api.Progress)) error {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.name
	}
	if want, ok := stepNames[op]; !ok || !slices.Equal(names, want) {
		// A programming error, caught by the first test that runs op.
		return fmt.Errorf("vmruntime: %s runs steps %q but stepNames declares %q: update stepNames", op, names, want)
	}
	for i, s := range steps {
		if hook := stepHook; hook != nil {
			hook(op, s.name)
		}
		progress(api.Progress{Step: s.name, Message: s.msg, Current: int64(i + 1), Total: int64(len(steps))})
		if err := s.do(ctx); err != nil {
			undoCtx, cancel := context.WithTimeout(context.Background(), undoTimeout)
			for j := i - 1; j >= 0; j-- {
				if steps[j].undo != nil {
					steps[j].undo(undoCtx)
				}
			}
			cancel()
			return &StepError{Op: op, Step: s.name, Err: err}
		}
	}
	return nil
}

// stepNames names each operation's steps in the order they run. runSteps
// refuses an operation whose steps differ, so the list cannot drift from the
// code: the crash-safety suite (test/e2e) kills the daemon before each step
// named here, and a new step is covered without anyone remembering to.
var stepNames = map[string][]string{
	"provision": {"vm-dir", "work-disk", "root-disk"},
	"start":     {"load-bundle", "root-disk", "network", "tap", "launch-vmm", "wait-agent", "wait-ssh"},
	"snapshot":  {"check-space", "manifest", "pause", "save-state", "copy-disks", "write-manifest", "resume"},
	"resume":    {"load-bundle", "network", "tap", "restore-vmm", "wait-agent"},
}

// StepNames returns the steps of op ("provision", "start", "snapshot",
// "resume") in order: the
// points where BANGER_TEST_CRASH_AT=<op>:<step> can kill the daemon.
func StepNames(op string) []string { return slices.Clone(stepNames[op]) }

// stepHook, when set, is called before each step. The crash-safety tests use
// it (through BANGER_TEST_CRASH_AT) to kill the daemon at a named step.
var stepHook func(op, step string)
