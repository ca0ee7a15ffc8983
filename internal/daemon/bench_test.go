package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/store"
	"github.com/banger-dev/banger/internal/sysexec"
)

const benchVMs = 1000

// seedVMs writes an image and n VM records straight into the database (the
// API path is measured elsewhere) and configures a subnet that fits them.
func seedVMs(b *testing.B, l paths.Layout, n int) {
	b.Helper()
	if err := os.WriteFile(l.ConfigFile(), []byte("subnet = \"10.200.0.0/16\"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(l.Database())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.PutImage(ctx, api.Image{Name: "debian", Distro: "debian", RootfsPath: "/nonexistent"}, false); err != nil {
		b.Fatal(err)
	}
	subnet := netip.MustParsePrefix("10.200.0.0/16")
	for i := 0; i < n; i++ {
		nv := store.NewVM{Name: fmt.Sprintf("vm-%04d", i), Image: "debian", VCPUs: 2, MemoryMiB: 1024, DiskBytes: 8 << 30, Subnet: subnet}
		_, err := st.CreateVM(ctx, nv)
		// A random id that collides with an earlier one (1 seeding in ~8,000
		// here) surfaces as a unique constraint on an id-derived column; a
		// fresh draw cannot collide again in practice.
		for try := 0; err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") && try < 3; try++ {
			_, err = st.CreateVM(ctx, nv)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVMListRoundTrip: one vm.list call over the Unix socket with 1,000
// VMs, reporting the median as p50-ms.
func BenchmarkVMListRoundTrip(b *testing.B) {
	l := testLayout(b)
	seedVMs(b, l, benchVMs)
	c, _ := startDaemon(b, l, bins.daemonA, buildA)
	ctx := context.Background()
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var res api.VMListResult
		t0 := time.Now()
		if err := c.Call(ctx, api.MethodVMList, nil, &res, nil); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
		if len(res.VMs) != benchVMs {
			b.Fatalf("%d VMs", len(res.VMs))
		}
	}
	b.StopTimer()
	reportP50(b, durs)
}

// BenchmarkVMSummariesRoundTrip: vm.summaries, what `banger vm list`
// calls for its table, over the socket with 1,000 VMs (median as p50-ms).
func BenchmarkVMSummariesRoundTrip(b *testing.B) {
	l := testLayout(b)
	seedVMs(b, l, benchVMs)
	c, _ := startDaemon(b, l, bins.daemonA, buildA)
	ctx := context.Background()
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var res api.VMSummariesResult
		t0 := time.Now()
		if err := c.Call(ctx, api.MethodVMSummaries, nil, &res, nil); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
		if len(res.VMs) != benchVMs {
			b.Fatalf("%d VMs", len(res.VMs))
		}
	}
	b.StopTimer()
	reportP50(b, durs)
}

// BenchmarkCLIVMList: the whole `banger vm list` process (exec, connect,
// call, render) with 1,000 VMs. Compare with BenchmarkSQLite3Select.
func BenchmarkCLIVMList(b *testing.B) {
	l := testLayout(b)
	seedVMs(b, l, benchVMs)
	startDaemon(b, l, bins.daemonA, buildA)
	b.Setenv("BANGER_DAEMON_BIN", bins.daemonA)
	ctx := context.Background()
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		out, err := sysexec.Run(ctx, bins.cli, "vm", "list")
		if err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
		if n := strings.Count(string(out), "\n"); n != benchVMs+1 {
			b.Fatalf("%d lines", n)
		}
	}
	b.StopTimer()
	reportP50(b, durs)
}

// BenchmarkSQLite3Select: the floor for BenchmarkCLIVMList, the sqlite3
// program reading the same rows.
func BenchmarkSQLite3Select(b *testing.B) {
	bin, err := sysexec.LookPath("sqlite3")
	if err != nil {
		b.Skip("sqlite3 not installed (apt-get install sqlite3)")
	}
	l := testLayout(b)
	seedVMs(b, l, benchVMs)
	ctx := context.Background()
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		out, err := sysexec.Run(ctx, bin, l.Database(),
			"select name, state, ip, vcpus, memory_mib, disk_bytes, image, created_at from vms order by name")
		if err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
		if n := strings.Count(string(out), "\n"); n != benchVMs {
			b.Fatalf("%d rows", n)
		}
	}
	b.StopTimer()
	reportP50(b, durs)
}

// BenchmarkIdleDaemonRSS reports the resident memory of an idle bangerd
// (after one vm.list over 1,000 VMs) as rss-KiB.
func BenchmarkIdleDaemonRSS(b *testing.B) {
	l := testLayout(b)
	seedVMs(b, l, benchVMs)
	c, info := startDaemon(b, l, bins.daemonA, buildA)
	if err := c.Call(context.Background(), api.MethodVMList, nil, nil, nil); err != nil {
		b.Fatal(err)
	}
	var rss int64
	for i := 0; i < b.N; i++ {
		kb, err := vmRSS(info.PID)
		if err != nil {
			b.Fatal(err)
		}
		rss = kb
	}
	b.ReportMetric(float64(rss), "rss-KiB")
}

func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func reportP50(b *testing.B, durs []time.Duration) {
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	b.ReportMetric(float64(durs[len(durs)/2].Microseconds())/1000, "p50-ms")
}
