package daemon

import (
	"context"
	"net/netip"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/mapdns"
	"github.com/banger-dev/banger/internal/sshconfig"
)

// vmsChanged is the VM service's OnChange hook: files outside banger that
// follow the VMs' names and addresses.
func (d *Daemon) vmsChanged(ctx context.Context) {
	d.syncMapDNS(ctx)
	d.syncForwards(ctx, true)
	if _, err := d.writeSSHConfig(ctx, ""); err != nil {
		d.Log.Printf("ssh config: %v", err)
	}
}

// sshConfig serves vm.ssh_config: the Host blocks of every VM (written to
// the file --install includes) or of the named one.
func (d *Daemon) sshConfig(ctx context.Context, p api.VMRef, _ func(api.Progress)) (api.VMSSHConfigResult, error) {
	text, err := d.writeSSHConfig(ctx, p.Name)
	return api.VMSSHConfigResult{Text: text, Path: d.Layout.SSHConfig()}, err
}

// writeSSHConfig renders the Host blocks; for all VMs (name "") it also
// rewrites the included file.
func (d *Daemon) writeSSHConfig(ctx context.Context, name string) (string, error) {
	hosts, err := d.VMs.SSHHosts(ctx, name)
	if err != nil {
		return "", err
	}
	text := sshconfig.Render(hosts, d.Config.DNSDomain)
	if name == "" {
		if err := sshconfig.WriteFile(d.Layout.SSHConfig(), text); err != nil {
			return "", err
		}
	}
	return text, nil
}

// syncMapDNS rewrites the external mapdns data file, when configured, after
// any change of VM names or addresses (the VM service's OnChange hook).
// Failures are logged: a stale name is no reason to fail a VM operation.
func (d *Daemon) syncMapDNS(ctx context.Context) {
	cfg := d.Config
	if cfg.MapDNSDataFile == "" {
		return
	}
	vms, err := d.Store.ListVMs(ctx)
	if err != nil {
		d.Log.Printf("mapdns: %v", err)
		return
	}
	entries := map[string]netip.Addr{}
	for _, v := range vms {
		if ip, err := netip.ParseAddr(v.IP); err == nil {
			entries[v.Name] = ip
		}
	}
	if err := mapdns.Write(cfg.MapDNSDataFile, cfg.DNSDomain, entries); err != nil {
		d.Log.Printf("mapdns: %v", err)
		return
	}
	if cfg.MapDNSBin != "" {
		if err := mapdns.Reload(ctx, cfg.MapDNSBin, cfg.MapDNSDataFile); err != nil {
			d.Log.Printf("mapdns: %v", err)
		}
	}
}
