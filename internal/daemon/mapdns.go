package daemon

import (
	"context"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/doctor"
	"github.com/banger-dev/banger/internal/mapdns"
	"github.com/banger-dev/banger/internal/sshconfig"
	"github.com/banger-dev/banger/internal/sysexec"
)

// mapdnsConfigured: the user runs mapdns (mapdns_data_file is set), which
// serves UDP port 53 on every address, so bangerd must not take that port.
func (d *Daemon) mapdnsConfigured() bool { return d.Config.MapDNSDataFile != "" }

// newMapDNS is the supervisor of the mapdns banger runs (mapdns_bin set),
// nil when banger runs none.
func (d *Daemon) newMapDNS() *mapdns.Supervisor {
	cfg := d.Config
	if cfg.MapDNSBin == "" || cfg.MapDNSDataFile == "" {
		return nil
	}
	bin := cfg.MapDNSBin
	if !strings.Contains(bin, "/") {
		if p, err := sysexec.LookPath(bin); err == nil {
			bin = p
		}
	}
	return &mapdns.Supervisor{
		Bin: bin, DataFile: cfg.MapDNSDataFile,
		LogFile: filepath.Join(d.Layout.StateDir, "mapdns.log"),
		Logf:    d.Log.Printf,
	}
}

// startMapDNS writes the data file and starts the mapdns banger runs, if
// any (daemon start, after reconciliation).
func (d *Daemon) startMapDNS(ctx context.Context) {
	d.syncMapDNS(ctx)
	if d.mapdns == nil {
		return
	}
	if err := d.mapdns.Start(); err != nil {
		d.Log.Printf("mapdns: %v", err)
	}
}

// stopMapDNS stops the mapdns banger started (daemon stop).
func (d *Daemon) stopMapDNS() {
	if d.mapdns != nil {
		d.mapdns.Stop()
	}
}

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
// any change of VM names or addresses (the VM service's OnChange hook), and
// restarts the mapdns banger runs when the file changed: mapdns reads it
// only at start. Failures are logged: a stale name is no reason to fail a
// VM operation.
func (d *Daemon) syncMapDNS(ctx context.Context) {
	cfg := d.Config
	if cfg.MapDNSDataFile == "" {
		return
	}
	// One rewrite at a time: VM operations end concurrently, and each
	// rewrite reads the file and banger's list of names before writing.
	d.mapdnsMu.Lock()
	defer d.mapdnsMu.Unlock()
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
	changed, err := mapdns.Update(cfg.MapDNSDataFile, cfg.DNSDomain, entries)
	if err != nil {
		d.Log.Printf("mapdns: %v", err)
		return
	}
	if changed && d.mapdns != nil {
		d.mapdns.Restart()
	}
}

// mapdnsState is what doctor shows of the mapdns bangerd runs.
func (d *Daemon) mapdnsState() doctor.MapdnsState {
	st := d.mapdns.Status()
	return doctor.MapdnsState{Supervised: true, PID: st.PID, Foreign: st.Foreign, LastExit: st.LastExit, LogFile: d.mapdns.LogFile}
}

// sampleVM is a VM (the first by name) for doctor to ask name servers for.
func (d *Daemon) sampleVM(ctx context.Context) (string, netip.Addr, bool) {
	vms, err := d.Store.ListVMs(ctx)
	if err != nil {
		return "", netip.Addr{}, false
	}
	sort.Slice(vms, func(i, j int) bool { return vms[i].Name < vms[j].Name })
	for _, v := range vms {
		if ip, err := netip.ParseAddr(v.IP); err == nil {
			return v.Name, ip, true
		}
	}
	return "", netip.Addr{}, false
}
