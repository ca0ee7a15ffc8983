package vmruntime

import (
	"context"
	"strings"
	"testing"
)

// TestRunStepsRefusesUndeclaredSteps: an operation whose steps differ from
// stepNames (a step added, renamed or moved) does not run at all, so the
// declared list the crash suite derives its points from stays the truth.
func TestRunStepsRefusesUndeclaredSteps(t *testing.T) {
	ran := 0
	do := func(context.Context) error { ran++; return nil }
	for name, steps := range map[string][]step{
		"added":     {{name: "vm-dir", do: do}, {name: "work-disk", do: do}, {name: "root-disk", do: do}, {name: "new-step", do: do}},
		"renamed":   {{name: "vm-dir", do: do}, {name: "work-disk", do: do}, {name: "rootdisk", do: do}},
		"reordered": {{name: "work-disk", do: do}, {name: "vm-dir", do: do}, {name: "root-disk", do: do}},
	} {
		err := runSteps(context.Background(), "provision", steps, nop)
		if err == nil || !strings.Contains(err.Error(), "stepNames") {
			t.Errorf("%s: runSteps = %v, want the stepNames mismatch", name, err)
		}
	}
	if err := runSteps(context.Background(), "unknown-op", []step{{name: "x", do: do}}, nop); err == nil {
		t.Error("an operation missing from stepNames ran")
	}
	if ran != 0 {
		t.Errorf("%d steps ran despite the mismatch", ran)
	}
	if err := runSteps(context.Background(), "provision", []step{{name: "vm-dir", do: do}, {name: "work-disk", do: do}, {name: "root-disk", do: do}}, nop); err != nil || ran != 3 {
		t.Errorf("the declared steps: err %v, %d ran", err, ran)
	}
}
