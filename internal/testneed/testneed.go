// Package testneed is how a test that cannot run here says so: it skips
// on a developer's machine and fails under CI=true, where .ci/run installs
// everything the tests need, so a missing tool or right cannot hide a test
// that CI is meant to run.
package testneed

import (
	"os"
	"testing"

	"github.com/banger-dev/banger/internal/sysexec"
)

// Skip skips the test with the message, or fails it under CI=true.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: this test must run)", args...)
	}
	t.Skipf(format, args...)
}

// Program returns prog's path, or skips (fails under CI=true) saying
// which Debian package has it.
func Program(t testing.TB, prog, pkg string) string {
	t.Helper()
	p, err := sysexec.LookPath(prog)
	if err != nil {
		Skip(t, "%s is missing (apt-get install %s)", prog, pkg)
	}
	return p
}
