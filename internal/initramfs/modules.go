package initramfs

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// ModuleIndex is a parsed modules.dep: which file each module is and which
// modules it needs first.
type ModuleIndex struct {
	paths map[string]string   // module name -> path relative to the modules dir
	deps  map[string][]string // path -> paths it depends on
}

// ModuleName turns a module path or name into the name the kernel uses:
// basename without .ko(.xz|.zst|.gz), dashes as underscores.
func ModuleName(p string) string {
	n := path.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		n = strings.TrimSuffix(n, ext)
	}
	n = strings.TrimSuffix(n, ".ko")
	return strings.ReplaceAll(n, "-", "_")
}

// ParseModulesDep reads modules.dep: lines of "path: dep dep ...".
func ParseModulesDep(r io.Reader) (*ModuleIndex, error) {
	idx := &ModuleIndex{paths: map[string]string{}, deps: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		mod, deps, ok := strings.Cut(text, ":")
		mod = strings.TrimSpace(mod)
		if !ok || mod == "" {
			return nil, fmt.Errorf("modules.dep line %d: want \"path: deps\", got %q", line, text)
		}
		if err := checkRelPath(mod); err != nil {
			return nil, fmt.Errorf("modules.dep line %d: %w", line, err)
		}
		for _, d := range strings.Fields(deps) {
			if err := checkRelPath(d); err != nil {
				return nil, fmt.Errorf("modules.dep line %d: %w", line, err)
			}
			idx.deps[mod] = append(idx.deps[mod], d)
		}
		idx.paths[ModuleName(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading modules.dep: %w", err)
	}
	return idx, nil
}

// checkRelPath keeps module paths inside the modules tree.
func checkRelPath(p string) error {
	if path.IsAbs(p) || p != path.Clean(p) || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("module path %q is not a plain relative path", p)
	}
	return nil
}

// Path returns the file of a module by name.
func (idx *ModuleIndex) Path(name string) (string, bool) {
	p, ok := idx.paths[ModuleName(name)]
	return p, ok
}

// Resolve returns the module files to load for names, dependencies first,
// each once, in an order insmod can follow.
func (idx *ModuleIndex) Resolve(names []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(p string, chain []string) error
	visit = func(p string, chain []string) error {
		switch state[p] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("modules.dep has a dependency cycle: %s", strings.Join(append(chain, p), " -> "))
		}
		state[p] = 1
		for _, d := range idx.deps[p] {
			if _, listed := idx.deps[d]; !listed && idx.paths[ModuleName(d)] != d {
				return fmt.Errorf("modules.dep: %s depends on %s, which has no line of its own", p, d)
			}
			if err := visit(d, append(chain, p)); err != nil {
				return err
			}
		}
		state[p] = 2
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		p, ok := idx.Path(n)
		if !ok {
			return nil, fmt.Errorf("kernel module %s is not in modules.dep: it is either built into this kernel or missing from the modules tree", n)
		}
		if err := visit(p, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
