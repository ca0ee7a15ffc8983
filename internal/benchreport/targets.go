package main

import (
	"fmt"
	"math"
	"strings"
)

const module = "github.com/banger-dev/banger/"

// Ref names one figure of one benchmark, converted for display: the metric's
// value is divided by Div.
type Ref struct {
	Pkg    string // relative to the module: "internal/daemon"
	Bench  string // "BenchmarkVMListRoundTrip" or "BenchmarkX/sub/case"
	Metric string // "p50-ms", "ns/op", ...
	Div    float64
}

func (r Ref) key() string { return Key(module+r.Pkg, r.Bench) }

// Row is one line of the report: a figure, optionally its same-run baseline,
// and the target from the issues.
type Row struct {
	Label    string
	Figure   Ref
	Baseline *Ref   // nil: no natural baseline
	Unit     string // display unit of figure and baseline
	Target   string // "" : no target
	// Met decides the target from the figure and the baseline (NaN when
	// there is none); nil when there is no target.
	Met func(fig, base float64) bool
	// MetUsesBaseline: the target is relative, so without a baseline it
	// cannot be decided.
	MetUsesBaseline bool
	// Gate names the environment variable a skipped benchmark needs.
	Gate string
}

// Rows is the report's fixed part: every target from the issues, in the
// order the lead quotes them. Benchmarks not named here still appear, after
// these, with their main figure.
var Rows = []Row{
	{Label: "vm.list p50, socket round trip, 1,000 VMs (full records)", Unit: "ms",
		Figure:   Ref{"internal/daemon", "BenchmarkVMListRoundTrip", "p50-ms", 1},
		Baseline: &Ref{"internal/store", "BenchmarkListVMs1000", "ns/op", 1e6},
		Target:   "≤ 3 ms", Met: func(f, _ float64) bool { return f <= 3 }},
	{Label: "vm.summaries p50 (the `banger vm list` table), 1,000 VMs", Unit: "ms",
		Figure:   Ref{"internal/daemon", "BenchmarkVMSummariesRoundTrip", "p50-ms", 1},
		Baseline: &Ref{"internal/store", "BenchmarkListVMSummaries1000", "ns/op", 1e6},
		Target:   "≤ 3 ms", Met: func(f, _ float64) bool { return f <= 3 }},
	{Label: "`banger vm list` process vs sqlite3 on the same rows", Unit: "ms",
		Figure:   Ref{"internal/daemon", "BenchmarkCLIVMList", "p50-ms", 1},
		Baseline: &Ref{"internal/daemon", "BenchmarkSQLite3Select", "p50-ms", 1},
		Target:   "≤ 3x sqlite3", Met: func(f, b float64) bool { return f/b <= 3 }, MetUsesBaseline: true},
	{Label: "idle bangerd RSS after vm.list of 1,000 VMs", Unit: "MiB",
		Figure: Ref{"internal/daemon", "BenchmarkIdleDaemonRSS", "rss-KiB", 1024},
		Target: "< 30 MiB", Met: func(f, _ float64) bool { return f < 30 }},
	{Label: "DNS `<name>.vm` query p99, 1,000 VMs", Unit: "µs",
		Figure: Ref{"internal/dnsserver", "BenchmarkQueryVMName", "p99-µs", 1},
		Target: "< 1 ms", Met: func(f, _ float64) bool { return f < 1000 }},
	{Label: "DNS `<name>.vm` query p50, 1,000 VMs", Unit: "µs",
		Figure: Ref{"internal/dnsserver", "BenchmarkQueryVMName", "p50-µs", 1}},
	{Label: "vm.create to VMM exec (fake Firecracker) vs bare mkfs.ext4 + cp --sparse", Unit: "ms",
		Figure:   Ref{"internal/vm", "BenchmarkCreateToVMMExec", "ms-to-exec", 1},
		Baseline: &Ref{"internal/vm", "BenchmarkCreateToVMMExec", "baseline-ms", 1},
		Target:   "overhead (figure − baseline) < 100 ms", Met: func(f, b float64) bool { return f-b < 100 }, MetUsesBaseline: true},
	{Label: "vm.create: time to validated and stored with its IP", Unit: "ms",
		Figure: Ref{"internal/vm", "BenchmarkCreateToVMMExec", "ms-to-stored", 1}},
	{Label: "vm.create: time to disks made (work disk mkfs, rootfs copy)", Unit: "ms",
		Figure:   Ref{"internal/vm", "BenchmarkCreateToVMMExec", "ms-to-provisioned", 1},
		Baseline: &Ref{"internal/vm", "BenchmarkCreateToVMMExec", "baseline-ms", 1}},
	{Label: "vm.create to driver Start returned (fake Firecracker)", Unit: "ms",
		Figure:   Ref{"internal/vm", "BenchmarkCreateToVMMExec", "ms-to-started", 1},
		Baseline: &Ref{"internal/vm", "BenchmarkCreateToVMMExec", "baseline-ms", 1}},
	{Label: "rootfs qcow2 overlay, 4 GiB vs 256 MiB image", Unit: "ms",
		Figure:   Ref{"internal/disk", "BenchmarkProvisionRootfs/overlay/4096MiB", "ns/op", 1e6},
		Baseline: &Ref{"internal/disk", "BenchmarkProvisionRootfs/overlay/256MiB", "ns/op", 1e6},
		Target:   "flat: ratio ≈ 1 (≤ 1.5)", Met: func(f, b float64) bool { return f/b <= 1.5 }, MetUsesBaseline: true},
	{Label: "rootfs sparse copy, 4 GiB vs 256 MiB image", Unit: "ms",
		Figure:   Ref{"internal/disk", "BenchmarkProvisionRootfs/sparse-copy/4096MiB", "ns/op", 1e6},
		Baseline: &Ref{"internal/disk", "BenchmarkProvisionRootfs/sparse-copy/256MiB", "ns/op", 1e6}},
	{Label: "create-to-healthy under QEMU vs bare qemu-system-x86_64 boot", Unit: "s", Gate: "BANGER_BENCH_VM=1",
		Figure:   Ref{"test/bench", "BenchmarkCreateToHealthy", "healthy-s", 1},
		Baseline: &Ref{"test/bench", "BenchmarkCreateToHealthy", "bare-s", 1},
		Target:   "≤ 1.15x bare qemu", Met: func(f, b float64) bool { return f/b <= 1.15 }, MetUsesBaseline: true},
	{Label: "restore from a memory snapshot to healthy vs cold create to healthy (QEMU)", Unit: "s", Gate: "BANGER_BENCH_VM=1",
		Figure:   Ref{"test/bench", "BenchmarkSnapshotRestore", "restore-s", 1},
		Baseline: &Ref{"test/bench", "BenchmarkSnapshotRestore", "coldboot-s", 1},
		Target:   "≤ 0.2x cold boot", Met: func(f, b float64) bool { return f/b <= 0.2 }, MetUsesBaseline: true},
	{Label: "`vm snapshot create` of a running guest (memory and both disks)", Unit: "s", Gate: "BANGER_BENCH_VM=1",
		Figure:   Ref{"test/bench", "BenchmarkSnapshotRestore", "snapshot-s", 1},
		Baseline: &Ref{"test/bench", "BenchmarkSnapshotRestore", "coldboot-s", 1}},
	{Label: "memory snapshot footprint on disk / guest RAM", Unit: "x", Gate: "BANGER_BENCH_VM=1",
		Figure: Ref{"test/bench", "BenchmarkSnapshotRestore", "size/ram", 1}},
	{Label: "`vm clone` of a running guest vs a cold `vm create` (each returns once the VM's agent answers and its sshd accepts)", Unit: "s", Gate: "BANGER_BENCH_VM=1",
		Figure:   Ref{"test/bench", "BenchmarkSnapshotRestore", "clone-s", 1},
		Baseline: &Ref{"test/bench", "BenchmarkSnapshotRestore", "create-s", 1},
		Target:   "≤ 0.3x cold create", Met: func(f, b float64) bool { return f/b <= 0.3 }, MetUsesBaseline: true},
	{Label: "`vm clone` of a running guest vs cold create to the agent's first answer (a stricter baseline: no sshd wait)", Unit: "s", Gate: "BANGER_BENCH_VM=1",
		Figure:   Ref{"test/bench", "BenchmarkSnapshotRestore", "clone-s", 1},
		Baseline: &Ref{"test/bench", "BenchmarkSnapshotRestore", "coldboot-s", 1}},
	{Label: "`banger vm create` returned (it also waits for sshd)", Unit: "s", Gate: "BANGER_BENCH_VM=1",
		Figure:   Ref{"test/bench", "BenchmarkCreateToHealthy", "created-s", 1},
		Baseline: &Ref{"test/bench", "BenchmarkCreateToHealthy", "bare-s", 1}},
	{Label: "create-to-ssh (first `banger vm ssh NAME -- true`)", Unit: "s", Gate: "BANGER_BENCH_VM=1",
		Figure:   Ref{"test/bench", "BenchmarkCreateToHealthy", "ssh-s", 1},
		Baseline: &Ref{"test/bench", "BenchmarkCreateToHealthy", "bare-s", 1}},
	{Label: "`vm exec dev -- true` vs `vm ssh dev -- true` (QEMU guest)", Unit: "ms", Gate: "BANGER_BENCH_VM=1",
		Figure:   Ref{"test/bench", "BenchmarkAgentWork", "exec-ms", 1},
		Baseline: &Ref{"test/bench", "BenchmarkAgentWork", "ssh-ms", 1},
		Target:   "≤ 0.2x ssh", Met: func(f, b float64) bool { return f/b <= 0.2 }, MetUsesBaseline: true},
	{Label: "`vm cp` 256 MiB into the guest vs scp, throughput", Unit: "MB/s", Gate: "BANGER_BENCH_VM=1",
		Figure:   Ref{"test/bench", "BenchmarkAgentWork", "cp-MBps", 1},
		Baseline: &Ref{"test/bench", "BenchmarkAgentWork", "scp-MBps", 1},
		Target:   "≥ 1x scp", Met: func(f, b float64) bool { return f/b >= 1 }, MetUsesBaseline: true},
	{Label: "`vm cp` CLI peak memory, 256 MiB copy vs a 16 MiB one", Unit: "x", Gate: "BANGER_BENCH_VM=1",
		Figure: Ref{"test/bench", "BenchmarkAgentWork", "cp-rss-ratio", 1},
		Target: "≤ 1.2x (flat)", Met: func(f, _ float64) bool { return f <= 1.2 }},
	{Label: "guest agent peak memory growth over 256 MiB copies both ways", Unit: "MiB", Gate: "BANGER_BENCH_VM=1",
		Figure: Ref{"test/bench", "BenchmarkAgentWork", "agent-hwm-growth-MiB", 1},
		Target: "≤ 8 MiB (flat)", Met: func(f, _ float64) bool { return f <= 8 }},
	{Label: "forwarded port (direct path) vs the guest's address, 256 MiB over HTTP", Unit: "MB/s", Gate: "BANGER_BENCH_VM=1",
		Figure:   Ref{"test/bench", "BenchmarkAgentWork", "fwd-MBps", 1},
		Baseline: &Ref{"test/bench", "BenchmarkAgentWork", "direct-MBps", 1},
		Target:   "≥ 0.7x direct", Met: func(f, b float64) bool { return f/b >= 0.7 }, MetUsesBaseline: true},
	{Label: "port forwarder alone: 256 MiB on this host's loopback, through Serve's direct path vs straight", Unit: "MB/s",
		Figure:   Ref{"internal/portfwd", "BenchmarkForwardThroughput", "fwd-MBps", 1},
		Baseline: &Ref{"internal/portfwd", "BenchmarkForwardThroughput", "direct-MBps", 1}},
	{Label: "forwarded port through the agent (guest loopback) vs the guest's address", Unit: "MB/s", Gate: "BANGER_BENCH_VM=1",
		Figure:   Ref{"test/bench", "BenchmarkAgentWork", "fwd-agent-MBps", 1},
		Baseline: &Ref{"test/bench", "BenchmarkAgentWork", "direct-MBps", 1}},
	{Label: "TUI exec to first frame (pty)", Unit: "ms",
		Figure: Ref{"internal/tui", "BenchmarkExecToFirstFrame", "ms/first-frame", 1},
		Target: "< 100 ms", Met: func(f, _ float64) bool { return f < 100 }},
	{Label: "TUI first frame, real banger in a pty, 1,000 VMs", Unit: "ms",
		Figure: Ref{"test/e2e", "BenchmarkTUIFirstFrame/1000-vms", "ms/first-frame", 1},
		Target: "< 100 ms", Met: func(f, _ float64) bool { return f < 100 }},
	{Label: "TUI View with 1,000 VMs, 200 columns", Unit: "ms",
		Figure: Ref{"internal/tui", "BenchmarkViewFirstFrame1000VMs/width200", "ns/op", 1e6},
		Target: "< 100 ms", Met: func(f, _ float64) bool { return f < 100 }},
	{Label: "Firecracker driver Start against the fake (launch, socket, 7 API calls)", Unit: "ms",
		Figure: Ref{"internal/vmm/firecracker", "BenchmarkStart", "ms/start", 1}},
	{Label: "agent health round trip, hybrid vsock (host side, no VM)", Unit: "µs",
		Figure: Ref{"internal/agentclient", "BenchmarkHealthHybridVsock", "rtt-µs/op", 1}},
	{Label: "agent health round trip, virtio-serial + yamux (host side, no VM)", Unit: "µs",
		Figure: Ref{"internal/agentclient", "BenchmarkHealthSerial", "rtt-µs/op", 1}},
	{Label: "vmlinux extraction from the Debian vmlinuz", Unit: "ms",
		Figure: Ref{"internal/kernel", "BenchmarkExtractDebianKernel", "ns/op", 1e6}},
	{Label: "initramfs build for the Debian kernel", Unit: "ms",
		Figure: Ref{"internal/initramfs", "BenchmarkBuildDebian", "ns/op", 1e6}},
	{Label: "image build (mmdebstrap) vs plain debootstrap of the same packages", Unit: "s", Gate: "BANGER_BENCH_IMAGE=1",
		Figure:   Ref{"internal/image", "BenchmarkImageFullBuild", "build-s", 1},
		Baseline: &Ref{"internal/image", "BenchmarkImageFullBuild", "debootstrap-s", 1},
		Target:   "≤ 0.8x debootstrap", Met: func(f, b float64) bool { return f/b <= 0.8 }, MetUsesBaseline: true},
	{Label: "image cached rebuild", Unit: "s", Gate: "BANGER_BENCH_IMAGE=1",
		Figure: Ref{"internal/image", "BenchmarkImageCachedRebuild", "rebuild-s", 1},
		Target: "≤ 10 s", Met: func(f, _ float64) bool { return f <= 10 }},
	{Label: "image rebuild with one more package vs cached rebuild", Unit: "s", Gate: "BANGER_BENCH_IMAGE=1",
		Figure:   Ref{"internal/image", "BenchmarkImageRebuildOneMorePackage", "plus-one-s", 1},
		Baseline: &Ref{"internal/image", "BenchmarkImageRebuildOneMorePackage", "rebuild-s", 1},
		Target:   "≤ 1.2x cached rebuild", Met: func(f, b float64) bool { return f/b <= 1.2 }, MetUsesBaseline: true},
	{Label: "image import of 200 MB from a local registry (fetch, flatten, unpack) vs skopeo copy + tar -x", Unit: "s", Gate: "BANGER_BENCH_IMAGE=1",
		Figure:   Ref{"internal/ociimage", "BenchmarkImportVsSkopeo", "import-s", 1},
		Baseline: &Ref{"internal/ociimage", "BenchmarkImportVsSkopeo", "skopeo-s", 1},
		Target:   "≤ 1.5x", Met: func(f, b float64) bool { return f/b <= 1.5 }, MetUsesBaseline: true},
}

// Line is one formatted report line.
type Line struct {
	Benchmark, Figure, Baseline, Ratio, Target, Met string
}

// Lines builds the report from a run: the fixed rows, then every other
// benchmark that produced figures, then other benchmarks that were skipped
// or failed.
func Lines(run *Run, rows []Row) []Line {
	var out []Line
	used := map[string]bool{}
	for _, r := range rows {
		used[r.Figure.key()] = true
		if r.Baseline != nil {
			used[r.Baseline.key()] = true
		}
		out = append(out, rowLine(run, r))
	}
	for _, k := range sortedKeys(run.Results) {
		if used[k] {
			continue
		}
		res := run.Results[k]
		out = append(out, Line{Benchmark: shortName(res.Pkg, res.Name), Figure: figures(res),
			Baseline: "—", Ratio: "—", Target: "—", Met: "—"})
	}
	for _, k := range sortedKeys(run.Outcomes) {
		if used[k] || hasResult(run, k) {
			continue
		}
		o := run.Outcomes[k]
		pkg, name := splitKey(k)
		out = append(out, Line{Benchmark: shortName(pkg, name), Figure: outcomeText(o, ""),
			Baseline: "—", Ratio: "—", Target: "—", Met: "—"})
	}
	return out
}

func rowLine(run *Run, r Row) Line {
	l := Line{Benchmark: r.Label, Baseline: "—", Ratio: "—", Target: r.Target, Met: "—"}
	if l.Target == "" {
		l.Target = "—"
	}
	base := math.NaN()
	if r.Baseline != nil {
		if b, ok := lookup(run, *r.Baseline); ok {
			base = b
			l.Baseline = fmtValue(b, r.Unit)
		} else {
			l.Baseline = missing(run, *r.Baseline, r.Gate)
		}
	}
	fig, ok := lookup(run, r.Figure)
	if !ok {
		l.Figure = missing(run, r.Figure, r.Gate)
		return l
	}
	l.Figure = fmtValue(fig, r.Unit)
	if base > 0 {
		l.Ratio = fmt.Sprintf("%.2fx", fig/base)
	}
	if r.Met != nil {
		if r.MetUsesBaseline && math.IsNaN(base) {
			l.Met = "? (no baseline)"
		} else if r.Met(fig, base) {
			l.Met = "yes"
		} else {
			l.Met = "NO"
		}
	}
	return l
}

func lookup(run *Run, ref Ref) (float64, bool) {
	res, ok := run.Results[ref.key()]
	if !ok {
		return 0, false
	}
	v, ok := res.Metrics[ref.Metric]
	if !ok {
		return 0, false
	}
	return v / ref.Div, true
}

// missing says why a figure is absent: skipped (and how to include it),
// failed, or not run at all.
func missing(run *Run, ref Ref, gate string) string {
	top, _, _ := strings.Cut(ref.Bench, "/")
	o, ok := run.Outcomes[Key(module+ref.Pkg, top)]
	if !ok {
		if res, ok := run.Results[ref.key()]; ok {
			return fmt.Sprintf("no %s metric in %v", ref.Metric, keys(res.Metrics))
		}
		return "not run"
	}
	return outcomeText(o, gate)
}

func outcomeText(o Outcome, gate string) string {
	switch {
	case o.Failed:
		return "FAILED: " + o.Reason
	case gate != "":
		return "skipped (" + gate + ")"
	case o.Reason != "":
		return "skipped: " + o.Reason
	default:
		return "skipped"
	}
}

// figures describes a benchmark no row names: its custom metrics (what it
// was written to report), else its time per operation.
func figures(res Result) string {
	var parts []string
	for _, u := range keys(res.Metrics) {
		switch u {
		case "ns/op", "B/op", "allocs/op", "MB/s":
			continue
		}
		parts = append(parts, fmtValue(res.Metrics[u], u))
	}
	if len(parts) == 0 {
		if v, ok := res.Metrics["ns/op"]; ok {
			return fmtValue(v/1e6, "ms/op")
		}
	}
	return strings.Join(parts, "; ")
}

func fmtValue(v float64, unit string) string {
	var s string
	switch a := math.Abs(v); {
	case a >= 1000:
		s = fmt.Sprintf("%.0f", v)
	case a >= 10:
		s = fmt.Sprintf("%.1f", v)
	case a >= 0.01 || a == 0:
		s = fmt.Sprintf("%.2f", v)
	default:
		s = fmt.Sprintf("%.4f", v)
	}
	if unit == "" {
		return s
	}
	return s + " " + unit
}

func shortName(pkg, name string) string {
	return strings.TrimPrefix(pkg, module) + " " + strings.TrimPrefix(name, "Benchmark")
}

func splitKey(k string) (pkg, name string) {
	i := strings.LastIndex(k, ".Benchmark")
	if i < 0 {
		return "", k
	}
	return k[:i], k[i+1:]
}

func hasResult(run *Run, k string) bool {
	if _, ok := run.Results[k]; ok {
		return true
	}
	for rk := range run.Results {
		if strings.HasPrefix(rk, k+"/") {
			return true
		}
	}
	return false
}
