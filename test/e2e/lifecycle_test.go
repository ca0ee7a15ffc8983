package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/e2etest"
)

// TestVMLifecycle walks one real guest (QEMU, TCG here) through a user's
// life with it: create, health, ssh, work in /root, restart, resources
// changed at next start, stop, work disk grown and image rebuilt while
// stopped, start, delete. /root must survive every restart and the image
// rebuild (issue "The whole journey"), and delete must leave nothing behind.
// One VM is reused across the steps: each boot costs ~15-25 s here.
func TestVMLifecycle(t *testing.T) {
	env := e2etest.New(t, e2etest.Options{Subnet: "172.30.81.0/24", Bridge: "bangerlife"})

	tm := e2etest.StartTimer(t)
	env.MustBanger("vm", "create", "--name", "dev")
	tm.Mark("create to healthy (vm create returned)")

	var h api.VMHealthResult
	env.JSON(&h, "vm", "health", "dev")
	if !h.Healthy || h.Agent == nil {
		t.Fatalf("vm health after create: not healthy: %+v", h)
	}
	if h.Agent.Hostname != "dev" || !h.Agent.WorkDiskMounted {
		t.Errorf("agent says hostname %q, work disk mounted %v; want dev, true", h.Agent.Hostname, h.Agent.WorkDiskMounted)
	}
	firstBoot := h.Agent.BootID

	uname := env.MustSSH("dev", "uname", "-a")
	tm.Mark("create to first ssh")
	if !strings.HasPrefix(uname, "Linux dev ") {
		t.Errorf("uname -a in the guest = %q, want Linux dev ...", uname)
	}
	// The remote command's status is banger's, arguments kept as given.
	if _, errOut, code := env.SSH("dev", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("vm ssh dev -- sh -c 'exit 7': exit %d, want 7 (stderr %q)", code, errOut)
	}
	vm := env.VM("dev")
	if vm.State != api.VMRunning || vm.VCPUs != 2 || vm.MemoryMiB != 1024 {
		t.Fatalf("vm show dev: %+v; want running with the defaults 2 vcpus / 1024 MiB", vm)
	}
	if got := strings.TrimSpace(env.MustSSH("dev", "nproc")); got != "2" {
		t.Errorf("nproc in the guest = %s, want 2", got)
	}
	diskBefore := rootFSBytes(t, env, "dev")

	// The serial console is kept and shown; show says which VMM and why.
	if logs := env.MustBanger("vm", "logs", "dev"); !strings.Contains(logs, "Linux version") {
		t.Errorf("vm logs dev has no kernel banner; got %d bytes:\n%.2000s", len(logs), logs)
	}
	show := env.MustBanger("vm", "show", "dev")
	if vm.VMM == "" || !strings.Contains(show, vm.VMM+" (") || !strings.Contains(show, "172.30.81.") {
		t.Errorf("vm show dev should name the VMM (%q) with the reason, and the address:\n%s", vm.VMM, show)
	}
	if vm.VMM == "qemu" && !strings.Contains(show, "virtio-serial") {
		t.Errorf("vm show dev: a QEMU VM's agent channel is virtio-serial:\n%s", show)
	}
	t.Logf("vm show dev:\n%s", show)

	env.MustSSH("dev", "sh", "-c", "echo kept-across-restarts > /root/marker && touch "+rootDiskMark+" && sync")

	// CPU and memory change on a running VM: accepted, applied at next start.
	out, errOut, code := env.Banger("vm", "set", "dev", "--vcpus", "1", "--memory", "768M")
	if code != 0 || !strings.Contains(out+errOut, "applies at next start") {
		t.Fatalf("vm set on a running VM: exit %d, want 0 and a note that it applies at next start\n%s%s", code, out, errOut)
	}
	if got := strings.TrimSpace(env.MustSSH("dev", "nproc")); got != "2" {
		t.Errorf("nproc right after vm set = %s; the running guest must keep 2 until restart", got)
	}

	tm = e2etest.StartTimer(t)
	env.MustBanger("vm", "restart", "dev")
	tm.Mark("restart to healthy")
	env.JSON(&h, "vm", "health", "dev")
	if !h.Healthy || h.Agent == nil || h.Agent.BootID == firstBoot {
		t.Fatalf("after restart: healthy %v, boot id %v (before %s): the guest did not reboot", h.Healthy, h.Agent, firstBoot)
	}
	assertMarker(t, env, "restart")
	if _, _, code := env.SSH("dev", "test", "-e", rootDiskMark); code != 0 {
		t.Errorf("%s is gone after a restart: the root disk must be kept while its image is unchanged", rootDiskMark)
	}
	if got := strings.TrimSpace(env.MustSSH("dev", "nproc")); got != "1" {
		t.Errorf("nproc after vm set --vcpus 1 and restart = %s, want 1", got)
	}
	// MemTotal is the RAM less what the kernel reserves: close below 768 MiB.
	if kib := meminfoKiB(t, env, "dev", "MemTotal"); kib > 768*1024 || kib < 600*1024 {
		t.Errorf("MemTotal after vm set --memory 768M and restart = %d KiB, want a little under %d", kib, 768*1024)
	}

	tm = e2etest.StartTimer(t)
	env.MustBanger("vm", "stop", "dev")
	tm.Mark("stop")
	vm = env.VM("dev")
	if vm.State != api.VMStopped || vm.PID != 0 {
		t.Errorf("after vm stop: state %s pid %d", vm.State, vm.PID)
	}
	if pids := e2etest.PIDsMentioning(env.Layout().VM(vm.ID).Dir); len(pids) > 0 {
		t.Errorf("after vm stop, processes still use the VM's disks: %v", pids)
	}
	if env.HasLink("bg-" + vm.ID) {
		t.Errorf("after vm stop, tap bg-%s still exists", vm.ID)
	}

	// The work disk grows while stopped and never shrinks.
	bigger := vm.DiskBytes + 1<<30
	env.MustBanger("vm", "set", "dev", "--disk", fmt.Sprint(bigger))
	if got := env.VM("dev").DiskBytes; got != bigger {
		t.Errorf("disk after vm set --disk %d: %d", bigger, got)
	}
	out, errOut, code = env.Banger("vm", "set", "dev", "--disk", fmt.Sprint(vm.DiskBytes))
	if code == 0 || !strings.Contains(out+errOut, "only grow") {
		t.Errorf("shrinking the work disk: exit %d, want a refusal saying disks only grow\n%s%s", code, out, errOut)
	}

	// The image is rebuilt meanwhile: the next start re-clones the root
	// disk from it, and /root (the work disk) is kept.
	env.MarkImageRebuilt("debian")

	tm = e2etest.StartTimer(t)
	env.MustBanger("vm", "start", "dev")
	tm.Mark("start to healthy")
	assertMarker(t, env, "stop, image rebuild and start")
	if _, _, code := env.SSH("dev", "test", "-e", rootDiskMark); code != 1 {
		t.Errorf("test -e %s after an image rebuild: exit %d, want 1 (root disk re-cloned from the new image)", rootDiskMark, code)
	}
	diskAfter := rootFSBytes(t, env, "dev")
	t.Logf("/root filesystem: %s before, %s after growing the work disk by 1 GiB", gib(diskBefore), gib(diskAfter))
	if diskAfter < diskBefore+(900<<20) {
		t.Errorf("/root is %d bytes after growing the work disk by 1 GiB (was %d): the filesystem did not grow", diskAfter, diskBefore)
	}

	// Delete refuses a running VM without --force and says how; once the VM
	// is stopped, delete -y removes everything it had.
	out, errOut, code = env.Banger("vm", "delete", "-y", "dev")
	if code == 0 || !strings.Contains(out+errOut, "stop") {
		t.Errorf("vm delete -y on a running VM: exit %d, want a refusal naming vm stop\n%s%s", code, out, errOut)
	}
	env.MustBanger("vm", "stop", "dev")
	env.MustBanger("vm", "delete", "-y", "dev")
	assertGone(t, env, vm)
	if out, _, code := env.Banger("vm", "show", "dev"); code == 0 {
		t.Errorf("vm show after delete succeeded:\n%s", out)
	}
}

// rootDiskMark is a file on the guest's root disk (not under /root).
const rootDiskMark = "/etc/banger-e2e-root-disk-mark"

func assertMarker(t *testing.T, env *e2etest.Env, after string) {
	t.Helper()
	if got := strings.TrimSpace(env.MustSSH("dev", "cat", "/root/marker")); got != "kept-across-restarts" {
		t.Errorf("/root/marker after %s = %q, want kept-across-restarts", after, got)
	}
}
