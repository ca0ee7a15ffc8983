package envknob

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/sysexec"
)

// All must list every Knob constant declared in envknob.go, or Active (the
// daemon's log, `daemon status`, doctor) would miss a switch.
func TestAllListsEveryKnob(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "envknob.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Knob" {
				continue
			}
			for _, n := range vs.Names {
				declared = append(declared, n.Name)
			}
		}
	}
	if len(declared) < 20 {
		t.Fatalf("found only %d Knob constants in envknob.go: the parse is wrong", len(declared))
	}
	if len(declared) != len(All) {
		t.Errorf("envknob.go declares %d knobs but All lists %d: add the new ones to All", len(declared), len(All))
	}
	seen := map[Knob]bool{}
	for _, k := range All {
		if seen[k] {
			t.Errorf("All lists %s twice", k)
		}
		seen[k] = true
	}
}

func TestActive(t *testing.T) {
	for _, k := range All {
		t.Setenv(string(k), "") // t.Setenv restores the caller's value
	}
	for _, k := range All {
		if err := unsetenv(string(k)); err != nil {
			t.Fatal(err)
		}
	}
	if got := Active(); len(got) != 0 {
		t.Fatalf("Active() = %v with no knob set", got)
	}
	t.Setenv(string(Cache), "/tmp/x") // steers tests only: not reported
	t.Setenv(string(CrashAt), "stop:record")
	t.Setenv(string(AssumeKVM), "1")
	t.Setenv(string(SkipSSHWait), "") // set but empty: still set, still reported
	got := Active()
	want := []Setting{{string(AssumeKVM), "1"}, {string(SkipSSHWait), ""}, {string(CrashAt), "stop:record"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Active() = %v, want %v (in InBinaries' order, test-harness knobs left out)", got, want)
	}
	if s := got[2].String(); s != "BANGER_TEST_CRASH_AT=stop:record" {
		t.Errorf("String() = %q", s)
	}
	if !AssumeKVM.On() || SkipSSHWait.On() || CrashAt.Value() != "stop:record" {
		t.Error("On/Value disagree with the environment")
	}
}

func unsetenv(k string) error { return os.Unsetenv(k) }

// InBinaries must name exactly the knobs that the packages built into
// banger's shipped binaries read, or a switch would bend a release binary
// without the daemon ever reporting it.
func TestInBinariesMatchesTheBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the shipped binaries' dependencies")
	}
	res, err := sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{Argv: []string{"go", "list", "-deps", "-f",
		"{{.Dir}}|{{join .GoFiles \",\"}}|{{.Module}}",
		"../../cmd/banger", "../../cmd/bangerd", "../../cmd/banger-helper", "../../cmd/banger-agent"}})
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		dir, rest, _ := strings.Cut(line, "|")
		files, mod, _ := strings.Cut(rest, "|")
		if !strings.HasPrefix(mod, "github.com/banger-dev/banger") || strings.HasSuffix(dir, "envknob") {
			continue
		}
		for _, f := range strings.Split(files, ",") {
			src, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range regexp.MustCompile(`envknob\.([A-Z][A-Za-z]*)`).FindAllStringSubmatch(string(src), -1) {
				if m[1] != "Active" && m[1] != "Setting" {
					used[m[1]] = true
				}
			}
		}
	}
	names := map[Knob]string{AssumeKVM: "AssumeKVM", SkipSSHWait: "SkipSSHWait", CrashAt: "CrashAt", QEMUAccel: "QEMUAccel"}
	var listed []string
	for _, k := range InBinaries {
		listed = append(listed, names[k])
	}
	var got []string
	for n := range used {
		got = append(got, n)
	}
	slices.Sort(got)
	slices.Sort(listed)
	if !slices.Equal(got, listed) {
		t.Errorf("the shipped binaries read knobs %v but InBinaries lists %v", got, listed)
	}
}
