package imagetest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestKeyCoversBuilderCode: the cached test image is rebuilt when the image
// builder's Go code changes, not only its scripts and the agent.
func TestKeyCoversBuilderCode(t *testing.T) {
	files, err := builderSources()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
		if strings.HasSuffix(f, "_test.go") {
			t.Errorf("a test file is part of the key: %s", f)
		}
	}
	for _, want := range []string{"build.go", "recipe.go"} {
		if !slices.Contains(names, want) {
			t.Errorf("the key's builder sources %q lack %s", names, want)
		}
	}
	// The same builder file with one byte changed gives another key.
	dir := t.TempDir()
	copyOf := filepath.Join(dir, "build.go")
	data, err := os.ReadFile(files[slices.Index(names, "build.go")])
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(copyOf, data, 0o644)
	before, err := inputsKey(copyOf)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(copyOf, append(data, '\n'), 0o644)
	after, err := inputsKey(copyOf)
	if err != nil {
		t.Fatal(err)
	}
	if before == after {
		t.Error("a changed builder file left the key unchanged")
	}
}
