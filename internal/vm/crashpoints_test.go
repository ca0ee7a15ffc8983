package vm

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Every crashPoint(op, point) call in this package's code is declared in
// crashPointNames, in the order the calls appear (the order they run), so
// the crash-safety suite, which takes its list from CrashPoints, kills the
// daemon at each of them.
func TestCrashPointsDeclared(t *testing.T) {
	files, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string][]string{}
	fset := token.NewFileSet()
	for _, fi := range files {
		if !strings.HasSuffix(fi.Name(), ".go") || strings.HasSuffix(fi.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, fi.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if id, ok := call.Fun.(*ast.Ident); !ok || id.Name != "crashPoint" {
				return true
			}
			var args []string
			for _, a := range call.Args {
				lit, ok := a.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s: crashPoint takes string literals (the suite needs the names)", fset.Position(call.Pos()))
				}
				v, _ := strconv.Unquote(lit.Value)
				args = append(args, v)
			}
			found[args[0]] = append(found[args[0]], args[1])
			return true
		})
	}
	if len(found) == 0 {
		t.Fatal("found no crashPoint call: the parse is wrong")
	}
	for op, points := range found {
		if !slices.Equal(points, CrashPoints(op)) {
			t.Errorf("%s: the code calls crashPoint at %q but crashPointNames declares %q: update crashPointNames", op, points, CrashPoints(op))
		}
	}
	for op := range crashPointNames {
		if _, ok := found[op]; !ok {
			t.Errorf("crashPointNames declares %s but no crashPoint call has it", op)
		}
	}
}
