package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	ImportPath  string // build-output and build-fail events
	FailedBuild string // on a package's fail event when its build failed
}

// Result is one test (or a package that failed outside any test).
type Result struct {
	Package string
	Test    string // "" for a package-level failure (build, TestMain, timeout)
	Reason  string // skips: the message given to t.Skip
}

func (r Result) String() string {
	if r.Test == "" {
		return r.Package
	}
	return r.Package + " " + r.Test
}

// Summary is what a whole `go test -json` stream added up to.
type Summary struct {
	Passed, Failed, Skipped int
	Failures                []Result
	Skips                   []Result
}

// Line is the summary line: "N passed, N failed, N skipped".
func (s *Summary) Line() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", s.Passed, s.Failed, s.Skipped)
}

type testKey struct{ pkg, test string }

// pkgState buffers one package's output until the package ends, because
// test2json may deliver a test's message lines around its outcome event.
type pkgState struct {
	output   []string            // package-level output lines
	tests    map[string][]string // test -> its output lines
	order    []string            // tests in the order their outcome came
	outcome  map[string]string   // test -> pass|fail|skip
	failures int
}

// Collector reads `go test -json` and writes what a human wants from a run
// without -v: one line per package, and the full output of every failed test
// and failed package.
type Collector struct {
	out     io.Writer
	verbose bool // also print each skipped test with its reason
	pkgs    map[string]*pkgState
	builds  map[string][]string // import path -> build output
	sum     Summary
}

func NewCollector(out io.Writer, verbose bool) *Collector {
	return &Collector{out: out, verbose: verbose, pkgs: map[string]*pkgState{}, builds: map[string][]string{}}
}

func (c *Collector) pkg(name string) *pkgState {
	p := c.pkgs[name]
	if p == nil {
		p = &pkgState{tests: map[string][]string{}, outcome: map[string]string{}}
		c.pkgs[name] = p
	}
	return p
}

// Read consumes the stream. Lines that are not JSON events (go test writes
// some errors as plain text) are passed through.
func (c *Collector) Read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			fmt.Fprintf(c.out, "%s\n", line)
			continue
		}
		c.Event(ev)
	}
	for name := range c.pkgs {
		// A stream cut short (go test killed): what ran is still reported.
		c.finish(name, "fail")
	}
	return sc.Err()
}

// Event handles one event.
func (c *Collector) Event(ev event) {
	switch ev.Action {
	case "build-output":
		c.builds[ev.ImportPath] = append(c.builds[ev.ImportPath], ev.Output)
		return
	case "build-fail":
		return // reported with the package's fail event (FailedBuild)
	}
	if ev.Package == "" {
		return
	}
	p := c.pkg(ev.Package)
	if ev.Test == "" {
		switch ev.Action {
		case "output":
			p.output = append(p.output, ev.Output)
		case "pass", "fail", "skip":
			if ev.FailedBuild != "" {
				p.output = append(c.builds[ev.FailedBuild], p.output...)
			}
			c.finish(ev.Package, ev.Action)
		}
		return
	}
	switch ev.Action {
	case "output":
		p.tests[ev.Test] = append(p.tests[ev.Test], ev.Output)
	case "pass", "fail", "skip":
		if _, seen := p.outcome[ev.Test]; !seen {
			p.order = append(p.order, ev.Test)
		}
		p.outcome[ev.Test] = ev.Action
	}
}

// finish reports a package that ended with action.
func (c *Collector) finish(name, action string) {
	p := c.pkgs[name]
	if p == nil {
		return
	}
	delete(c.pkgs, name)
	for _, test := range p.order {
		lines := p.tests[test]
		switch p.outcome[test] {
		case "pass":
			c.sum.Passed++
		case "fail":
			c.sum.Failed++
			p.failures++
			c.sum.Failures = append(c.sum.Failures, Result{Package: name, Test: test})
			fmt.Fprint(c.out, strings.Join(lines, ""))
		case "skip":
			c.sum.Skipped++
			r := Result{Package: name, Test: test, Reason: skipReason(lines)}
			c.sum.Skips = append(c.sum.Skips, r)
			if c.verbose {
				fmt.Fprintf(c.out, "--- SKIP: %s: %s\n", r, r.Reason)
			}
		}
	}
	// Tests that started but never ended: the package died under them.
	var unfinished []string
	for test := range p.tests {
		if _, ok := p.outcome[test]; !ok {
			unfinished = append(unfinished, test)
		}
	}
	sort.Strings(unfinished)
	for _, test := range unfinished {
		c.sum.Failed++
		p.failures++
		c.sum.Failures = append(c.sum.Failures, Result{Package: name, Test: test})
		fmt.Fprintf(c.out, "%s(%s did not finish)\n", strings.Join(p.tests[test], ""), test)
	}
	switch {
	case action == "fail":
		if p.failures == 0 {
			// Build failure, TestMain failure, panic or timeout outside a test.
			c.sum.Failed++
			c.sum.Failures = append(c.sum.Failures, Result{Package: name})
		}
		fmt.Fprint(c.out, strings.Join(p.output, ""))
		if n := len(p.output); n == 0 || !strings.HasPrefix(p.output[n-1], "FAIL") {
			fmt.Fprintf(c.out, "FAIL\t%s\n", name)
		}
	default:
		// "ok  pkg 1.2s" or "?   pkg [no test files]"; the rest of a passing
		// package's output (PASS, TestMain chatter) is noise.
		for _, l := range p.output {
			if strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "?") {
				fmt.Fprint(c.out, l)
			}
		}
	}
}

// skipReason is the message a skipped test gave: its log lines without the
// === and --- framing.
func skipReason(lines []string) string {
	var msg []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		msg = append(msg, t)
	}
	if len(msg) == 0 {
		return "(no reason given)"
	}
	return strings.Join(msg, " ")
}

// Summary returns the counts so far.
func (c *Collector) Summary() *Summary { return &c.sum }

// AllowEntry is one legitimate skip: a package (its import path, or a
// suffix of it at a slash) and a test name pattern (path.Match syntax, so
// "TestX/*" covers TestX's subtests).
type AllowEntry struct {
	Package, Test, Why string
	Line               int
}

// ParseAllowList reads the allow-list: one entry a line,
//
//	<package> <test pattern>  # why this skip is legitimate on CI machines
//
// Blank lines and lines starting with # are ignored. Every entry must say
// why: an unexplained entry is a hidden test.
func ParseAllowList(r io.Reader) ([]AllowEntry, error) {
	var out []AllowEntry
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		spec, why, _ := strings.Cut(line, "#")
		why = strings.TrimSpace(why)
		f := strings.Fields(spec)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want `<package> <test pattern>  # why`, got %q", n, line)
		}
		if why == "" {
			return nil, fmt.Errorf("line %d: %s %s: say why this skip is legitimate (after a #)", n, f[0], f[1])
		}
		if _, err := path.Match(f[1], ""); err != nil {
			return nil, fmt.Errorf("line %d: test pattern %q: %v", n, f[1], err)
		}
		out = append(out, AllowEntry{Package: f[0], Test: f[1], Why: why, Line: n})
	}
	return out, sc.Err()
}

// Allowed reports whether the skip of r is on the list.
func Allowed(list []AllowEntry, r Result) bool {
	for _, e := range list {
		if r.Package != e.Package && !strings.HasSuffix(r.Package, "/"+e.Package) {
			continue
		}
		if ok, _ := path.Match(e.Test, r.Test); ok {
			return true
		}
	}
	return false
}

// Unexpected returns the skips not on the list.
func Unexpected(list []AllowEntry, skips []Result) []Result {
	var out []Result
	for _, s := range skips {
		if !Allowed(list, s) {
			out = append(out, s)
		}
	}
	return out
}
