package vmruntime

import (
	"context"
	"fmt"
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

// stepHook, when set, is called before each step. The crash-safety tests use
// it (through BANGER_TEST_CRASH_AT) to kill the daemon at a named step.
var stepHook func(op, step string)
