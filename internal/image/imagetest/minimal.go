package imagetest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/banger-dev/banger/internal/sysexec"
)

// MinimalRootfs writes to path a small ext4 image that passes `image
// register`'s content checks (an executable agent and sshd) without being
// bootable: for tests that need an image record, not a guest. No root
// needed: mkfs.ext4 -d packs a plain directory.
func MinimalRootfs(tb testing.TB, path string) {
	tb.Helper()
	tree := tb.TempDir()
	for _, f := range []string{"usr/local/bin/banger-agent", "usr/sbin/sshd", "sbin/init"} {
		full := filepath.Join(tree, f)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("#!/bin/sh\n"), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Truncate(path, 16<<20); err != nil {
		tb.Fatal(err)
	}
	if _, err := sysexec.Run(context.Background(), "mkfs.ext4", "-q", "-F", "-d", tree, path); err != nil {
		tb.Fatalf("make a minimal ext4 image: %v", err)
	}
}
