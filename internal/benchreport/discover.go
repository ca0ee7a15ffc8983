package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
)

// Package is a directory with Go benchmarks.
type Package struct {
	Dir        string // relative to the repository root, slash-separated
	Benchmarks []string
}

// Discover finds every `func BenchmarkXxx(b *testing.B)` in the repository's
// _test.go files, so a new benchmark is in the report without editing it.
func Discover(root string) ([]Package, error) {
	byDir := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !isBenchmark(fn) {
				continue
			}
			rel, err := filepath.Rel(root, filepath.Dir(p))
			if err != nil {
				return err
			}
			dir := filepath.ToSlash(rel)
			byDir[dir] = append(byDir[dir], fn.Name.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var pkgs []Package
	for dir, names := range byDir {
		sort.Strings(names)
		pkgs = append(pkgs, Package{Dir: dir, Benchmarks: names})
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Dir < pkgs[j].Dir })
	return pkgs, nil
}

// isBenchmark reports whether fn is what `go test -bench` runs:
// BenchmarkXxx (Xxx not starting with a lower-case letter) taking *testing.B.
func isBenchmark(fn *ast.FuncDecl) bool {
	name := fn.Name.Name
	rest, ok := strings.CutPrefix(name, "Benchmark")
	if !ok || (rest != "" && rest[0] >= 'a' && rest[0] <= 'z') {
		return false
	}
	params := fn.Type.Params.List
	if len(params) != 1 || len(params[0].Names) > 1 {
		return false
	}
	star, ok := params[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "B"
}
