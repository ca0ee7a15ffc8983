// Command benchreport runs every Go benchmark in the repository, one package
// at a time, and prints one table: each figure next to its baseline measured
// in the same run, their ratio, the target from the issues and whether it
// was met. Targets are reported, never asserted: the machine is shared and
// noisy, so a missed target does not fail the run; a failed benchmark does.
//
//	go run ./internal/benchreport            # what `make bench` runs
//	BANGER_BENCH_VM=1 BANGER_BENCH_IMAGE=1 go run ./internal/benchreport
//
// Gated benchmarks (booting guests, building images) skip themselves unless
// their environment variable is set; the table says so.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/vmm"
)

// benchTimes are per-package -benchtime values: enough samples for the
// percentiles the package reports, few enough that the whole run stays
// around ten minutes on two shared cores. Packages not listed use
// -benchtime's default.
var benchTimes = map[string]string{
	"internal/dnsserver":       "20000x", // p99 needs thousands of queries
	"internal/agentclient":     "1000x",
	"internal/store":           "50x",
	"internal/tui":             "50x",
	"internal/daemon":          "50x",
	"internal/vm":              "10x",
	"internal/vmm/firecracker": "30x",
	"internal/disk":            "10x",
	"internal/kernel":          "3x",
	"internal/initramfs":       "3x",
	"internal/image":           "1x", // minutes per iteration
	"test/bench":               "3x", // three guests each side
}

func main() {
	var (
		root      = flag.String("C", ".", "repository root")
		benchtime = flag.String("benchtime", "10x", "-benchtime for packages without their own")
		only      = flag.String("pkg", "", "only packages whose path matches this regexp")
		rawOut    = flag.String("raw", "", "also write the raw `go test -json` output to this file")
		timeout   = flag.Duration("timeout", 60*time.Minute, "per-package go test timeout")
		from      = flag.String("from", "", "comma-separated `go test -json` output files to report on instead of running benchmarks")
	)
	flag.Parse()
	if *from != "" {
		code, err := report(strings.Split(*from, ","), os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchreport:", err)
			os.Exit(2)
		}
		os.Exit(code)
	}
	code, err := run(*root, *benchtime, *only, *rawOut, *timeout, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func run(root, defTime, only, rawOut string, timeout time.Duration, stdout, stderr io.Writer) (int, error) {
	pkgs, err := Discover(root)
	if err != nil {
		return 2, err
	}
	var sel *regexp.Regexp
	if only != "" {
		if sel, err = regexp.Compile(only); err != nil {
			return 2, fmt.Errorf("-pkg %q: %w", only, err)
		}
	}
	var raw io.Writer = io.Discard
	if rawOut != "" {
		f, err := os.Create(rawOut)
		if err != nil {
			return 2, err
		}
		defer f.Close()
		raw = f
	}
	results := &Run{Results: map[string]Result{}, Outcomes: map[string]Outcome{}}
	start := time.Now()
	for _, p := range pkgs {
		if sel != nil && !sel.MatchString(p.Dir) {
			continue
		}
		bt := defTime
		if t, ok := benchTimes[p.Dir]; ok {
			bt = t
		}
		fmt.Fprintf(stderr, "== %s (%d benchmarks, -benchtime %s)\n", p.Dir, len(p.Benchmarks), bt)
		out, runErr := benchPackage(root, p, bt, timeout, stderr)
		raw.Write(out)
		failedBefore := len(results.Failed)
		if err := ParseJSON(bytes.NewReader(out), results); err != nil {
			return 2, err
		}
		if runErr != nil {
			fmt.Fprintf(stderr, "   %s: %v\n", p.Dir, runErr)
			if len(results.Failed) == failedBefore { // go test failed before reporting
				results.Failed = append(results.Failed, "./"+p.Dir)
			}
		}
	}
	fmt.Fprintln(stdout, Machine())
	fmt.Fprintf(stdout, "Run took %s.\n\n", time.Since(start).Round(time.Second))
	return finish(results, stdout), nil
}

// report prints the table for earlier runs' raw output (for example
// bin/bench.json and a separate BANGER_BENCH_VM=1 run), later files
// overriding earlier ones for the same benchmark.
func report(files []string, stdout io.Writer) (int, error) {
	results := &Run{Results: map[string]Result{}, Outcomes: map[string]Outcome{}}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return 2, err
		}
		err = ParseJSON(f, results)
		f.Close()
		if err != nil {
			return 2, fmt.Errorf("%s: %w", name, err)
		}
	}
	fmt.Fprintf(stdout, "From %s.\n\n", strings.Join(files, ", "))
	return finish(results, stdout), nil
}

// finish prints the table and the failures; it returns the exit code.
func finish(results *Run, stdout io.Writer) int {
	WriteTable(stdout, Lines(results, Rows))
	failed := uniq(results.Failed)
	for k, o := range results.Outcomes {
		if o.Failed {
			pkg, _ := splitKey(k)
			failed = uniq(append(failed, pkg))
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(stdout, "\nFAILED packages: %s (see the output above)\n", strings.Join(failed, ", "))
		return 1
	}
	return 0
}

// benchPackage runs one package's benchmarks (no tests) and returns the
// `go test -json` output, echoing the plain text to progress as it comes.
func benchPackage(root string, p Package, benchtime string, timeout time.Duration, progress io.Writer) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
	defer cancel()
	echo := &echoWriter{w: progress}
	res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{
		Argv: []string{"go", "test", "-json", "-run", "^$", "-bench", ".", "-benchtime", benchtime,
			"-timeout", timeout.String(), "./" + p.Dir},
		Dir:    root,
		Stdout: echo,
	})
	echo.flush()
	return res.Stdout, err
}

// echoWriter turns `go test -json` lines into their plain output text.
type echoWriter struct {
	w   io.Writer
	buf []byte
}

func (e *echoWriter) Write(b []byte) (int, error) {
	e.buf = append(e.buf, b...)
	for {
		i := bytes.IndexByte(e.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		e.line(e.buf[:i])
		e.buf = e.buf[i+1:]
	}
}

func (e *echoWriter) flush() {
	if len(e.buf) > 0 {
		e.line(e.buf)
		e.buf = nil
	}
}

func (e *echoWriter) line(l []byte) {
	var ev event
	if err := json.Unmarshal(l, &ev); err != nil {
		fmt.Fprintf(e.w, "   %s\n", l)
		return
	}
	if ev.Action == "output" && !strings.HasPrefix(ev.Output, "=== ") {
		fmt.Fprint(e.w, ev.Output)
	}
}

// WriteTable prints lines as a Markdown table (readable as is in a
// terminal, pasteable into docs/benchmarks.md).
func WriteTable(w io.Writer, lines []Line) {
	head := Line{"benchmark", "figure", "baseline (same run)", "ratio", "target", "met?"}
	all := append([]Line{head}, lines...)
	width := make([]int, 6)
	for _, l := range all {
		for i, c := range cells(l) {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	for n, l := range all {
		for i, c := range cells(l) {
			fmt.Fprintf(bw, "| %s%s ", c, strings.Repeat(" ", width[i]-len([]rune(c))))
		}
		fmt.Fprintln(bw, "|")
		if n == 0 {
			for i := range width {
				fmt.Fprintf(bw, "|%s", strings.Repeat("-", width[i]+2))
			}
			fmt.Fprintln(bw, "|")
		}
	}
}

func cells(l Line) []string {
	return []string{strings.ReplaceAll(l.Benchmark, "|", "\\|"), strings.ReplaceAll(l.Figure, "|", "\\|"),
		l.Baseline, l.Ratio, l.Target, l.Met}
}

// Machine describes where the figures were measured.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown memory"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for _, l := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(l, "MemTotal: %d kB", &kb); err == nil {
				mem = fmt.Sprintf("%.1f GiB RAM", float64(kb)/(1<<20))
				break
			}
		}
	}
	kvm := "KVM usable"
	if ok, why := vmm.KVMUsable(); !ok {
		kvm = "no usable KVM (" + why + "): QEMU under TCG"
	}
	return fmt.Sprintf("Machine: %d CPUs (nproc), %s, %s, %s; %s/%s, %s; %s",
		runtime.NumCPU(), model, mem, kvm, runtime.GOOS, runtime.GOARCH, runtime.Version(),
		time.Now().UTC().Format("2006-01-02 15:04 UTC"))
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func keys(m map[string]float64) []string { return sortedKeys(m) }

func uniq(xs []string) []string {
	sort.Strings(xs)
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	return out
}
