package archtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/sysexec"
)

const module = "github.com/banger-dev/banger"

// clientSide packages run in the user's CLI/TUI process; they must reach the
// daemon only through the API, never link its internals or the SQLite driver.
var clientSide = []string{"cmd/banger", "cmd/banger-mcp", "cmd/banger-tui", "internal/cli", "internal/client", "internal/tui", "internal/mcpserver"}

var forbidden = []string{
	module + "/internal/daemon",
	module + "/internal/server",
	module + "/internal/store",
	module + "/internal/vm",
	module + "/internal/vmm", // and its subpackages
	module + "/internal/hostnet",
	module + "/internal/privhelper",
	"modernc.org/sqlite",
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func isForbidden(dep string) (string, bool) {
	for _, f := range forbidden {
		if dep == f || strings.HasPrefix(dep, f+"/") {
			return f, true
		}
	}
	return "", false
}

func TestClientSideImportsNoDaemonInternals(t *testing.T) {
	root := repoRoot(t)
	checked := 0
	for _, pkg := range clientSide {
		if _, err := os.Stat(filepath.Join(root, pkg)); err != nil {
			t.Logf("%s does not exist yet; skipped", pkg)
			continue
		}
		deps, importers := listDeps(t, root, pkg)
		for _, dep := range deps {
			if rule, bad := isForbidden(dep); bad {
				t.Errorf("%s depends on %s (forbidden: %s); imported by %v", pkg, dep, rule, importers[dep])
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no client-side package found: the test would prove nothing")
	}
}

// startupWeight are packages whose initialisation at every start made the
// CLI measurably slower (docs/benchmarks.md, issue 14): the MCP SDK (its
// JSON schemas, encoding/gob) lives in banger-mcp, the TUI's libraries in
// banger-tui, and the registry client in bangerd.
var startupWeight = []string{
	"github.com/modelcontextprotocol/go-sdk",
	"github.com/google/jsonschema-go",
	"encoding/gob",
	module + "/internal/tui",
	"charm.land",
	"github.com/charmbracelet",
	"github.com/atotto/clipboard",
	"github.com/google/go-containerregistry",
	"github.com/opencontainers/go-digest",
}

func TestCLILinksNoStartupWeight(t *testing.T) {
	deps, importers := listDeps(t, repoRoot(t), "cmd/banger")
	for _, dep := range deps {
		for _, w := range startupWeight {
			if dep == w || strings.HasPrefix(dep, w+"/") {
				t.Errorf("cmd/banger links %s (initialised at every CLI start); imported by %v", dep, importers[dep])
			}
		}
	}
}

// listDeps lists pkg's dependencies (go list -deps) and, for each, the
// packages importing it, to explain a chain.
func listDeps(t *testing.T, root, pkg string) ([]string, map[string][]string) {
	t.Helper()
	res, err := sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{
		Argv: []string{"go", "list", "-deps", "-json=ImportPath,Imports", "./" + pkg}, Dir: root})
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	importers := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(res.Stdout))
	var deps []string
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		deps = append(deps, p.ImportPath)
		for _, imp := range p.Imports {
			importers[imp] = append(importers[imp], p.ImportPath)
		}
	}
	if len(deps) == 0 {
		t.Fatalf("go list %s returned no packages", pkg)
	}
	return deps, importers
}

func TestForbiddenMatching(t *testing.T) {
	for dep, want := range map[string]bool{
		module + "/internal/vmm/qemu": true,
		module + "/internal/vm":       true,
		module + "/internal/vmmx":     false,
		module + "/internal/api":      false,
		"modernc.org/sqlite/lib":      true,
		"modernc.org/libc":            false,
	} {
		if _, got := isForbidden(dep); got != want {
			t.Errorf("isForbidden(%s) = %v, want %v", dep, got, want)
		}
	}
}
