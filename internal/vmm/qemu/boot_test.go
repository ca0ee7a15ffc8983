package qemu

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/disk"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/vmm"
)

// bootFixture is a tiny real guest: the Debian kernel, a busybox initramfs,
// a qcow2 root overlay (8 MiB) and a raw work disk (16 MiB).
type bootFixture struct {
	kernel, initrd, base string
}

func newBootFixture(t *testing.T) bootFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a real QEMU guest; skipped with -short")
	}
	if _, err := sysexec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skipf("%v: apt-get install qemu-system-x86", err)
	}
	if _, err := sysexec.LookPath("qemu-img"); err != nil {
		t.Skipf("%v: apt-get install qemu-utils", err)
	}
	kernel, modDir := testKernel(t)
	dir := t.TempDir()
	f := bootFixture{kernel: kernel, initrd: filepath.Join(dir, "initrd.cpio"), base: filepath.Join(dir, "base.raw")}
	buildInitramfs(t, modDir, f.initrd)
	if err := os.WriteFile(f.base, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f.base, 8<<20); err != nil {
		t.Fatal(err)
	}
	return f
}

// spec lays a VM out under a fresh directory, with sockets under a short
// runtime dir like banger's.
func (f bootFixture) spec(t *testing.T, bootArgs string) vmm.Spec {
	t.Helper()
	dir := t.TempDir()
	run, err := os.MkdirTemp("", "bg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	s := vmm.Spec{
		VMID: "0badcafe", Name: "boot-test", VCPUs: 1, MemoryMiB: 256,
		KernelPath: f.kernel, InitrdPath: f.initrd, BootArgs: bootArgs,
		RootfsPath: filepath.Join(dir, "rootfs.qcow2"), RootfsFormat: "qcow2",
		WorkDiskPath: filepath.Join(dir, "work.raw"),
		APISocket:    filepath.Join(run, "vm", "qmp.sock"),
		AgentSocket:  filepath.Join(run, "vm", "agent.sock"),
		ConsoleLog:   filepath.Join(dir, "console.log"),
		VMMLog:       filepath.Join(dir, "vmm.log"),
	}
	if err := disk.CreateOverlay(ctxFor(t, 10*time.Second), f.base, s.RootfsPath); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.WorkDiskPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(s.WorkDiskPath, 16<<20); err != nil {
		t.Fatal(err)
	}
	return s
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitConsole waits for marker in the console log.
func waitConsole(t *testing.T, spec vmm.Spec, marker string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		b, _ := os.ReadFile(spec.ConsoleLog)
		if strings.Contains(string(b), marker) {
			return string(b)
		}
		if time.Now().After(deadline) {
			vmmLog, _ := os.ReadFile(spec.VMMLog)
			t.Fatalf("no %q in the console after %v.\nconsole:\n%s\nvmm log:\n%s", marker, limit, tail(string(b), 3000), vmmLog)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestBootTinyGuest(t *testing.T) {
	f := newBootFixture(t)
	type run struct {
		accel string
		// mode is the guest's banger.test= behaviour (see guestInit):
		// "poweroff" exits by itself, "button" powers off on Stop's ACPI
		// power button, "hold" ignores it so Stop must escalate to QMP quit.
		mode string
	}
	runs := []run{{AccelTCG, "poweroff"}, {AccelTCG, "button"}, {AccelTCG, "hold"}}
	if ok, why := vmm.KVMUsable(); ok {
		runs = append([]run{{AccelKVM, "poweroff"}, {AccelKVM, "button"}, {AccelKVM, "hold"}}, runs...)
	} else {
		t.Logf("KVM not usable (%s): TCG only", why)
	}
	for _, r := range runs {
		accel, mode := r.accel, r.mode
		t.Run(accel+"/"+mode, func(t *testing.T) {
			hold := mode != "poweroff" // the guest waits for Stop
			args := "quiet banger.test=" + mode
			spec := f.spec(t, args)
			d := New(Options{Accel: accel})
			// A slow emulated boot must not fail the test's QMP wait.
			h, err := d.Start(ctxFor(t, 60*time.Second), spec)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Stop(context.Background(), h, time.Second) })
			if h.Driver != "qemu" || h.PID <= 0 || h.APISocket != spec.APISocket || h.AgentSocket != spec.AgentSocket {
				t.Errorf("handle = %+v", h)
			}
			if !d.Alive(h) {
				t.Fatal("Alive = false right after Start")
			}
			if other := (vmm.Handle{PID: h.PID, APISocket: "/elsewhere/qmp.sock"}); d.Alive(other) {
				t.Error("Alive matched a handle naming another socket")
			}
			// The guest greets us on the banger.agent port; keep the host end
			// open from the start so nothing is dropped.
			agent, err := net.Dial("unix", spec.AgentSocket)
			if err != nil {
				t.Fatalf("dial agent socket: %v", err)
			}
			defer agent.Close()
			greeting := make(chan string, 1)
			go func() {
				line, _ := bufio.NewReader(agent).ReadString('\n')
				greeting <- line
			}()
			if !hold {
				// The guest may already be gone; a running status is checked
				// by Start itself. Here only check QMP answers sensibly.
				if st, err := d.Status(ctxFor(t, 5*time.Second), h); err == nil && !st.Running && st.Status != "shutdown" {
					t.Errorf("status = %+v", st)
				}
			} else {
				st, err := d.Status(ctxFor(t, 5*time.Second), h)
				if err != nil || !st.Running {
					t.Fatalf("query-status = %+v, %v; want running", st, err)
				}
			}
			console := waitConsole(t, spec, "BANGER-BOOT-MARKER", 90*time.Second)
			if !strings.Contains(console, "BANGER-DISKS vda=16384 vdb=32768") {
				t.Errorf("root disk is not /dev/vda or work disk not /dev/vdb:\n%s", tail(console, 2000))
			}
			if !strings.Contains(console, "BANGER-PORT /dev/vport") {
				t.Errorf("guest found no banger.agent port:\n%s", tail(console, 2000))
			}
			select {
			case line := <-greeting:
				if line != "hello-from-guest\n" {
					t.Errorf("agent socket got %q", line)
				}
			case <-time.After(10 * time.Second):
				t.Error("nothing arrived on the agent socket")
			}

			if hold {
				grace := 2 * time.Second
				if mode == "button" {
					grace = 30 * time.Second
				}
				start := time.Now()
				if err := d.Stop(ctxFor(t, 60*time.Second), h, grace); err != nil {
					t.Fatalf("Stop: %v", err)
				}
				took := time.Since(start)
				console, _ := os.ReadFile(spec.ConsoleLog)
				pressed := strings.Contains(string(console), "BANGER-POWER-BUTTON")
				switch {
				case mode == "button" && (!pressed || took >= grace):
					t.Errorf("guest did not power off on the ACPI power button (pressed=%v, Stop took %v):\n%s", pressed, took, tail(string(console), 2000))
				case mode == "hold" && took < grace:
					t.Errorf("Stop returned after %v, before the %v grace, though the guest ignores the power button", took, grace)
				}
				t.Logf("Stop (%s) took %v", mode, took)
			} else {
				if err := vmm.WaitGone(ctxFor(t, 30*time.Second), h.PID, needle(h)); err != nil {
					t.Fatalf("guest poweroff did not end QEMU: %v", err)
				}
				if err := d.Stop(ctxFor(t, 10*time.Second), h, time.Second); err != nil {
					t.Fatalf("Stop of an exited VM: %v", err)
				}
			}
			if d.Alive(h) {
				t.Error("Alive after Stop")
			}
			for _, s := range []string{spec.APISocket, spec.AgentSocket} {
				if _, err := os.Lstat(s); !os.IsNotExist(err) {
					t.Errorf("socket %s left behind", s)
				}
			}
			// Restart keeps the console log (append=on).
			before, _ := os.ReadFile(spec.ConsoleLog)
			if !strings.Contains(string(before), "BANGER-BOOT-MARKER") {
				t.Error("console log lost")
			}
		})
	}
}

func TestStartFailureCleansUp(t *testing.T) {
	f := newBootFixture(t)
	spec := f.spec(t, "")
	bogus := filepath.Join(t.TempDir(), "not-a-kernel")
	os.WriteFile(bogus, []byte("garbage"), 0o600)
	spec.KernelPath = bogus
	d := New(Options{Accel: AccelTCG})
	_, err := d.Start(ctxFor(t, 30*time.Second), spec)
	if err == nil {
		t.Fatal("Start booted a garbage kernel")
	}
	if !strings.Contains(err.Error(), "QEMU log") || !strings.Contains(err.Error(), "qemu exited") {
		t.Errorf("error lacks the QEMU log tail: %v", err)
	}
	t.Log(err)
	for _, s := range []string{spec.APISocket, spec.AgentSocket, filepath.Dir(spec.APISocket)} {
		if _, err := os.Lstat(s); !os.IsNotExist(err) {
			t.Errorf("%s left behind", s)
		}
	}
}
