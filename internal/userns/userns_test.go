package userns

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestReadRangesAndFreeStart(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := Host{Root: root}
	if got := h.FreeStart(); got != 100000 {
		t.Errorf("no files: free start %d, want 100000", got)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("subuid", "# comment\nalice:100000:65536\nbroken line\nbob:x:1\ncarol:165536:0\n1001:300000:65536\n")
	write("subgid", "alice:100000:65536\n")
	got, err := ReadRanges(filepath.Join(root, "etc", "subuid"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{"alice", 100000, 65536}, {"1001", 300000, 65536}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ranges %+v, want %+v", got, want)
	}
	if got := h.FreeStart(); got != 365536 {
		t.Errorf("free start %d, want 365536", got)
	}
	// The uid's own entry counts as the user's.
	write("subgid", "alice:100000:65536\n1001:300000:65536\n")
	lp := func(string) (string, error) { return "/usr/bin/x", nil }
	if p := (Host{Root: root, LookPath: lp}).Check(context.Background(), "dave", 1001); len(p) != 0 {
		t.Errorf("uid entries: %v", p)
	}
}

func TestFixesOnce(t *testing.T) {
	got := Fixes([]Problem{{"a", "fix 1"}, {"b", "fix 2"}, {"c", "fix 1"}})
	if !reflect.DeepEqual(got, []string{"fix 1", "fix 2"}) {
		t.Errorf("fixes %v", got)
	}
}
