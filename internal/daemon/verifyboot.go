package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/bundle"
	"github.com/banger-dev/banger/internal/image"
	"github.com/banger-dev/banger/internal/sshcmd"
	"github.com/banger-dev/banger/internal/sysexec"
)

// verifyBoot is the image service's Boot hook: a throwaway VM booted from
// img must answer its agent, accept the bundle key over ssh and have the
// baseline commands (and on Void, its runit services).
func (d *Daemon) verifyBoot(ctx context.Context, img api.Image, b *bundle.Bundle, progress func(api.Progress)) []api.CheckResult {
	fail := func(name, detail, fix string) []api.CheckResult {
		return []api.CheckResult{{Name: name, Scope: "boot", Status: api.CheckFail, Detail: detail, Fix: fix}}
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := "verify-" + hex.EncodeToString(suffix)
	progress(api.Progress{Step: "boot", Message: "booting " + img.Name + " in throwaway VM " + name})
	mem := 1024
	vm, err := d.VMs.Create(ctx, api.VMCreateParams{Name: name, Image: &img.Name, MemoryMiB: &mem}, progress)
	if err != nil {
		// A boot failure keeps the record for its console log; we remove it.
		_ = d.VMs.Delete(context.Background(), name, true)
		return fail("boot", err.Error(), "see the console output above; `banger doctor --scope vm-start`")
	}
	defer func() {
		progress(api.Progress{Step: "cleanup", Message: "deleting " + name})
		_ = d.VMs.Delete(context.Background(), vm.Name, true)
	}()
	checks := []api.CheckResult{}
	h, err := d.VMs.Health(ctx, name)
	if err != nil || !h.Healthy {
		return append(checks, fail("agent-health", fmt.Sprintf("%v %s", err, h.Error), "check the agent service in the image")...)
	}
	checks = append(checks, api.CheckResult{Name: "agent-health", Scope: "boot", Status: api.CheckOK,
		Detail: fmt.Sprintf("agent %s on %s answered in %.1f ms", h.Agent.Version, h.Agent.Hostname, h.RTTMillis)})
	info, err := d.VMs.SSHInfo(ctx, name)
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
	out, err := d.ssh(ctx, info, script)
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

// ssh runs one command in a VM with the same options as `banger vm ssh`,
// never prompting.
func (d *Daemon) ssh(ctx context.Context, info api.VMSSHInfo, command string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	argv := sshcmd.Argv(info, command, "BatchMode=yes", "ConnectTimeout=10")
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
