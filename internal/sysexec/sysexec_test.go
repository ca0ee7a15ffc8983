package sysexec

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// Sibling finds a program beside the running executable before PATH, and
// PATH when there is none beside it.
func TestSibling(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pathDir := t.TempDir()
	t.Setenv("PATH", pathDir)
	name := "sysexec-sibling-" + filepath.Base(pathDir)
	if _, err := Sibling(name); err == nil {
		t.Fatalf("Sibling(%s) found a program that is nowhere", name)
	}
	inPath := filepath.Join(pathDir, name)
	os.WriteFile(inPath, []byte("#!/bin/sh\n"), 0o755)
	if got, err := Sibling(name); err != nil || got != inPath {
		t.Errorf("Sibling(%s) = %q, %v; want the one in PATH, %s", name, got, err, inPath)
	}
	beside := filepath.Join(filepath.Dir(exe), name)
	if err := os.WriteFile(beside, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Skipf("cannot write beside the test binary: %v", err)
	}
	defer os.Remove(beside)
	if got, err := Sibling(name); err != nil || got != beside {
		t.Errorf("Sibling(%s) = %q, %v; want the one beside the executable, %s", name, got, err, beside)
	}
}

// Replace runs the program in place of the process (its output is the
// child's, its exit status the program's) and refuses a relative path.
func TestReplace(t *testing.T) {
	if os.Getenv("SYSEXEC_TEST_REPLACE") == "1" {
		err := Replace([]string{"/bin/sh", "-c", "echo replaced; exit 7"})
		os.Stdout.WriteString("still here: " + err.Error())
		os.Exit(1)
	}
	res, err := Exec{}.Run(context.Background(), Cmd{Argv: []string{os.Args[0], "-test.run", "^TestReplace$"}, Env: []string{"SYSEXEC_TEST_REPLACE=1"}})
	if res.ExitCode != 7 || string(res.Stdout) != "replaced\n" {
		t.Errorf("the replaced process: exit %d, stdout %q (%v); want exit 7, \"replaced\\n\"", res.ExitCode, res.Stdout, err)
	}
	if err := Replace([]string{"sh", "-c", "exit 0"}); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("Replace with a relative path: %v", err)
	}
}
