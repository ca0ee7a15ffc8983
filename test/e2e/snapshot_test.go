package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/e2etest"
	vmsvc "github.com/banger-dev/banger/internal/vm"
	"github.com/banger-dev/banger/internal/vmruntime"
)

func dirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestSnapshotRestoreSuspend walks one real guest (QEMU, TCG here) through
// snapshots: a counting process keeps counting after a restore from a
// memory snapshot (same boot id: no reboot), files written after the
// snapshot are gone and /root is as it was, bad input is refused with
// nothing left behind, suspend ends the QEMU process while resume
// continues the counter, a disk-only snapshot restores by booting from its
// disks, and a snapshot whose image changed is refused. One VM for all of it: each boot costs ~20 s here.
func TestSnapshotRestoreSuspend(t *testing.T) {
	env := e2etest.New(t, e2etest.Options{Subnet: "172.30.87.0/24", Bridge: "bangersnap"})
	env.MustBanger("vm", "create", "--name", "dev")
	bootID := func() string {
		var h api.VMHealthResult
		env.JSON(&h, "vm", "health", "dev")
		if !h.Healthy || h.Agent == nil {
			t.Fatalf("vm health dev: not healthy: %+v", h)
		}
		return h.Agent.BootID
	}
	// counter reads the counting process's value (it lives in /run, a
	// tmpfs: only guest memory carries it across a restore).
	counter := func(when string) int {
		t.Helper()
		out := strings.TrimSpace(env.MustSSH("dev", "cat", "/run/counter"))
		n, err := strconv.Atoi(out)
		if err != nil {
			t.Fatalf("counter %s: %q", when, out)
		}
		return n
	}
	// counting checks the counter moves on from at least min.
	counting := func(min int, when string) int {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			n := counter(when)
			if n > min {
				return n
			}
			if time.Now().After(deadline) {
				t.Fatalf("counter %s stays at %d, want above %d: the counting process is not running", when, n, min)
			}
			time.Sleep(time.Second)
		}
	}
	boot := bootID()
	env.MustSSH("dev", "sh", "-c", "echo at-snapshot > /root/state && sync && "+
		"setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > /run/counter; sleep 0.5; done' </dev/null >/dev/null 2>&1 &")
	c1 := counting(0, "before the snapshot")

	env.MustBanger("vm", "snapshot", "create", "dev", "--name", "s1")
	savedAt := time.Now()
	var snaps []api.Snapshot
	env.JSON(&snaps, "vm", "snapshot", "list", "dev")
	if len(snaps) != 1 || snaps[0].Name != "s1" || !snaps[0].HasMemory || snaps[0].SizeBytes <= 0 ||
		snaps[0].Manifest.VMM != "qemu" || snaps[0].Manifest.KernelSHA256 == "" || snaps[0].Manifest.ImageSHA256 == "" {
		t.Fatalf("snapshot list after create: %+v", snaps)
	}
	table := env.MustBanger("vm", "snapshot", "list", "dev")
	if !strings.Contains(table, "NAME") || !strings.Contains(table, "s1") || !strings.Contains(table, "yes") {
		t.Errorf("snapshot list table:\n%s", table)
	}
	// The source resumed after the snapshot and keeps counting.
	c2 := counting(c1, "after the snapshot")
	env.MustSSH("dev", "sh", "-c", "echo after-snapshot > /root/state && touch /root/new-file /etc/new-mark && sync")

	// Bad input: refused, nothing changed.
	bad := func(want string, args ...string) {
		t.Helper()
		out, errOut, code := env.Banger(args...)
		if code == 0 || !strings.Contains(out+errOut, want) {
			t.Errorf("banger %s: exit %d, want a refusal mentioning %q\n%s%s", strings.Join(args, " "), code, want, out, errOut)
		}
	}
	bad("already has a snapshot named", "vm", "snapshot", "create", "dev", "--name", "s1")
	bad("no snapshot named", "vm", "restore", "dev", "nope", "--yes")
	bad("no snapshot named", "vm", "snapshot", "delete", "dev", "nope")
	bad("without confirmation", "vm", "restore", "dev", "s1")
	bad("invalid snapshot name", "vm", "snapshot", "create", "dev", "--name", "Bad/Name")
	vm := env.VM("dev")
	snapDir := filepath.Join(env.Layout().VM(vm.ID).Dir, "snapshots")
	if entries, _ := os.ReadDir(snapDir); len(entries) != 1 {
		t.Errorf("snapshot dir after refused requests holds %d entries, want only s1", len(entries))
	}

	// Restore with memory: the counter continues, no reboot, the disks are
	// as they were at the snapshot, and the guest's clock is the host's
	// (not the snapshot's: at least 10 s have passed since).
	if wait := 10*time.Second - time.Since(savedAt); wait > 0 {
		time.Sleep(wait)
	}
	env.MustBanger("vm", "restore", "dev", "s1", "--yes")
	guestNow, err := strconv.ParseInt(strings.TrimSpace(env.MustSSH("dev", "date", "+%s")), 10, 64)
	if err != nil {
		t.Fatalf("guest date: %v", err)
	}
	if skew := time.Now().Unix() - guestNow; skew > 3 || skew < -3 {
		t.Errorf("guest clock after restore is %d s off the host's: want it set on restore", skew)
	}
	if got := bootID(); got != boot {
		t.Errorf("boot id after restore = %s, want %s (the guest must not reboot)", got, boot)
	}
	c3 := counter("right after the restore")
	if c3 < c1 || c3 >= c2+1000 {
		t.Errorf("counter after restore = %d: want it back near the snapshot's value (%d at snapshot, %d later)", c3, c1, c2)
	}
	counting(c3, "after the restore")
	if got := strings.TrimSpace(env.MustSSH("dev", "cat", "/root/state")); got != "at-snapshot" {
		t.Errorf("/root/state after restore = %q, want at-snapshot", got)
	}
	for _, f := range []string{"/root/new-file", "/etc/new-mark"} {
		if _, _, code := env.SSH("dev", "test", "-e", f); code != 1 {
			t.Errorf("%s written after the snapshot: test -e exit %d after restore, want 1 (gone)", f, code)
		}
	}
	env.JSON(&snaps, "vm", "snapshot", "list", "dev")
	if len(snaps) != 2 || !strings.HasPrefix(snaps[1].Name, "safety-") || !snaps[1].HasMemory {
		t.Errorf("after restore, want s1 and a safety snapshot with memory: %+v", snaps)
	} else {
		env.MustBanger("vm", "snapshot", "delete", "dev", snaps[1].Name)
		if _, err := os.Stat(filepath.Join(snapDir, snaps[1].Name)); !os.IsNotExist(err) {
			t.Errorf("snapshot delete left %s", filepath.Join(snapDir, snaps[1].Name))
		}
	}

	// Suspend: the QEMU process ends (host RAM freed); resume continues.
	c4 := counter("before suspend")
	pid := env.VM("dev").PID
	env.MustBanger("vm", "suspend", "dev")
	vm = env.VM("dev")
	if vm.State != api.VMSuspended || vm.PID != 0 {
		t.Errorf("after suspend: state %s pid %d, want suspended, 0", vm.State, vm.PID)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Errorf("QEMU (pid %d) still runs while the VM is suspended", pid)
	}
	if pids := e2etest.PIDsMentioning(env.Layout().VM(vm.ID).Dir); len(pids) > 0 {
		t.Errorf("processes use the suspended VM's files: %v", pids)
	}
	if env.HasLink("bg-" + vm.ID) {
		t.Errorf("tap bg-%s exists while the VM is suspended", vm.ID)
	}
	bad("suspended", "vm", "start", "dev")
	env.MustBanger("vm", "resume", "dev")
	if got := bootID(); got != boot {
		t.Errorf("boot id after resume = %s, want %s", got, boot)
	}
	counting(c4, "after resume")
	if _, err := os.Stat(filepath.Join(env.Layout().VM(vm.ID).Dir, "suspend")); !os.IsNotExist(err) {
		t.Errorf("saved suspend state left after resume: %v", err)
	}

	// Crash safety: bangerd SIGKILLs itself before each step of snapshot,
	// suspend and resume (the points come from vmruntime's step lists plus
	// the service's own). The restarted daemon must leave no half snapshot
	// listed or on disk, no VM paused forever (the counter moves on), no
	// stray VMM or tap, and a suspended VM resumable.
	settled := func(point string) {
		t.Helper()
		v := env.VM("dev")
		pids := e2etest.PIDsMentioning(env.Layout().VM(v.ID).Dir)
		switch v.State {
		case api.VMRunning:
			if len(pids) != 1 || pids[0] != v.PID {
				t.Errorf("%s: running VM has VMM pid %d, processes on its files %v", point, v.PID, pids)
			}
			if !env.HasLink("bg-" + v.ID) {
				t.Errorf("%s: running VM has no tap", point)
			}
		case api.VMSuspended:
			if len(pids) != 0 || env.HasLink("bg-"+v.ID) {
				t.Errorf("%s: suspended VM has processes %v or a tap (%v)", point, pids, env.HasLink("bg-"+v.ID))
			}
			env.MustBanger("vm", "resume", "dev")
		default:
			t.Fatalf("%s: VM left %s (%s)", point, v.State, v.LastError)
		}
		if got := bootID(); got != boot {
			t.Fatalf("%s: the guest rebooted (boot id %s, want %s)", point, got, boot)
		}
		counting(counter(point+": settled"), point)
		env.JSON(&snaps, "vm", "snapshot", "list", "dev")
		for _, sn := range snaps {
			if sn.Name != "s1" {
				t.Errorf("%s: snapshot %s listed after the crash", point, sn.Name)
			}
		}
		for _, e := range dirNames(snapDir) {
			if e != "s1" {
				t.Errorf("%s: %s left in the snapshots directory", point, e)
			}
		}
		if v := env.VM("dev"); v.State == api.VMRunning {
			if _, err := os.Stat(filepath.Join(env.Layout().VM(v.ID).Dir, "suspend")); !os.IsNotExist(err) {
				t.Errorf("%s: saved suspend state left for a running VM", point)
			}
		}
	}
	var snapPoints []string
	for _, step := range vmruntime.StepNames("snapshot") {
		snapPoints = append(snapPoints, "snapshot:"+step)
	}
	if len(snapPoints) == 0 || len(vmruntime.StepNames("resume")) == 0 {
		t.Fatal("vmruntime declares no snapshot or resume steps: the crash points would silently be none")
	}
	for i, point := range append(snapPoints, servicePoints("snapshot")...) {
		crashDuring(t, env, point, "vm", "snapshot", "create", "dev", "--name", "c"+strconv.Itoa(i))
		settled(point)
	}
	for _, point := range append(snapPoints, servicePoints("suspend")...) {
		crashDuring(t, env, point, "vm", "suspend", "dev")
		settled("suspend/" + point)
	}
	for _, step := range append(vmruntime.StepNames("resume"), vmsvc.CrashPoints("resume")...) {
		point := "resume:" + step
		env.MustBanger("vm", "suspend", "dev")
		crashDuring(t, env, point, "vm", "resume", "dev")
		settled(point)
	}

	// Clone of the running VM (memory): the clone continues the source's
	// processes but is its own machine (name, address, machine-id, host
	// keys); the source keeps running, unchanged.
	machineID := strings.TrimSpace(env.MustSSH("dev", "cat", "/etc/machine-id"))
	hostKey := strings.TrimSpace(env.MustSSH("dev", "cat", "/etc/ssh/ssh_host_ed25519_key.pub"))
	env.MustBanger("vm", "clone", "dev", "dev2")
	src, clone := env.VM("dev"), env.VM("dev2")
	if clone.State != api.VMRunning || clone.IP == src.IP || clone.MAC == src.MAC || clone.Tap == src.Tap || clone.VsockCID == src.VsockCID {
		t.Errorf("clone record %+v shares identity with the source %+v", clone, src)
	}
	if got := strings.TrimSpace(env.MustSSH("dev2", "hostname")); got != "dev2" {
		t.Errorf("clone hostname = %q, want dev2", got)
	}
	if addr := env.MustSSH("dev2", "ip", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(addr, clone.IP+"/") || strings.Contains(addr, src.IP+"/") {
		t.Errorf("clone eth0 addresses, want only %s:\n%s", clone.IP, addr)
	}
	if got := strings.TrimSpace(env.MustSSH("dev2", "cat", "/etc/machine-id")); got == machineID || got == "" {
		t.Errorf("clone machine-id %q, source's %q: want a new one", got, machineID)
	}
	if got := strings.TrimSpace(env.MustSSH("dev2", "cat", "/etc/ssh/ssh_host_ed25519_key.pub")); got == hostKey || got == "" {
		t.Errorf("clone host key is the source's (or none): %q", got)
	}
	if n := strings.TrimSpace(env.MustSSH("dev2", "cat", "/run/counter")); n == "" {
		t.Error("the clone lost the source's counter process")
	}
	if got := bootID(); got != boot {
		t.Errorf("source boot id changed by the clone: %s, want %s", got, boot)
	}
	if got := strings.TrimSpace(env.MustSSH("dev", "cat", "/etc/machine-id")); got != machineID {
		t.Errorf("source machine-id changed by the clone: %q, want %q", got, machineID)
	}
	if got := strings.TrimSpace(env.MustSSH("dev", "hostname")); got != "dev" {
		t.Errorf("source hostname = %q after the clone", got)
	}
	counting(counter("source after the clone"), "source after the clone")
	bad("already exists", "vm", "clone", "dev", "dev2")
	env.MustBanger("vm", "delete", "--force", "-y", "dev2")
	assertGone(t, env, clone)

	// A clone cut short by a daemon crash is removed at the next start: no
	// VM, directory, tap or process of it is left, and the source runs on.
	for _, point := range servicePoints("clone") {
		crashDuring(t, env, point, "vm", "clone", "dev", "dev3")
		settled(point)
		src := env.VM("dev")
		for _, v := range env.VMs() {
			if v.ID != src.ID {
				t.Errorf("%s: VM %s (%s) is listed after the crash", point, v.Name, v.State)
			}
		}
		if dirs := dirNames(env.Layout().VMsDir()); len(dirs) != 1 || dirs[0] != src.ID {
			t.Errorf("%s: VM directories %v after the crash, want only the source's %s", point, dirs, src.ID)
		}
		for _, l := range env.Links() {
			if strings.HasPrefix(l, "bg-") && l != "bg-"+src.ID {
				t.Errorf("%s: tap %s left after the crash", point, l)
			}
		}
		if pids := e2etest.PIDsMentioning(env.Layout().VMsDir()); len(pids) != 1 || pids[0] != src.PID {
			t.Errorf("%s: processes on VM files %v, want only the source's VMM %d", point, pids, src.PID)
		}
	}

	// A disk-only snapshot of the running VM: a restore boots from its
	// disks (a new boot id, no counter) with /root as it was.
	env.MustSSH("dev", "sh", "-c", "echo at-d1 > /root/state && sync")
	env.MustBanger("vm", "snapshot", "create", "dev", "--name", "d1", "--no-memory")
	counting(counter("after d1"), "after the disk-only snapshot")
	env.MustSSH("dev", "sh", "-c", "echo after-d1 > /root/state && sync")
	env.MustBanger("vm", "restore", "dev", "d1", "--yes", "--no-safety")
	if got := bootID(); got == boot {
		t.Errorf("boot id after a disk-only restore = %s, the same as before: want a fresh boot", got)
	}
	if got := strings.TrimSpace(env.MustSSH("dev", "cat", "/root/state")); got != "at-d1" {
		t.Errorf("/root/state after the disk-only restore = %q, want at-d1", got)
	}
	if _, _, code := env.SSH("dev", "test", "-e", "/run/counter"); code != 1 {
		t.Errorf("/run/counter exists after a disk-only restore (exit %d): the guest did not boot afresh", code)
	}
	env.JSON(&snaps, "vm", "snapshot", "list", "dev")
	if len(snaps) != 2 || snaps[1].Name != "d1" || snaps[1].HasMemory {
		t.Errorf("after --no-safety restore, want s1 and d1 (disk only), no safety snapshot: %+v", snaps)
	}

	// A clone from a disk-only snapshot boots from the snapshot's disks
	// (its /root is the snapshot's) and is its own machine by the time it
	// is running; the source runs on, unchanged.
	machineID = strings.TrimSpace(env.MustSSH("dev", "cat", "/etc/machine-id"))
	hostKey = strings.TrimSpace(env.MustSSH("dev", "cat", "/etc/ssh/ssh_host_ed25519_key.pub"))
	boot = bootID()
	env.MustBanger("vm", "clone", "dev", "dev4", "--snapshot", "d1")
	src, clone = env.VM("dev"), env.VM("dev4")
	if clone.State != api.VMRunning || clone.IP == src.IP || clone.MAC == src.MAC {
		t.Errorf("disk-only clone record %+v shares identity with the source %+v", clone, src)
	}
	for _, c := range []struct {
		argv      []string
		want, not string
	}{
		{[]string{"hostname"}, "dev4", ""},
		{[]string{"cat", "/root/state"}, "at-d1", ""},
		{[]string{"cat", "/etc/machine-id"}, "", machineID},
		{[]string{"cat", "/etc/ssh/ssh_host_ed25519_key.pub"}, "", hostKey},
	} {
		got := strings.TrimSpace(env.MustSSH("dev4", c.argv...))
		if (c.want != "" && got != c.want) || got == c.not || got == "" {
			t.Errorf("disk-only clone: %v = %q (want %q, not the source's %q)", c.argv, got, c.want, c.not)
		}
	}
	if addr := env.MustSSH("dev4", "ip", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(addr, clone.IP+"/") || strings.Contains(addr, src.IP+"/") {
		t.Errorf("disk-only clone eth0 addresses, want only %s:\n%s", clone.IP, addr)
	}
	if got := bootID(); got != boot {
		t.Errorf("source boot id changed by the disk-only clone: %s, want %s", got, boot)
	}
	env.MustBanger("vm", "delete", "--force", "-y", "dev4")
	assertGone(t, env, clone)

	// A restore interrupted after the VM was stopped leaves it stopped and
	// whole: no VMM, no tap, no extra snapshot; it boots again.
	for _, point := range servicePoints("restore") {
		crashDuring(t, env, point, "vm", "restore", "dev", "s1", "--yes", "--no-safety")
		v := env.VM("dev")
		if v.State != api.VMStopped {
			t.Errorf("%s: VM is %s after the crash, want stopped", point, v.State)
		}
		if pids := e2etest.PIDsMentioning(env.Layout().VM(v.ID).Dir); len(pids) > 0 || env.HasLink("bg-"+v.ID) {
			t.Errorf("%s: stopped VM has processes %v or a tap (%v)", point, pids, env.HasLink("bg-"+v.ID))
		}
		if got := dirNames(snapDir); len(got) != 2 {
			t.Errorf("%s: snapshots directory holds %v, want s1 and d1", point, got)
		}
		env.MustBanger("vm", "start", "dev")
		bootID()
	}

	// A snapshot whose image was rebuilt is refused, saying so.
	env.MarkImageRebuilt("debian")
	bad("image debian was rebuilt", "vm", "restore", "dev", "s1", "--yes", "--no-safety")
	if v := env.VM("dev"); v.State != api.VMRunning {
		t.Errorf("a refused restore changed the VM: state %s", v.State)
	}

	env.MustBanger("vm", "delete", "--force", "-y", "dev")
	assertGone(t, env, vm)
}

// servicePoints are the crash points the VM service declares for op, as
// BANGER_TEST_CRASH_AT values.
func servicePoints(op string) []string {
	var points []string
	for _, p := range vmsvc.CrashPoints(op) {
		points = append(points, op+":"+p)
	}
	return points
}
