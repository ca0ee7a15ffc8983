package doctor

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
)

func TestAllChecksWellFormed(t *testing.T) {
	seen := map[string]bool{}
	covered := map[string]bool{}
	for _, c := range All() {
		if seen[c.Name] {
			t.Errorf("duplicate check %q", c.Name)
		}
		seen[c.Name] = true
		if c.Name == "" || strings.ToLower(c.Name) != c.Name || strings.ContainsAny(c.Name, " _") {
			t.Errorf("check name %q is not kebab-case", c.Name)
		}
		if len(c.Scopes) == 0 || c.Run == nil {
			t.Errorf("check %q has no scope or no Run", c.Name)
		}
		for _, s := range c.Scopes {
			if !slices.Contains(Scopes(), s) {
				t.Errorf("check %q has unknown scope %q", c.Name, s)
			}
			covered[s] = true
		}
	}
	for _, s := range Scopes() {
		if !covered[s] {
			t.Errorf("scope %q has no checks", s)
		}
	}
}

// A zero Env (no callbacks) must never panic: missing inputs warn.
func TestNilCallbacksWarn(t *testing.T) {
	h := newFakeHost(t)
	for _, r := range Run(context.Background(), h.env, nil) {
		if strings.Contains(r.Detail, "crashed") {
			t.Errorf("%s crashed: %s", r.Name, r.Detail)
		}
		if strings.HasPrefix(r.Detail, "not checked") && r.Status != api.CheckWarn {
			t.Errorf("%s: not-checked result with status %s", r.Name, r.Status)
		}
	}
}

// Two checks that each wait for the other to start can only both pass when
// they run at the same time; results still come back in check order even
// though the second finishes first.
func TestRunChecksConcurrentlyInOrder(t *testing.T) {
	aStarted, bStarted, bDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	wait := func(ctx context.Context, ch chan struct{}) bool {
		select {
		case <-ch:
			return true
		case <-ctx.Done():
			return false
		}
	}
	checks := []Check{
		{Name: "a", Scopes: []string{ScopeNAT}, Run: func(ctx context.Context, _ *Env) api.CheckResult {
			close(aStarted)
			if !wait(ctx, bStarted) || !wait(ctx, bDone) {
				return fail("b never ran alongside a", "")
			}
			return ok("a saw b")
		}},
		{Name: "b", Scopes: []string{ScopeVMStart}, Run: func(ctx context.Context, _ *Env) api.CheckResult {
			close(bStarted)
			defer close(bDone)
			if !wait(ctx, aStarted) {
				return fail("a never ran alongside b", "")
			}
			return ok("b saw a")
		}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res := RunChecks(ctx, &Env{}, checks, nil)
	if len(res) != 2 || res[0].Name != "a" || res[1].Name != "b" {
		t.Fatalf("results out of order: %+v", res)
	}
	for _, r := range res {
		if r.Status != api.CheckOK {
			t.Errorf("%s: %s", r.Name, r.Detail)
		}
	}
	if res[0].Scope != ScopeNAT || res[1].Scope != ScopeVMStart {
		t.Errorf("scopes not stamped: %+v", res)
	}
}

// No more than maxParallel checks run at once.
func TestRunChecksBounded(t *testing.T) {
	var active, peak atomic.Int32
	full := make(chan struct{})
	var once atomic.Bool
	var checks []Check
	for i := 0; i < 3*maxParallel; i++ {
		checks = append(checks, Check{Name: "c" + string(rune('a'+i)), Scopes: []string{ScopeSSH},
			Run: func(ctx context.Context, _ *Env) api.CheckResult {
				n := active.Add(1)
				defer active.Add(-1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				if n == maxParallel && once.CompareAndSwap(false, true) {
					close(full)
				}
				select {
				case <-full:
				case <-ctx.Done():
				}
				return ok("ran")
			}})
	}
	res := RunChecks(context.Background(), &Env{}, checks, []string{ScopeSSH})
	if len(res) != len(checks) {
		t.Fatalf("%d results for %d checks", len(res), len(checks))
	}
	if p := peak.Load(); p != maxParallel {
		t.Errorf("peak concurrency %d, want exactly %d", p, maxParallel)
	}
}

func TestRunScopes(t *testing.T) {
	h := newFakeHost(t)
	res := Run(context.Background(), h.env, []string{ScopeDaemon, ScopeSSH})
	var names []string
	for _, r := range res {
		names = append(names, r.Scope+"/"+r.Name)
	}
	wantNames := []string{"ssh/ssh-client", "ssh/ssh-key", "ssh/known-hosts",
		"daemon/daemon-socket", "daemon/daemon-version", "daemon/test-switches", "daemon/state-dir", "daemon/database"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("got %v, want %v", names, wantNames)
	}
	if n := len(Run(context.Background(), h.env, nil)); n != len(All()) {
		t.Errorf("no scopes ran %d checks, want all %d", n, len(All()))
	}
	bad := Run(context.Background(), h.env, []string{"vmm"})
	if len(bad) != 1 || bad[0].Status != api.CheckFail || !strings.Contains(bad[0].Fix, "vm-start, nat, image-build") {
		t.Errorf("unknown scope: %+v", bad)
	}
}

func TestPanicBecomesFailure(t *testing.T) {
	res := RunChecks(context.Background(), &Env{}, []Check{{Name: "boom", Scopes: []string{ScopeDNS},
		Run: func(context.Context, *Env) api.CheckResult { panic("nil map") }}}, nil)
	want(t, res[0], api.CheckFail, "check boom crashed: nil map", "banger bug")
}

func TestPreflight(t *testing.T) {
	h := newFakeHost(t)
	// disk-resize on a host without e2fsprogs, VM running.
	running := false
	h.env.VMName, h.env.VMStopped = "dev", &running
	err := Preflight(context.Background(), h.env, ScopeDiskResize)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeFailedPrecondition {
		t.Fatalf("Preflight = %v, want failed_precondition", err)
	}
	for _, s := range []string{"cannot resize the disk", "3 host checks failed (nothing was changed)",
		"e2fsck: e2fsck not found", "resize2fs: resize2fs not found", "vm-stopped: VM dev is running"} {
		if !strings.Contains(ae.Message, s) {
			t.Errorf("message %q lacks %q", ae.Message, s)
		}
	}
	for _, s := range []string{"e2fsck: sudo apt-get install e2fsprogs", "vm-stopped: banger vm stop dev"} {
		if !strings.Contains(ae.Hint, s) {
			t.Errorf("hint %q lacks %q", ae.Hint, s)
		}
	}

	// All pass: nil.
	h.program("e2fsck", "", false)
	h.program("resize2fs", "", false)
	stopped := true
	h.env.VMStopped = &stopped
	if err := Preflight(context.Background(), h.env, ScopeDiskResize); err != nil {
		t.Fatalf("Preflight with everything in place = %v", err)
	}
	// A skipped check does not block: with no VM named, vm-stopped does not apply.
	h.env.VMStopped = nil
	if err := Preflight(context.Background(), h.env, ScopeDiskResize); err != nil {
		t.Fatalf("Preflight with only warnings = %v", err)
	}

	err = Preflight(context.Background(), h.env, "vmm")
	if !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument {
		t.Fatalf("unknown scope: %v", err)
	}
}

// RealEnv on this very machine: the hypervisor line must match what the
// host really has.
func TestRealEnvVMStartOnThisHost(t *testing.T) {
	env := RealEnv()
	res := Run(context.Background(), env, []string{ScopeVMStart})
	by := map[string]api.CheckResult{}
	for _, r := range res {
		by[r.Name] = r
		if r.Scope != ScopeVMStart {
			t.Errorf("%s stamped %q", r.Name, r.Scope)
		}
		t.Logf("%-12s %-4s %s | %s", r.Name, r.Status, r.Detail, r.Fix)
	}
	_, fcErr := sysexec.LookPath("firecracker")
	_, qemuErr := sysexec.LookPath("qemu-system-x86_64")
	kvmErr := openKVM("/dev/kvm")

	hv := by["hypervisor"]
	switch {
	case kvmErr == nil && fcErr == nil:
		want(t, hv, api.CheckOK, "firecracker (", "")
	case kvmErr == nil:
		want(t, hv, api.CheckOK, "qemu (qemu: firecracker not found in PATH (KVM usable", "")
	default:
		want(t, hv, api.CheckWarn, "qemu (", "")
		want(t, hv, api.CheckWarn, "software emulation: boots take ~15 s", "")
	}
	if kvmErr == nil {
		want(t, by["kvm"], api.CheckOK, "usable", "")
	} else {
		want(t, by["kvm"], api.CheckWarn, "", "")
	}
	if fcErr != nil {
		want(t, by["firecracker"], api.CheckWarn, "firecracker not found in PATH", "github.com/firecracker-microvm/firecracker/releases")
	}
	if qemuErr == nil {
		want(t, by["qemu"], api.CheckOK, "QEMU emulator version", "")
	}
	if by["vhost-vsock"].Status == api.CheckFail {
		t.Errorf("vhost-vsock failed: %+v", by["vhost-vsock"])
	}
	want(t, by["memory"], api.CheckOK, "MiB available of", "")
}
