package daemon

import (
	"context"
	"strings"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/doctor"
	"github.com/banger-dev/banger/internal/hostnet"
)

func (d *Daemon) hostNAT(ctx context.Context, p api.HostNATParams, _ func(api.Progress)) (struct{}, error) {
	if err := doctor.Preflight(ctx, d.doctorEnv(), doctor.ScopeNAT); err != nil {
		return struct{}{}, err
	}
	if p.Enable {
		// NAT belongs to the bridge: make sure it exists (and is ours) first.
		if err := d.Helper.BridgeEnsure(ctx, d.Config.Bridge, d.Config.Subnet); err != nil {
			return struct{}{}, err
		}
		return struct{}{}, d.Helper.NATEnsure(ctx, d.Config.Subnet, d.Config.Bridge)
	}
	return struct{}{}, d.Helper.NATRemove(ctx, d.Config.Bridge)
}

func (d *Daemon) hostTeardown(ctx context.Context, p api.HostTeardownParams, _ func(api.Progress)) (api.HostTeardownResult, error) {
	vms, err := d.Store.ListVMs(ctx)
	if err != nil {
		return api.HostTeardownResult{}, err
	}
	var running []string
	for _, v := range vms {
		if v.State != api.VMStopped && v.State != api.VMSuspended {
			running = append(running, v.Name)
		}
	}
	if len(running) > 0 {
		if !p.Force {
			return api.HostTeardownResult{}, api.NewError(api.CodeConflict,
				"VMs are running: "+strings.Join(running, ", "),
				"stop them first (banger vm stop NAME), or pass --force to stop them")
		}
		if err := d.VMs.StopAll(ctx); err != nil {
			return api.HostTeardownResult{}, err
		}
	}
	d.stopDNS()
	taps, _ := hostnet.StrayTaps(d.Config.Bridge, nil)
	removed, err := hostnet.Teardown(ctx, d.Helper, d.Config.Bridge, taps)
	d.Runtime.ResetNetwork()
	return api.HostTeardownResult{Removed: removed}, err
}
