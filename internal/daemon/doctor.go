package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/bundle"
	"github.com/banger-dev/banger/internal/doctor"
	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/version"
	"github.com/banger-dev/banger/internal/vm"
	"github.com/banger-dev/banger/internal/vmm"
)

// doctorEnv fills the doctor's environment from this daemon.
func (d *Daemon) doctorEnv() *doctor.Env {
	cfg, l := d.Config, d.Layout
	env := doctor.RealEnv()
	env.ConfigFile = l.ConfigFile()
	env.VMM, env.FirecrackerBin, env.QEMUBin = cfg.VMM, cfg.FirecrackerBin, cfg.QEMUBin
	env.BundleDir, env.StateDir, env.DataDir, env.CacheDir, env.RuntimeDir = d.bundleDir(), l.StateDir, l.DataDir, l.CacheDir, l.RuntimeDir
	env.Subnet, env.Bridge, env.DNSDomain, env.DNSPort, env.NAT = cfg.Subnet, cfg.Bridge, cfg.DNSDomain, cfg.DNSPort, cfg.NAT
	env.MapdnsBin, env.MapdnsDataFile = cfg.MapDNSBin, cfg.MapDNSDataFile
	env.SampleVM = d.sampleVM
	if d.mapdns != nil {
		env.Mapdns = d.mapdnsState
	}
	env.Deprecations, env.XbpsStatic = cfg.Deprecations, cfg.XBPSStatic
	d.fillHelperDoctor(env)
	env.BundleCheck = func() []error {
		b, err := bundle.Load(d.bundleDir())
		if err != nil {
			return []error{err}
		}
		return b.Check()
	}
	env.ChooseVMM = d.choose
	env.OpenKVM = kvmProbe
	env.DaemonInfo = func(context.Context) (api.DaemonInfo, error) { return d.Info(), nil }
	env.CLIVersion, env.CLIBuildID = version.Version, version.ID()
	env.DBQuickCheck = d.Store.QuickCheck
	env.SSHKeyPath = d.bundleKeyPath()
	env.KnownHostsPath = l.KnownHosts()
	if port := d.dnsPort(); port != 0 {
		// Check the port DNS is actually served on (maybe the fallback).
		env.DNSPort = port
	}
	return env
}

// kvmProbe is the doctor's KVM check with the chooser's notion of usable,
// so doctor and the VMM choice agree: a PVM /dev/kvm opens and creates VMs
// but boots no ordinary guest kernel, so it is not "hardware acceleration".
func kvmProbe() error {
	if envknob.AssumeKVM.On() {
		return nil // as the chooser does (tests only)
	}
	ok, why := vmm.KVMUsable()
	switch {
	case ok:
		return nil
	case strings.Contains(why, "permission denied"):
		return fmt.Errorf("%s: %w", why, fs.ErrPermission)
	}
	return errors.New(why)
}

// vmPreflight is the VM service's Preflight hook: the doctor's checks for
// the operation, refusing a host that cannot do it.
func (d *Daemon) vmPreflight(ctx context.Context, check vm.Check, v api.VM) error {
	env := d.doctorEnv()
	env.VMName = v.Name
	switch check {
	case vm.CheckStart:
		env.RequestedMemoryMiB = v.MemoryMiB
		return doctor.Preflight(ctx, env, doctor.ScopeVMStart)
	case vm.CheckDiskResize:
		stopped := v.State == api.VMStopped || v.State == api.VMError
		env.VMStopped = &stopped
		return doctor.Preflight(ctx, env, doctor.ScopeDiskResize)
	}
	return fmt.Errorf("unknown preflight check %q", check)
}

// imageBuildPreflight is the image service's Preflight hook.
func (d *Daemon) imageBuildPreflight(ctx context.Context, p api.ImageBuildParams) error {
	env := d.doctorEnv()
	env.Distro, env.VoidTarball = p.Distro, p.FromTarball != ""
	return doctor.Preflight(ctx, env, doctor.ScopeImageBuild)
}

func (d *Daemon) doctorRun(ctx context.Context, p api.DoctorParams, _ func(api.Progress)) (api.DoctorResult, error) {
	if err := doctor.ValidateScopes(p.Scopes); err != nil {
		return api.DoctorResult{}, err
	}
	return api.DoctorResult{Checks: doctor.Run(ctx, d.doctorEnv(), p.Scopes)}, nil
}
