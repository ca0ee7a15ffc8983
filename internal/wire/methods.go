package wire

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/bundle"
	"github.com/banger-dev/banger/internal/doctor"
	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/image"
	"github.com/banger-dev/banger/internal/sysexec"
)

func (a *Assembly) registerMethods() {
	register(a, api.MethodBundleShow, func(ctx context.Context, _ struct{}, _ func(api.Progress)) (api.BundleInfo, error) {
		b, err := a.loadBundle()
		if err != nil {
			return api.BundleInfo{}, err
		}
		return b.Info(), nil
	})
	register(a, api.MethodBundleBuild, a.bundleBuild)
	register(a, api.MethodImageBuild, a.imageBuild)
	register(a, api.MethodImageRegister, a.imageRegister)
	register(a, api.MethodImageVerify, a.imageVerify)
	register(a, api.MethodDoctorRun, func(ctx context.Context, p api.DoctorParams, _ func(api.Progress)) (api.DoctorResult, error) {
		if err := doctor.ValidateScopes(p.Scopes); err != nil {
			return api.DoctorResult{}, err
		}
		return api.DoctorResult{Checks: doctor.Run(ctx, a.doctorEnv(), p.Scopes)}, nil
	})
	// `banger vm ssh` asks for this first: check the ssh client, the key
	// and known_hosts before the CLI runs ssh.
	register(a, api.MethodVMSSHInfo, func(ctx context.Context, p api.VMRef, _ func(api.Progress)) (api.VMSSHInfo, error) {
		if err := doctor.Preflight(ctx, a.doctorEnv(), doctor.ScopeSSH); err != nil {
			return api.VMSSHInfo{}, err
		}
		return a.D.VMs.SSHInfo(ctx, p.Name)
	})
	register(a, api.MethodHostNAT, a.hostNAT)
	register(a, api.MethodHostTeardown, a.hostTeardown)
}

// agentBinary finds the static guest agent to put into bundles: agent_bin
// from config, else banger-agent next to bangerd, else in PATH.
func (a *Assembly) agentBinary() (string, error) {
	if p := a.D.Config.AgentBin; p != "" {
		return p, nil
	}
	beside := filepath.Join(filepath.Dir(a.Bangerd), "banger-agent")
	if _, err := os.Stat(beside); err == nil {
		return beside, nil
	}
	if p, err := sysexec.LookPath("banger-agent"); err == nil {
		return p, nil
	}
	return "", api.NewError(api.CodeFailedPrecondition, "no banger-agent binary next to bangerd or in PATH",
		"build it with `make build` (bin/banger-agent) or set agent_bin in config.toml")
}

func (a *Assembly) bundleBuild(ctx context.Context, p api.BundleBuildParams, progress func(api.Progress)) (api.BundleInfo, error) {
	a.buildMu.Lock()
	defer a.buildMu.Unlock()
	agent, err := a.agentBinary()
	if err != nil {
		return api.BundleInfo{}, err
	}
	b, err := bundle.Build(ctx, bundle.BuildOptions{
		Dir: a.bundleDir(), CacheDir: filepath.Join(a.D.Layout.CacheDir, "kernel"),
		AgentBinary: agent, Force: p.Force,
	}, progress)
	if err != nil {
		return api.BundleInfo{}, err
	}
	return b.Info(), nil
}

func (a *Assembly) imageBuild(ctx context.Context, p api.ImageBuildParams, progress func(api.Progress)) (api.Image, error) {
	if err := image.ValidateName(p.Name); err != nil {
		return api.Image{}, err
	}
	env := a.doctorEnv()
	env.Distro, env.VoidTarball = p.Distro, p.FromTarball != ""
	if err := doctor.Preflight(ctx, env, doctor.ScopeImageBuild); err != nil {
		return api.Image{}, err
	}
	if existing, err := a.D.Store.GetImage(ctx, p.Name); err == nil && !p.Force {
		return api.Image{}, api.NewError(api.CodeAlreadyExists,
			fmt.Sprintf("image %q already exists (built %s)", p.Name, existing.CreatedAt.Format(time.RFC3339)),
			"rebuild it with --force (VMs keep /root; their system disk is re-cloned at next start)")
	}
	b, err := a.loadBundle()
	if err != nil {
		return api.Image{}, err
	}
	a.buildMu.Lock()
	defer a.buildMu.Unlock()
	req := image.BuildRequest{
		Name: p.Name, Distro: p.Distro, Suite: p.Suite, ExtraPackages: p.Packages,
		Libc: p.Libc, FromTarball: p.FromTarball,
		VoidRepo: a.D.Config.VoidRepo, XBPSStatic: a.D.Config.XBPSStatic,
		PublicKeyPath: b.SSHPubKeyPath, AgentPath: b.AgentPath,
		ModulesDir: b.ModulesDir, KernelVersion: b.KernelVersion,
	}
	if p.SizeBytes != nil {
		req.SizeBytes = *p.SizeBytes
	}
	img, err := a.Images.Build(ctx, req, progress)
	if err != nil {
		return api.Image{}, err
	}
	img.KernelVersion = b.KernelVersion
	return a.putImage(ctx, img, p.Force)
}

func (a *Assembly) putImage(ctx context.Context, img api.Image, replace bool) (api.Image, error) {
	saved, err := a.D.Store.PutImage(ctx, img, replace)
	if err != nil {
		return api.Image{}, a.D.VMs.MapStoreError(err)
	}
	return saved, nil
}

func (a *Assembly) imageRegister(ctx context.Context, p api.ImageRegisterParams, _ func(api.Progress)) (api.Image, error) {
	img, err := a.Images.Register(ctx, image.RegisterRequest{
		Name: p.Name, RootfsPath: p.RootfsPath, KernelPath: p.KernelPath, InitrdPath: p.InitrdPath, Distro: p.Distro,
	})
	if err != nil {
		return api.Image{}, err
	}
	return a.putImage(ctx, img, false)
}

// imageVerify proves an image: offline checks of its contents, then (when a
// hypervisor is usable) a throwaway VM booted from it: agent healthy, SSH
// login, baseline commands present.
func (a *Assembly) imageVerify(ctx context.Context, p api.ImageRef, progress func(api.Progress)) (api.ImageVerifyResult, error) {
	img, err := a.D.Store.GetImage(ctx, p.Name)
	if err != nil {
		return api.ImageVerifyResult{}, a.D.VMs.MapStoreError(err)
	}
	b, err := a.loadBundle()
	if err != nil {
		return api.ImageVerifyResult{}, err
	}
	progress(api.Progress{Step: "offline", Message: "checking the contents of " + img.RootfsPath})
	res := api.ImageVerifyResult{Image: img.Name, Checks: a.Images.VerifyOffline(ctx, img.RootfsPath, b.SSHPubKeyPath)}
	res.Checks = append(res.Checks, a.verifyBoot(ctx, img, b, progress)...)
	res.Passed = true
	for _, c := range res.Checks {
		if c.Status == api.CheckFail {
			res.Passed = false
		}
	}
	return res, nil
}

func (a *Assembly) verifyBoot(ctx context.Context, img api.Image, b *bundle.Bundle, progress func(api.Progress)) []api.CheckResult {
	fail := func(name, detail, fix string) []api.CheckResult {
		return []api.CheckResult{{Name: name, Scope: "boot", Status: api.CheckFail, Detail: detail, Fix: fix}}
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := "verify-" + hex.EncodeToString(suffix)
	progress(api.Progress{Step: "boot", Message: "booting " + img.Name + " in throwaway VM " + name})
	mem := 1024
	vm, err := a.D.VMs.Create(ctx, api.VMCreateParams{Name: name, Image: &img.Name, MemoryMiB: &mem}, progress)
	if err != nil {
		// A boot failure keeps the record for its console log; we remove it.
		_ = a.D.VMs.Delete(context.Background(), name, true)
		return fail("boot", err.Error(), "see the console output above; `banger doctor --scope vm-start`")
	}
	defer func() {
		progress(api.Progress{Step: "cleanup", Message: "deleting " + name})
		_ = a.D.VMs.Delete(context.Background(), vm.Name, true)
	}()
	checks := []api.CheckResult{}
	h, err := a.D.VMs.Health(ctx, name)
	if err != nil || !h.Healthy {
		return append(checks, fail("agent-health", fmt.Sprintf("%v %s", err, h.Error), "check the agent service in the image")...)
	}
	checks = append(checks, api.CheckResult{Name: "agent-health", Scope: "boot", Status: api.CheckOK,
		Detail: fmt.Sprintf("agent %s on %s answered in %.1f ms", h.Agent.Version, h.Agent.Hostname, h.RTTMillis)})
	info, err := a.D.VMs.SSHInfo(ctx, name)
	if err != nil {
		return append(checks, fail("ssh", err.Error(), "")...)
	}
	baseline, _ := image.Baseline()
	var cmds []string
	for _, e := range baseline {
		if e.Command != "" {
			cmds = append(cmds, e.Command)
		}
	}
	// One ssh round trip: print each missing command's name.
	script := "for c in " + strings.Join(cmds, " ") + "; do command -v \"$c\" >/dev/null || echo \"missing:$c\"; done; test -d /root && echo home-ok"
	if img.Distro == "void" {
		// runit supervises the agent and sshd on Void: both must be up.
		script += "; for s in sshd banger-agent; do sv status $s | grep -q '^run:' || echo \"service-down:$s\"; done"
	}
	out, err := a.ssh(ctx, info, script)
	if err != nil {
		return append(checks, fail("ssh", err.Error(), "check sshd and the trusted key in the image")...)
	}
	checks = append(checks, api.CheckResult{Name: "ssh", Scope: "boot", Status: api.CheckOK, Detail: "root login with the bundle key works"})
	var missing, down []string
	for _, line := range strings.Split(out, "\n") {
		if m, ok := strings.CutPrefix(line, "missing:"); ok {
			missing = append(missing, m)
		}
		if d, ok := strings.CutPrefix(line, "service-down:"); ok {
			down = append(down, d)
		}
	}
	if img.Distro == "void" {
		if len(down) > 0 {
			checks = append(checks, api.CheckResult{Name: "runit-services", Scope: "boot", Status: api.CheckFail,
				Detail: "runit services not running: " + strings.Join(down, ", "), Fix: "check /etc/sv and /etc/runit/runsvdir/default in the image"})
		} else {
			checks = append(checks, api.CheckResult{Name: "runit-services", Scope: "boot", Status: api.CheckOK, Detail: "sshd and banger-agent run under runit"})
		}
	}
	if len(missing) > 0 {
		checks = append(checks, api.CheckResult{Name: "baseline-commands", Scope: "boot", Status: api.CheckFail,
			Detail: "missing in the running guest: " + strings.Join(missing, ", "), Fix: "rebuild the image: banger image build --name " + img.Name + " --force"})
	} else {
		checks = append(checks, api.CheckResult{Name: "baseline-commands", Scope: "boot", Status: api.CheckOK,
			Detail: fmt.Sprintf("all %d baseline commands present", len(cmds))})
	}
	return checks
}

// ssh runs one command in a VM with the same options as `banger vm ssh`.
func (a *Assembly) ssh(ctx context.Context, info api.VMSSHInfo, command string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	argv := []string{"ssh", "-i", info.KeyPath,
		"-o", "UserKnownHostsFile=" + info.KnownHostsPath, "-o", "StrictHostKeyChecking=accept-new",
		"-o", "HostKeyAlias=" + info.HostKeyAlias, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
		"-p", fmt.Sprint(info.Port), info.User + "@" + info.Host, command}
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ { // sshd may start a moment after the agent
		out, err := sysexec.Run(ctx, argv...)
		if err == nil {
			return string(out), nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return "", lastErr
		case <-time.After(2 * time.Second):
		}
	}
	return "", lastErr
}

func (a *Assembly) hostNAT(ctx context.Context, p api.HostNATParams, _ func(api.Progress)) (struct{}, error) {
	if err := doctor.Preflight(ctx, a.doctorEnv(), doctor.ScopeNAT); err != nil {
		return struct{}{}, err
	}
	if p.Enable {
		return struct{}{}, a.Helper.NATEnsure(ctx, a.Subnet, a.D.Config.Bridge)
	}
	return struct{}{}, a.Helper.NATRemove(ctx, a.D.Config.Bridge)
}

func (a *Assembly) hostTeardown(ctx context.Context, p api.HostTeardownParams, _ func(api.Progress)) (api.HostTeardownResult, error) {
	vms, err := a.D.Store.ListVMs(ctx)
	if err != nil {
		return api.HostTeardownResult{}, err
	}
	var running []string
	for _, v := range vms {
		if v.State != api.VMStopped {
			running = append(running, v.Name)
		}
	}
	if len(running) > 0 {
		if !p.Force {
			return api.HostTeardownResult{}, api.NewError(api.CodeConflict,
				"VMs are running: "+strings.Join(running, ", "),
				"stop them first (banger vm stop NAME), or pass --force to stop them")
		}
		if err := a.D.VMs.StopAll(ctx); err != nil {
			return api.HostTeardownResult{}, err
		}
	}
	a.stopDNS()
	taps, _ := hostnet.StrayTaps(a.D.Config.Bridge, nil)
	removed, err := hostnet.Teardown(ctx, a.Helper, a.D.Config.Bridge, taps)
	a.Runtime.ResetNetwork()
	return api.HostTeardownResult{Removed: removed}, err
}
