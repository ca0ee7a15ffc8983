package bench

import (
	"context"
	"fmt"
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
//     cp/scp ≥ 1);
//   - fwd-MBps: 256 MiB fetched from a guest web server through a
//     `vm port-forward`, against direct-MBps, the same fetch from the
//     guest's address (target fwd/direct ≥ 0.7).
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
	must("vm", "cp", "dev:/root/site/big", filepath.Join(env.Root, "big"))
	srvCtx, stopSrv := context.WithCancel(ctx)
	defer stopSrv()
	go env.BangerCtx(srvCtx, "vm", "exec", "dev", "--", "busybox", "httpd", "-f", "-p", "8100", "-h", "/root/site")
	go env.BangerCtx(srvCtx, "vm", "port-forward", "dev", "18100:8100")
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
		if _, err := env.InNS("curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:18100/index.html"); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	ready()

	var execS, sshS, cpS, scpS, fwdS, directS []float64
	const mib = 256.0 * 1.048576 // MB in 256 MiB
	b.ResetTimer()
	for range b.N {
		for range 10 {
			execS = append(execS, timed(func() { must("vm", "exec", "dev", "--", "true") }))
			sshS = append(sshS, timed(func() { must("vm", "ssh", "dev", "--", "true") }))
		}
		cpS = append(cpS, timed(func() { must("vm", "cp", filepath.Join(env.Root, "big"), "dev:/root/big.cp") }))
		scpS = append(scpS, timed(func() {
			if out, err := env.InNS("scp", "-q", "-F", cfg, filepath.Join(env.Root, "big"), "dev:/root/big.scp"); err != nil {
				b.Fatalf("scp: %v: %s", err, out)
			}
		}))
		fwdS = append(fwdS, timed(func() { fetch("http://127.0.0.1:18100/big") }))
		directS = append(directS, timed(func() { fetch(fmt.Sprintf("http://%s:8100/big", vm.IP)) }))
	}
	b.StopTimer()
	b.ReportMetric(median(execS)*1000, "exec-ms")
	b.ReportMetric(median(sshS)*1000, "ssh-ms")
	b.ReportMetric(median(execS)/median(sshS), "exec/ssh")
	b.ReportMetric(mib/median(cpS), "cp-MBps")
	b.ReportMetric(mib/median(scpS), "scp-MBps")
	b.ReportMetric(median(scpS)/median(cpS), "cp/scp")
	b.ReportMetric(mib/median(fwdS), "fwd-MBps")
	b.ReportMetric(mib/median(directS), "direct-MBps")
	b.ReportMetric(median(directS)/median(fwdS), "fwd/direct")
}
