package fcfake

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/sysexec"
)

// TestMainWithBinary builds cmd/fake-firecracker into a temp dir, stores its
// path in *bin, runs the tests and removes the binary: the TestMain of every
// package that drives the fake as a real process.
func TestMainWithBinary(m *testing.M, bin *string) {
	dir, err := os.MkdirTemp("", "fcfake-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin = filepath.Join(dir, "fake-firecracker")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	_, err = sysexec.Run(ctx, "go", "build", "-o", *bin, "github.com/banger-dev/banger/cmd/fake-firecracker")
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "build fake-firecracker:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
