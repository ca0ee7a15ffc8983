package daemon

import (
	"context"
	"net/netip"

	"github.com/banger-dev/banger/internal/mapdns"
)

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
