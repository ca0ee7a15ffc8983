package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Result is one benchmark's figures from one run.
type Result struct {
	Pkg  string // import path
	Name string // "BenchmarkX/sub", without the -GOMAXPROCS suffix
	N    int64
	// Metrics by unit: "ns/op", "p50-ms", "rss-KiB", ...
	Metrics map[string]float64
}

// Outcome is what happened to a benchmark that produced no figures.
type Outcome struct {
	Skipped bool
	Failed  bool
	Reason  string // the skip or failure message (last log line)
}

// Run holds everything parsed from `go test -json` output.
type Run struct {
	Results  map[string]Result  // key: Key(pkg, name)
	Outcomes map[string]Outcome // key: Key(pkg, name) of top-level benchmarks
	Failed   []string           // packages whose run failed (build errors, panics)
}

// Key identifies a benchmark across packages.
func Key(pkg, name string) string { return pkg + "." + name }

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// benchLine matches a result line: name-procs, iterations, then value/unit pairs.
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// ParseJSON reads `go test -json` output. Output events are joined per
// package and test before lines are split, because test2json can cut a
// result line in two (the name is printed before the benchmark runs).
func ParseJSON(r io.Reader, run *Run) error {
	type stream struct {
		pkg, test string
		text      strings.Builder
	}
	type pending struct {
		stream, key string
		outcome     Outcome
	}
	var (
		order    []*stream
		outcomes []pending
	)
	streams := map[string]*stream{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue // go build errors before the JSON starts
		}
		var ev event
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("parse go test -json line %q: %w", line, err)
		}
		k := ev.Package + "\x00" + ev.Test
		switch ev.Action {
		case "output":
			s := streams[k]
			if s == nil {
				s = &stream{pkg: ev.Package, test: ev.Test}
				streams[k] = s
				order = append(order, s)
			}
			s.text.WriteString(ev.Output)
		case "skip", "fail":
			if ev.Test == "" {
				if ev.Action == "fail" {
					run.Failed = append(run.Failed, ev.Package)
				}
				continue
			}
			if strings.Contains(ev.Test, "/") {
				continue // sub-benchmarks: the parent's outcome says it
			}
			// The message lines may follow the event: read them at the end.
			outcomes = append(outcomes, pending{k, Key(ev.Package, ev.Test),
				Outcome{Skipped: ev.Action == "skip", Failed: ev.Action == "fail"}})
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for _, s := range order {
		parseText(s.pkg, s.text.String(), run)
	}
	for _, p := range outcomes {
		if s := streams[p.stream]; s != nil {
			p.outcome.Reason = lastLogLine(s.text.String())
		}
		run.Outcomes[p.key] = p.outcome
	}
	return nil
}

// parseText adds every result line in text to run.
func parseText(pkg, text string, run *Run) {
	for _, line := range strings.Split(text, "\n") {
		if res, ok := ParseLine(pkg, line); ok {
			run.Results[Key(pkg, res.Name)] = res
		}
	}
}

// ParseLine parses one benchmark result line such as
// "BenchmarkQueryVMName-2  5000  123 ns/op  95.0 p50-µs  310 p99-µs".
func ParseLine(pkg, line string) (Result, bool) {
	m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return Result{}, false
	}
	n, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil {
		return Result{}, false
	}
	fields := strings.Fields(m[3])
	if len(fields) < 2 || len(fields)%2 != 0 {
		return Result{}, false
	}
	res := Result{Pkg: pkg, Name: m[1], N: n, Metrics: map[string]float64{}}
	for i := 0; i < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return Result{}, false
		}
		res.Metrics[fields[i+1]] = v
	}
	return res, true
}

// lastLogLine returns the last indented log line of a test's output (where
// b.Skip and b.Fatal messages go), without the "file.go:12: " prefix.
func lastLogLine(text string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if !strings.HasPrefix(l, "    ") {
			continue
		}
		l = strings.TrimSpace(l)
		if file, rest, ok := strings.Cut(l, ": "); ok && strings.Contains(file, ".go:") {
			l = rest
		}
		return l
	}
	return ""
}
