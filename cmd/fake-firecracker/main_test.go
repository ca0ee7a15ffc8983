package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/vmm/firecracker"
)

func TestRefusesExistingSocketPath(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	if err := os.WriteFile(sock, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--api-sock", sock, "--id", "x"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1 (stderr %q)", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "address in use") {
		t.Errorf("stderr = %q", stderr.String())
	}
	if data, _ := os.ReadFile(sock); string(data) != "stale" {
		t.Error("the existing file was replaced")
	}
}

func TestVersionAndBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--version"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Firecracker v1.16.1") {
		t.Fatalf("--version: exit %d, %q", code, stdout.String())
	}
	if code := run([]string{"--no-such-flag"}, &stdout, &stderr); code != 2 {
		t.Fatalf("unknown flag: exit %d, want 2", code)
	}
}

// TestFailedSnapshotLoadExitsNonZero: like Firecracker, the process ends
// with an error after a load that fails past its argument checks.
func TestFailedSnapshotLoadExitsNonZero(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	var stdout, stderr bytes.Buffer
	code := make(chan int, 1)
	go func() { code <- run([]string{"--api-sock", sock, "--id", "x"}, &stdout, &stderr) }()
	c := firecracker.NewClient(sock)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.GetInstanceInfo(context.Background()); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("fake never came up: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	err := c.PutSnapshotLoad(context.Background(), firecracker.SnapshotLoadParams{
		SnapshotPath: filepath.Join(dir, "nosuch"),
		MemBackend:   &firecracker.MemoryBackend{BackendType: firecracker.MemBackendFile, BackendPath: filepath.Join(dir, "mem")},
	})
	if err == nil {
		t.Fatal("load of a missing snapshot succeeded")
	}
	select {
	case c := <-code:
		if c != 1 || !strings.Contains(stderr.String(), "snapshot load failed") {
			t.Fatalf("exit %d, stderr %q", c, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the fake kept running after a failed load")
	}
}
