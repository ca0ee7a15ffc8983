package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/e2etest"
	"github.com/banger-dev/banger/internal/envknob"
)

// BenchmarkAgentWork measures issue 16's figures on one real guest, each
// against its same-run baseline:
//
//   - exec-ms: `banger vm exec dev -- true`, against ssh-ms, `banger vm ssh
//     dev -- true` (medians of 10; target exec/ssh ≤ 0.2);
//   - cp-MBps: `banger vm cp` of 256 MiB into the guest, against scp-MBps,
//     scp of the same file through the installed ssh-config (target
//     cp/scp ≥ 1); cp-rss-ratio, the CLI's peak memory for that copy
//     against its peak for a 16 MiB one, and agent-hwm-growth-MiB, how much
//     the guest agent's peak grew over the big copies: flat memory is a
//     ratio near 1 and a growth near 0, whatever the file's size;
//   - fwd-MBps: 256 MiB fetched from a guest web server through a
//     `vm port-forward`, against direct-MBps, the same fetch from the
//     guest's address (target fwd/direct ≥ 0.7). The server listens on
//     every address, so the forward takes its direct path; fwd-agent-MBps
//     is the same fetch from a server on the guest's loopback, which the
//     forward reaches through the agent (fwd-agent/direct). Medians of three
//     interleaved fetches each, after the file is back in the guest's page
//     cache (the copies before evict it on a 1 GiB guest).
func BenchmarkAgentWork(b *testing.B) {
	if !envknob.BenchVM.On() {
		b.Skip("set BANGER_BENCH_VM=1 to boot a real guest (a minute or two)")
	}
	for _, p := range []string{"busybox", "scp", "curl"} {
		if _, err := exec.LookPath(p); err != nil {
			b.Skipf("needs %s on the host", p)
		}
	}
	env := e2etest.New(b, e2etest.Options{Subnet: "172.30.93.0/24", Bridge: "bangerb2", Config: "nat = false\n"})
	must := func(args ...string) string {
		out, errOut, code := env.Banger(args...)
		if code != 0 {
			b.Fatalf("banger %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	must("vm", "create", "--name", "dev")
	var vm api.VM
	env.JSON(&vm, "vm", "show", "dev")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	timed := func(f func()) float64 {
		start := time.Now()
		f()
		return time.Since(start).Seconds()
	}

	// The guest's web server and the file everything moves.
	bb, _ := exec.LookPath("busybox")
	must("vm", "cp", bb, "dev:/usr/local/bin/busybox")
	must("vm", "exec", "dev", "--", "sh", "-c", "mkdir -p /root/site && echo up > /root/site/index.html && head -c 268435456 /dev/urandom > /root/site/big")
	if err := os.WriteFile(filepath.Join(env.Root, "small"), make([]byte, 16<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	cpRSS := func(src, dst string) float64 {
		res := env.BangerResult("vm", "cp", src, dst)
		if res.ExitCode != 0 {
			b.Fatalf("vm cp %s %s: %s", src, dst, res.Stderr)
		}
		return float64(res.MaxRSSKiB)
	}
	agentHWM := func() float64 { // the guest agent's peak resident memory, KiB
		out := must("vm", "exec", "dev", "--", "sh", "-c", `for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = banger-agent ] && grep VmHWM $p/status; done; true`)
		var kib float64
		if _, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(out, "VmHWM:")), "%f", &kib); err != nil {
			b.Fatalf("agent VmHWM: %q: %v", out, err)
		}
		return kib
	}
	smallRSS := cpRSS(filepath.Join(env.Root, "small"), "dev:/root/small")
	hwmBefore := agentHWM() // before any big copy, either way
	must("vm", "cp", "dev:/root/site/big", filepath.Join(env.Root, "big"))
	srvCtx, stopSrv := context.WithCancel(ctx)
	defer stopSrv()
	go env.BangerCtx(srvCtx, "vm", "exec", "dev", "--", "busybox", "httpd", "-f", "-p", "8100", "-h", "/root/site")
	go env.BangerCtx(srvCtx, "vm", "exec", "dev", "--", "busybox", "httpd", "-f", "-p", "127.0.0.1:8101", "-h", "/root/site")
	go env.BangerCtx(srvCtx, "vm", "port-forward", "dev", "18100:8100", "18101:8101")
	home := b.TempDir()
	cfg := filepath.Join(home, ".ssh", "config")
	if _, errOut, code := env.BangerWithEnv([]string{"HOME=" + home}, "ssh-config", "--install"); code != 0 {
		b.Fatalf("ssh-config --install: %s", errOut)
	}
	fetch := func(url string) {
		var last error
		for ctx.Err() == nil {
			var err error
			if _, err = env.InNS("curl", "-fsS", "-o", "/dev/null", url); err == nil {
				return
			}
			last = err
			time.Sleep(200 * time.Millisecond)
		}
		b.Fatalf("GET %s: %v", url, last)
	}
	readyCtx, ready := context.WithTimeout(ctx, 2*time.Minute)
	for readyCtx.Err() == nil { // the server and the forward are up
		_, err1 := env.InNS("curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:18100/index.html")
		_, err2 := env.InNS("curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:18101/index.html")
		if err1 == nil && err2 == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	ready()

	var execS, sshS, cpS, scpS, fwdS, fwdAgentS, directS, rssRatio []float64
	const mib = 256.0 * 1.048576 // MB in 256 MiB
	b.ResetTimer()
	for range b.N {
		for range 10 {
			execS = append(execS, timed(func() { must("vm", "exec", "dev", "--", "true") }))
			sshS = append(sshS, timed(func() { must("vm", "ssh", "dev", "--", "true") }))
		}
		var bigRSS float64
		cpS = append(cpS, timed(func() { bigRSS = cpRSS(filepath.Join(env.Root, "big"), "dev:/root/big.cp") }))
		rssRatio = append(rssRatio, bigRSS/smallRSS)
		scpS = append(scpS, timed(func() {
			if out, err := env.InNS("scp", "-q", "-F", cfg, filepath.Join(env.Root, "big"), "dev:/root/big.scp"); err != nil {
				b.Fatalf("scp: %v: %s", err, out)
			}
		}))
		// The copies above filled the guest's page cache; without this the
		// first fetch would time the guest's disk, not the network path.
		must("vm", "exec", "dev", "--", "sh", "-c", "rm -f /root/big.cp /root/big.scp && cat /root/site/big > /dev/null")
		for range 3 { // interleaved, so a busy moment hits every path alike
			fwdS = append(fwdS, timed(func() { fetch("http://127.0.0.1:18100/big") }))
			fwdAgentS = append(fwdAgentS, timed(func() { fetch("http://127.0.0.1:18101/big") }))
			directS = append(directS, timed(func() { fetch(fmt.Sprintf("http://%s:8100/big", vm.IP)) }))
		}
	}
	b.StopTimer()
	b.ReportMetric(median(rssRatio), "cp-rss-ratio")
	b.ReportMetric((agentHWM()-hwmBefore)/1024, "agent-hwm-growth-MiB")
	b.ReportMetric(median(execS)*1000, "exec-ms")
	b.ReportMetric(median(sshS)*1000, "ssh-ms")
	b.ReportMetric(median(execS)/median(sshS), "exec/ssh")
	b.ReportMetric(mib/median(cpS), "cp-MBps")
	b.ReportMetric(mib/median(scpS), "scp-MBps")
	b.ReportMetric(median(scpS)/median(cpS), "cp/scp")
	b.ReportMetric(mib/median(fwdS), "fwd-MBps")
	b.ReportMetric(mib/median(directS), "direct-MBps")
	b.ReportMetric(median(directS)/median(fwdS), "fwd/direct")
	b.ReportMetric(mib/median(fwdAgentS), "fwd-agent-MBps")
	b.ReportMetric(median(directS)/median(fwdAgentS), "fwd-agent/direct")
}
