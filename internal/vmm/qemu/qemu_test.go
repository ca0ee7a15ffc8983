package qemu

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/vmm"
)

func TestAccelResolution(t *testing.T) {
	yes := func() (bool, string) { return true, "KVM usable" }
	no := func() (bool, string) { return false, "no /dev/kvm" }
	cases := []struct {
		opt, env string
		kvm      func() (bool, string)
		want     string
		wantErr  string
	}{
		{"auto", "", yes, AccelKVM, ""},
		{"", "", no, AccelTCG, ""},
		{"auto", "tcg", yes, AccelTCG, ""},
		{"kvm", "", no, "", "no /dev/kvm"},
		{"kvm", "", yes, AccelKVM, ""},
		{"tcg", "", yes, AccelTCG, ""},
		{"hvf", "", yes, "", `unknown qemu accelerator "hvf"`},
	}
	for _, tc := range cases {
		t.Setenv(AccelEnv, tc.env)
		got, reason, err := New(Options{Accel: tc.opt, KVM: tc.kvm}).Accel()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Accel(%q, env %q) err = %v, want %q", tc.opt, tc.env, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want || reason == "" {
			t.Errorf("Accel(%q, env %q) = %q, %q, %v; want %q", tc.opt, tc.env, got, reason, err, tc.want)
		}
	}
}

func testSpec(t *testing.T) vmm.Spec {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinux")
	os.WriteFile(kernel, []byte("x"), 0o600)
	return vmm.Spec{
		VMID: "1a2b3c4d", VCPUs: 1, MemoryMiB: 128, KernelPath: kernel,
		APISocket: filepath.Join(dir, "s", "qmp.sock"), AgentSocket: filepath.Join(dir, "s", "agent.sock"),
		ConsoleLog: filepath.Join(dir, "console.log"), VMMLog: filepath.Join(dir, "vmm.log"),
	}
}

func TestStartRejectsBadSpec(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := New(Options{Accel: AccelTCG, Binary: "/bin/true"})
	cases := map[string]func(*vmm.Spec){
		"spec lacks VMID":           func(s *vmm.Spec) { s.VMID = "" },
		"need at least 1 vCPU":      func(s *vmm.Spec) { s.VCPUs = 0 },
		"no such file":              func(s *vmm.Spec) { s.KernelPath += ".missing" },
		"Unix socket limit":         func(s *vmm.Spec) { s.APISocket = "/" + strings.Repeat("x", 120) },
		"want raw or qcow2":         func(s *vmm.Spec) { s.RootfsFormat = "vmdk" },
		"spec has a tap but no MAC": func(s *vmm.Spec) { s.TapName = "bg-1a2b3c4d" },
	}
	for want, mutate := range cases {
		spec := testSpec(t)
		mutate(&spec)
		_, err := d.Start(ctx, spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

func TestStartRefusesLiveSocket(t *testing.T) {
	spec := testSpec(t)
	os.MkdirAll(filepath.Dir(spec.APISocket), 0o700)
	l, err := net.Listen("unix", spec.APISocket)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = New(Options{Accel: AccelTCG, Binary: "/bin/true"}).Start(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), "in use by a running process") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(spec.APISocket); err != nil {
		t.Error("a live socket was removed")
	}
}

func TestStartRemovesStaleSocket(t *testing.T) {
	spec := testSpec(t)
	os.MkdirAll(filepath.Dir(spec.APISocket), 0o700)
	l, err := net.Listen("unix", spec.APISocket)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // leaves a dead socket file, as a killed QEMU does
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// /bin/true "starts" and exits at once: Start must report that, with
	// no socket left, whatever was there before.
	_, err = New(Options{Accel: AccelTCG, Binary: "/bin/true"}).Start(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), "qemu exited during startup") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Lstat(spec.APISocket); !os.IsNotExist(err) {
		t.Error("stale socket still there")
	}
}

func TestStopGoneProcess(t *testing.T) {
	spec := testSpec(t)
	os.MkdirAll(filepath.Dir(spec.APISocket), 0o700)
	os.WriteFile(spec.AgentSocket, nil, 0o600)
	d := New(Options{})
	// pid 1 never has our socket on its command line: not ours, not alive.
	h := vmm.Handle{Driver: "qemu", PID: 1, APISocket: spec.APISocket, AgentSocket: spec.AgentSocket}
	if d.Alive(h) {
		t.Fatal("pid 1 taken for a VMM")
	}
	if err := d.Stop(context.Background(), h, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(spec.AgentSocket); !os.IsNotExist(err) {
		t.Error("Stop left the agent socket")
	}
}
