package daemon

import (
	"context"
	"net/netip"
	"os"
	"time"

	"github.com/banger-dev/banger/internal/config"
	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/vmm"
	"github.com/banger-dev/banger/internal/vmm/firecracker"
	"github.com/banger-dev/banger/internal/vmm/qemu"
	"github.com/banger-dev/banger/internal/vmruntime"
)

// newRuntime builds the hypervisor runtime: both drivers, networking
// through the privileged helper, and DNS started once the bridge exists.
func (d *Daemon) newRuntime() *vmruntime.Runtime {
	cfg := d.Config
	fc := firecracker.New(firecracker.Options{Binary: cfg.FirecrackerBin, Reclaim: d.reclaim})
	qm := qemu.New(qemu.Options{Binary: cfg.QEMUBin})
	return &vmruntime.Runtime{
		Config: vmruntime.Config{
			Bridge: cfg.Bridge, Subnet: cfg.Subnet, NAT: cfg.NAT, AgentPort: uint32(cfg.AgentPort),
			BootTimeout: cfg.AgentTimeout, StopGrace: 30 * time.Second,
		},
		Layout:      d.Layout,
		Bundle:      d.loadBundle,
		Image:       d.Store.GetImage,
		Helper:      d.Helper,
		Drivers:     map[string]vmm.Driver{vmm.DriverFirecracker: fc, vmm.DriverQEMU: qm},
		Choose:      d.choose,
		UID:         os.Getuid(),
		SkipSSHWait: envknob.SkipSSHWait.On(),
		NetworkReady: func(ctx context.Context, gw netip.Addr) {
			d.startDNS(gw)
		},
	}
}

// chooser returns the VMM choice for new VMs.
func chooser(cfg config.Config) func() (string, string, error) {
	c := vmm.Chooser{}
	if envknob.AssumeKVM.On() {
		c.KVM = func() (bool, string) { return true, "assumed by " + string(envknob.AssumeKVM) + " (tests only)" }
	}
	return func() (string, string, error) { return c.Choose(cfg.VMM, cfg.FirecrackerBin) }
}
