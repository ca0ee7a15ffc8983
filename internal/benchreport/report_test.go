package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A fragment of real `go test -json -bench` output: the result line is cut
// in two events, a skip's reason comes before its event, a failure's reason
// after it.
const sample = `{"Action":"output","Package":"github.com/banger-dev/banger/internal/daemon","Output":"pkg: github.com/banger-dev/banger/internal/daemon\n"}
{"Action":"run","Package":"github.com/banger-dev/banger/internal/daemon","Test":"BenchmarkCLIVMList"}
{"Action":"output","Package":"github.com/banger-dev/banger/internal/daemon","Test":"BenchmarkCLIVMList","Output":"BenchmarkCLIVMList\n"}
{"Action":"output","Package":"github.com/banger-dev/banger/internal/daemon","Test":"BenchmarkCLIVMList","Output":"BenchmarkCLIVMList-2   \t"}
{"Action":"output","Package":"github.com/banger-dev/banger/internal/daemon","Test":"BenchmarkCLIVMList","Output":"      20\t  41000000 ns/op\t        41.00 p50-ms\n"}
{"Action":"output","Package":"github.com/banger-dev/banger/internal/daemon","Test":"BenchmarkSQLite3Select","Output":"BenchmarkSQLite3Select-2   \t      20\t  10000000 ns/op\t        10.00 p50-ms\n"}
{"Action":"output","Package":"github.com/banger-dev/banger/internal/daemon","Test":"BenchmarkVMListRoundTrip","Output":"BenchmarkVMListRoundTrip-2   \t      20\t  7000000 ns/op\t        7.000 p50-ms\n"}
{"Action":"output","Package":"github.com/banger-dev/banger/internal/daemon","Test":"BenchmarkIdleDaemonRSS","Output":"--- FAIL: BenchmarkIdleDaemonRSS\n"}
{"Action":"fail","Package":"github.com/banger-dev/banger/internal/daemon","Test":"BenchmarkIdleDaemonRSS"}
{"Action":"output","Package":"github.com/banger-dev/banger/internal/daemon","Test":"BenchmarkIdleDaemonRSS","Output":"    bench_test.go:131: no VmRSS in /proc/1/status\n"}
{"Action":"fail","Package":"github.com/banger-dev/banger/internal/daemon"}
{"Action":"output","Package":"github.com/banger-dev/banger/internal/disk","Test":"BenchmarkProvisionRootfs/overlay/256MiB","Output":"BenchmarkProvisionRootfs/overlay/256MiB-2   \t       3\t  30000000 ns/op\t         0.19 MiB-allocated\n"}
{"Action":"output","Package":"github.com/banger-dev/banger/internal/disk","Test":"BenchmarkProvisionRootfs/overlay/4096MiB","Output":"BenchmarkProvisionRootfs/overlay/4096MiB-2  \t       3\t  33000000 ns/op\t         0.19 MiB-allocated\n"}
{"Action":"output","Package":"github.com/banger-dev/banger/internal/image","Test":"BenchmarkImageFullBuild","Output":"    bench_test.go:22: set BANGER_BENCH_IMAGE=1 to run the image build benchmarks (minutes, network)\n"}
{"Action":"output","Package":"github.com/banger-dev/banger/internal/image","Test":"BenchmarkImageFullBuild","Output":"--- SKIP: BenchmarkImageFullBuild\n"}
{"Action":"skip","Package":"github.com/banger-dev/banger/internal/image","Test":"BenchmarkImageFullBuild"}
{"Action":"output","Package":"github.com/banger-dev/banger/internal/other","Test":"BenchmarkOdd","Output":"BenchmarkOdd-2   \t     100\t  1500000 ns/op\t  2.5 widgets/op\n"}
`

func parseSample(t *testing.T) *Run {
	t.Helper()
	run := &Run{Results: map[string]Result{}, Outcomes: map[string]Outcome{}}
	if err := ParseJSON(strings.NewReader(sample), run); err != nil {
		t.Fatal(err)
	}
	return run
}

func TestParseJSON(t *testing.T) {
	run := parseSample(t)
	cli, ok := run.Results[Key(module+"internal/daemon", "BenchmarkCLIVMList")]
	if !ok || cli.N != 20 || cli.Metrics["p50-ms"] != 41 || cli.Metrics["ns/op"] != 41e6 {
		t.Fatalf("result line split over two events: %+v (found %v)", cli, ok)
	}
	if _, ok := run.Results[Key(module+"internal/disk", "BenchmarkProvisionRootfs/overlay/4096MiB")]; !ok {
		t.Error("sub-benchmark result missing")
	}
	fail := run.Outcomes[Key(module+"internal/daemon", "BenchmarkIdleDaemonRSS")]
	if !fail.Failed || fail.Reason != "no VmRSS in /proc/1/status" {
		t.Errorf("failure outcome = %+v", fail)
	}
	skip := run.Outcomes[Key(module+"internal/image", "BenchmarkImageFullBuild")]
	if !skip.Skipped || !strings.HasPrefix(skip.Reason, "set BANGER_BENCH_IMAGE=1") {
		t.Errorf("skip outcome = %+v", skip)
	}
	if len(run.Failed) != 1 || run.Failed[0] != module+"internal/daemon" {
		t.Errorf("failed packages = %v", run.Failed)
	}
}

func TestParseLineRejectsNonResults(t *testing.T) {
	for _, l := range []string{
		"BenchmarkCLIVMList",               // the name line printed before running
		"BenchmarkX-2 \t 10 \t 12 ns/op x", // odd field count
		"ok  \tgithub.com/x\t1.2s",
		"--- FAIL: BenchmarkX",
	} {
		if r, ok := ParseLine("p", l); ok {
			t.Errorf("ParseLine(%q) = %+v, want no result", l, r)
		}
	}
	r, ok := ParseLine("p", "BenchmarkQueryVMName-2   3000   95000 ns/op   90.00 p50-µs   310.0 p99-µs")
	if !ok || r.Name != "BenchmarkQueryVMName" || r.Metrics["p99-µs"] != 310 || r.N != 3000 {
		t.Errorf("ParseLine = %+v, %v", r, ok)
	}
}

func TestLinesTargetsAndBaselines(t *testing.T) {
	lines := Lines(parseSample(t), Rows)
	get := func(prefix string) Line {
		t.Helper()
		for _, l := range lines {
			if strings.HasPrefix(l.Benchmark, prefix) {
				return l
			}
		}
		t.Fatalf("no line %q in %+v", prefix, lines)
		return Line{}
	}
	// 41 ms vs sqlite3's 10 ms: 4.1x misses ≤ 3x.
	if l := get("`banger vm list`"); l.Figure != "41.0 ms" || l.Baseline != "10.0 ms" || l.Ratio != "4.10x" || l.Met != "NO" {
		t.Errorf("vm list line = %+v", l)
	}
	// 7 ms misses ≤ 3 ms; its baseline (store) did not run.
	if l := get("vm.list p50"); l.Met != "NO" || l.Baseline != "not run" {
		t.Errorf("vm.list line = %+v", l)
	}
	if l := get("rootfs qcow2 overlay"); l.Ratio != "1.10x" || l.Met != "yes" {
		t.Errorf("overlay line = %+v", l)
	}
	if l := get("idle bangerd RSS"); !strings.HasPrefix(l.Figure, "FAILED: no VmRSS") {
		t.Errorf("failed benchmark line = %+v", l)
	}
	if l := get("image build"); l.Figure != "skipped (BANGER_BENCH_IMAGE=1)" || l.Met != "—" {
		t.Errorf("gated line = %+v", l)
	}
	if l := get("internal/other Odd"); l.Figure != "2.50 widgets/op" || l.Target != "—" {
		t.Errorf("unlisted benchmark line = %+v", l)
	}
}

// TestRowsNameRealBenchmarks keeps the report honest when a benchmark or
// package is renamed: every row must point at a benchmark that exists.
func TestRowsNameRealBenchmarks(t *testing.T) {
	pkgs, err := Discover("../..")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, p := range pkgs {
		for _, b := range p.Benchmarks {
			have[p.Dir+" "+b] = true
		}
	}
	for _, r := range Rows {
		refs := []Ref{r.Figure}
		if r.Baseline != nil {
			refs = append(refs, *r.Baseline)
		}
		for _, ref := range refs {
			top, _, _ := strings.Cut(ref.Bench, "/")
			if !have[ref.Pkg+" "+top] {
				t.Errorf("row %q names %s %s, which does not exist", r.Label, ref.Pkg, top)
			}
		}
	}
}

func TestDiscoverOnlyBenchmarks(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a", "a_test.go"), `package a
import "testing"
func BenchmarkReal(b *testing.B) {}
func Benchmark(b *testing.B) {}
func Benchmarklower(b *testing.B) {}
func BenchmarkHelper(n int) {}
func TestX(t *testing.T) {}
`)
	writeFile(t, filepath.Join(dir, "a", "a.go"), "package a\nimport \"testing\"\nfunc BenchmarkNotATest(b *testing.B) {}\n")
	writeFile(t, filepath.Join(dir, "testdata", "x_test.go"), "package x\nimport \"testing\"\nfunc BenchmarkData(b *testing.B) {}\n")
	pkgs, err := Discover(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 1 || pkgs[0].Dir != "a" || strings.Join(pkgs[0].Benchmarks, ",") != "Benchmark,BenchmarkReal" {
		t.Fatalf("Discover = %+v", pkgs)
	}
}

// TestRunEndToEnd runs real `go test` on a small module: figures come
// through, a skip is reported, and a failing benchmark fails the run.
func TestRunEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles and runs a test module")
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/m\n\ngo 1.22\n")
	writeFile(t, filepath.Join(dir, "ok", "ok_test.go"), `package ok
import "testing"
func BenchmarkFigure(b *testing.B) {
	for b.Loop() {}
	b.ReportMetric(42, "answers")
}
func BenchmarkGated(b *testing.B) { b.Skip("set GATE=1 to run") }
`)
	writeFile(t, filepath.Join(dir, "bad", "bad_test.go"), `package bad
import "testing"
func BenchmarkBroken(b *testing.B) { b.Fatal("the disk is on fire") }
`)
	var out, progress bytes.Buffer
	code, err := run(dir, "2x", "", filepath.Join(dir, "raw.json"), 5*time.Minute, &out, &progress)
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"| example.com/m/ok Figure ", "42.0 answers",
		"| example.com/m/ok Gated ", "skipped: set GATE=1 to run",
		"| example.com/m/bad Broken ", "FAILED: the disk is on fire",
		"FAILED packages: example.com/m/bad",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s\nprogress:\n%s", want, text, progress.String())
		}
	}
	if code != 1 {
		t.Errorf("exit code %d with a failing benchmark, want 1", code)
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "raw.json")); err != nil || !bytes.Contains(raw, []byte(`"Action":"skip"`)) {
		t.Errorf("raw output not written: %v", err)
	}
	// -from reports on the saved output without running anything.
	var again bytes.Buffer
	code, err = report([]string{filepath.Join(dir, "raw.json")}, &again)
	if err != nil || code != 1 {
		t.Fatalf("report from raw output: code %d, %v", code, err)
	}
	table := func(s string) string { return s[strings.Index(s, "| benchmark"):] }
	if table(again.String()) != table(text) {
		t.Errorf("report from raw output differs:\n%s\nwant:\n%s", again.String(), text)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
