package sysexec

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckExecutable(t *testing.T) {
	dir := t.TempDir()
	prog, plain := filepath.Join(dir, "prog"), filepath.Join(dir, "plain")
	os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(plain, []byte("x"), 0o644)
	if err := CheckExecutable(prog); err != nil {
		t.Errorf("executable file: %v", err)
	}
	for path, want := range map[string]string{
		plain: "not executable (chmod +x it)", dir: "not a regular file", filepath.Join(dir, "none"): "does not exist",
	} {
		if err := CheckExecutable(path); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
	if err := CheckExecutable(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v is not fs.ErrNotExist", err)
	}
}

// Run reports the program's peak memory: a child that touches 64 MiB peaks
// at least that much above one that does nothing.
func TestRunReportsPeakMemory(t *testing.T) {
	switch os.Getenv("SYSEXEC_TEST_TOUCH_MIB") {
	case "0": // the child that does nothing
		os.Exit(0)
	case "64": // the child that touches 64 MiB
		b := make([]byte, 64<<20)
		for i := range b {
			b[i] = 1
		}
		os.Exit(int(b[len(b)-1]) - 1)
	}
	run := func(extra ...string) int64 {
		res, err := Exec{}.Run(context.Background(), Cmd{Argv: []string{os.Args[0], "-test.run=^TestRunReportsPeakMemory$"}, Env: append(os.Environ(), extra...)})
		if err != nil {
			t.Fatal(err)
		}
		return res.MaxRSSKiB
	}
	idle, busy := run("SYSEXEC_TEST_TOUCH_MIB=0"), run("SYSEXEC_TEST_TOUCH_MIB=64")
	if idle <= 0 || busy-idle < 60<<10 {
		t.Errorf("peak memory: idle %d KiB, touching 64 MiB %d KiB; want at least 60 MiB more", idle, busy)
	}
}
