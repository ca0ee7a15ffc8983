package sysexec

import (
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
