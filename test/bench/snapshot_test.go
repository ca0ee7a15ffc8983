package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/e2etest"
	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/sysexec"
)

// BenchmarkSnapshotRestore measures, on one real guest per iteration:
//   - coldboot-s: `banger vm create` to the agent's first answer (the
//     baseline); create-s: the whole command (it also waits for sshd);
//   - snapshot-s: `banger vm snapshot create` of the running guest (pause,
//     memory and both disks, resume);
//   - restore-s: `banger vm restore --no-safety --yes` from that memory
//     snapshot until the command returns, which is when the restored
//     guest's agent answered (target ≤ 0.2x coldboot-s under TCG);
//   - size/ram: the snapshot's footprint on disk against the guest's RAM;
//   - clone-s: `banger vm clone` of the running guest until the command
//     returns, which is when the clone's agent answered with its new
//     identity and its sshd accepted (target ≤ 0.3x create-s, the cold
//     create, which also returns once the agent answers and sshd accepts;
//     also shown against coldboot-s).
func BenchmarkSnapshotRestore(b *testing.B) {
	if !envknob.BenchVM.On() {
		b.Skip("set BANGER_BENCH_VM=1 to boot real guests (about a minute per iteration, one guest at a time)")
	}
	e := e2etest.New(b, e2etest.Options{Subnet: "172.30.91.0/24", Bridge: "bangerb2"})
	var cold, create, snap, restore, ratio, clone []float64
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("snap%d", i)
		i++
		waitNoGuests(b)
		t0 := time.Now()
		steps := &stampedLines{t0: t0}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{
			Argv: e.Argv(filepath.Join(e.Bin, "banger"), "vm", "create", "--name", name), Stderr: steps})
		cancel()
		if err != nil {
			b.Fatalf("banger vm create --name %s: %v\n%s", name, err, res.Stdout)
		}
		created := time.Since(t0)
		healthy := created
		if at, ok := steps.after("wait-agent"); ok {
			healthy = at
		}
		t1 := time.Now()
		e.MustBanger("vm", "snapshot", "create", name, "--name", "s")
		snapTook := time.Since(t1)
		t2 := time.Now()
		e.MustBanger("vm", "restore", name, "s", "--yes", "--no-safety")
		restoreTook := time.Since(t2)
		var h api.VMHealthResult
		e.JSON(&h, "vm", "health", name)
		if !h.Healthy {
			b.Fatalf("restored VM %s is not healthy: %+v", name, h)
		}
		out := e.MustBanger("vm", "snapshot", "list", name, "--output", "json")
		var snaps []api.Snapshot
		if err := json.Unmarshal([]byte(out), &snaps); err != nil || len(snaps) != 1 {
			b.Fatalf("snapshot list: %v\n%s", err, out)
		}
		t3 := time.Now()
		cloneSteps := &stampedLines{t0: t3}
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Minute)
		res, err = sysexec.Exec{}.Run(ctx, sysexec.Cmd{
			Argv: e.Argv(filepath.Join(e.Bin, "banger"), "vm", "clone", name, name+"c"), Stderr: cloneSteps})
		cancel()
		if err != nil {
			b.Fatalf("banger vm clone %s %sc: %v", name, name, err)
		}
		cloneTook := time.Since(t3)
		b.Logf("clone steps:\n%s", cloneSteps.String())
		var ch api.VMHealthResult
		e.JSON(&ch, "vm", "health", name+"c")
		if !ch.Healthy || ch.Agent == nil || ch.Agent.Hostname != name+"c" {
			b.Fatalf("clone %sc is not healthy under its own name: %+v", name, ch)
		}
		e.MustBanger("vm", "delete", "--force", name+"c")
		clone, create = append(clone, cloneTook.Seconds()), append(create, created.Seconds())
		vm := e.VM(name)
		cold, snap, restore = append(cold, healthy.Seconds()), append(snap, snapTook.Seconds()), append(restore, restoreTook.Seconds())
		ratio = append(ratio, float64(snaps[0].SizeBytes)/float64(int64(vm.MemoryMiB)<<20))
		b.Logf("iteration %d: cold boot to healthy %.1fs, snapshot %.1fs (%d MiB on disk, RAM %d MiB), restore to healthy %.1fs, clone %.1fs",
			i, healthy.Seconds(), snapTook.Seconds(), snaps[0].SizeBytes>>20, vm.MemoryMiB, restoreTook.Seconds(), cloneTook.Seconds())
		e.MustBanger("vm", "delete", "--force", name)
	}
	b.ReportMetric(median(cold), "coldboot-s")
	b.ReportMetric(median(create), "create-s")
	b.ReportMetric(median(snap), "snapshot-s")
	b.ReportMetric(median(restore), "restore-s")
	b.ReportMetric(median(restore)/median(cold), "restore/cold")
	b.ReportMetric(median(ratio), "size/ram")
	b.ReportMetric(median(clone), "clone-s")
	b.ReportMetric(median(clone)/median(create), "clone/create")
	b.ReportMetric(median(clone)/median(cold), "clone/cold")
}
