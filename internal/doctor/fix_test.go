package doctor

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

// Every warn and fail result in this package carries a fix. Running checks
// reaches only some branches, so this reads the source: each warn(detail,
// fix) and fail(detail, fix) call must pass a fix that is not "", and each
// api.CheckResult literal with a warn or fail status must set Fix.
func TestEveryWarnAndFailHasAFixInSource(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	calls := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				id, ok := n.Fun.(*ast.Ident)
				if !ok || (id.Name != "warn" && id.Name != "fail") {
					return true
				}
				calls++
				if len(n.Args) != 2 || isEmptyString(n.Args[1]) {
					t.Errorf("%s: %s(...) without a fix", fset.Position(n.Pos()), id.Name)
				}
			case *ast.CompositeLit:
				var status string
				var fix ast.Expr
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					switch key, _ := kv.Key.(*ast.Ident); {
					case key == nil:
					case key.Name == "Status":
						if sel, ok := kv.Value.(*ast.SelectorExpr); ok {
							status = sel.Sel.Name
						}
					case key.Name == "Fix":
						fix = kv.Value
					}
				}
				if (status == "CheckWarn" || status == "CheckFail") && (fix == nil || isEmptyString(fix)) {
					t.Errorf("%s: a %s result without a fix", fset.Position(n.Pos()), status)
				}
			}
			return true
		})
	}
	if calls < 50 {
		t.Fatalf("found only %d warn/fail calls: is this test reading the checks?", calls)
	}
}

func isEmptyString(e ast.Expr) bool {
	lit, ok := e.(*ast.BasicLit)
	return ok && lit.Kind == token.STRING && (lit.Value == `""` || lit.Value == "``")
}

// The same rule at run time, over every check on several hosts: one with
// nothing supplied (every "not checked" path), one whose daemon is down
// and whose /proc is empty, and this very machine.
func TestEveryWarnAndFailHasAFixAtRunTime(t *testing.T) {
	bare := newFakeHost(t)
	broken := newFakeHost(t)
	broken.env.DaemonInfo = func(context.Context) (api.DaemonInfo, error) {
		return api.DaemonInfo{}, errors.New("connect: no such file or directory")
	}
	broken.env.FreeBytes = func(string) (uint64, error) { return 0, errors.New("statfs: input/output error") }
	broken.env.CacheDir, broken.env.DataDir, broken.env.StateDir = "/c", "/d", filepath.Join(t.TempDir(), "missing")
	if err := os.RemoveAll(filepath.Join(broken.root, "proc")); err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string]*Env{"bare": bare.env, "broken": broken.env, "this host": RealEnv()} {
		seen := map[api.CheckStatus]int{}
		for _, r := range Run(context.Background(), env, nil) {
			seen[r.Status]++
			if (r.Status == api.CheckWarn || r.Status == api.CheckFail) && strings.TrimSpace(r.Fix) == "" {
				t.Errorf("%s: %s is %s without a fix: %s", name, r.Name, r.Status, r.Detail)
			}
			if r.Status == api.CheckSkip && r.Fix != "" {
				t.Errorf("%s: %s is skipped but offers a fix %q", name, r.Name, r.Fix)
			}
		}
		t.Logf("%s: %v", name, seen)
	}
}
