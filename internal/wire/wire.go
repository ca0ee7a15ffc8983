// Package wire assembles the real bangerd on top of the daemon skeleton: the
// hypervisor runtime (drivers, disks, networking through the privileged
// helper, the agent channel), the embedded DNS server, command-scoped
// preflight, and the bundle, image, doctor and host methods.
package wire

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/bundle"
	"github.com/banger-dev/banger/internal/daemon"
	"github.com/banger-dev/banger/internal/dnsserver"
	"github.com/banger-dev/banger/internal/doctor"
	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/image"
	"github.com/banger-dev/banger/internal/mapdns"
	"github.com/banger-dev/banger/internal/privhelper"
	"github.com/banger-dev/banger/internal/server"
	"github.com/banger-dev/banger/internal/version"
	"github.com/banger-dev/banger/internal/vm"
	"github.com/banger-dev/banger/internal/vmm"
	"github.com/banger-dev/banger/internal/vmm/firecracker"
	"github.com/banger-dev/banger/internal/vmm/qemu"
	"github.com/banger-dev/banger/internal/vmruntime"
)

// HelperSubcommand is the hidden bangerd subcommand that runs the
// privileged helper: `bangerd helper VERB ARGS...`.
const HelperSubcommand = "helper"

// Assembly holds what Setup built, for the methods that need it.
type Assembly struct {
	D        *daemon.Daemon
	Runtime  *vmruntime.Runtime
	Helper   privhelper.Helper
	Bangerd  string // absolute path of this bangerd (for the helper and sudoers line)
	Subnet   netip.Prefix
	Images   *image.Builder
	dnsMu    sync.Mutex
	dns      *dnsserver.Server
	dnsAddr  string
	dnsStop  context.CancelFunc
	buildMu  sync.Mutex // one bundle/image build at a time
	chooseFn func() (string, string, error)
}

// Setup is daemon.Options.Setup for the real bangerd.
func Setup(d *daemon.Daemon) error {
	cfg := d.Config
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find bangerd's own path: %w", err)
	}
	subnet, err := hostnet.ParseSubnet(cfg.Subnet)
	if err != nil {
		return fmt.Errorf("config subnet: %w", err)
	}
	a := &Assembly{D: d, Bangerd: self, Subnet: subnet,
		Helper: privhelper.New([]string{self, HelperSubcommand}),
		Images: &image.Builder{Layout: d.Layout}}
	a.chooseFn = a.chooser()
	a.D.VMM, a.D.VMMReason, _ = a.chooseFn()
	if a.D.VMM == "" {
		_, a.D.VMMReason, err = a.chooseFn()
		a.D.VMMReason = "no usable hypervisor: " + err.Error()
	}

	fc := firecracker.New(firecracker.Options{Binary: cfg.FirecrackerBin, Reclaim: a.reclaim})
	qm := qemu.New(qemu.Options{Binary: cfg.QEMUBin})
	a.Runtime = &vmruntime.Runtime{
		Config: vmruntime.Config{
			Bridge: cfg.Bridge, Subnet: subnet, NAT: cfg.NAT, AgentPort: uint32(cfg.AgentPort),
			BootTimeout: cfg.AgentTimeout, StopGrace: 30 * time.Second,
		},
		Layout:  d.Layout,
		Bundle:  a.loadBundle,
		Image:   d.Store.GetImage,
		Helper:  a.Helper,
		Drivers: map[string]vmm.Driver{vmm.DriverFirecracker: fc, vmm.DriverQEMU: qm},
		Choose:  a.chooseFn,
		UID:     os.Getuid(),
		// Tests that drive the fake Firecracker (no guest network, no sshd)
		// set this; it is not for users.
		SkipSSHWait: os.Getenv("BANGER_TEST_SKIP_SSH_WAIT") == "1",
		NetworkReady: func(ctx context.Context, gw netip.Addr) {
			a.startDNS(gw)
		},
	}
	d.VMs.Runtime = &checkedRuntime{Runtime: a.Runtime, a: a}
	d.VMs.SSHKeyPath = func() string {
		if b, err := a.loadBundle(); err == nil {
			return b.SSHKeyPath
		}
		return filepath.Join(a.bundleDir(), "id_ed25519")
	}
	a.registerMethods()
	return nil
}

// chooser returns the VMM choice for new VMs. BANGER_TEST_ASSUME_KVM lets
// the end-to-end tests drive the Firecracker path with the wire-level fake on
// hosts without KVM; it is not for users.
func (a *Assembly) chooser() func() (string, string, error) {
	cfg := a.D.Config
	c := vmm.Chooser{}
	if os.Getenv("BANGER_TEST_ASSUME_KVM") == "1" {
		c.KVM = func() (bool, string) { return true, "assumed by BANGER_TEST_ASSUME_KVM (tests only)" }
	}
	return func() (string, string, error) { return c.Choose(cfg.VMM, cfg.FirecrackerBin) }
}

func (a *Assembly) bundleDir() string {
	if a.D.Config.BundleDir != "" {
		return a.D.Config.BundleDir
	}
	return a.D.Layout.BundleDir()
}

func (a *Assembly) loadBundle() (*bundle.Bundle, error) {
	b, err := bundle.Load(a.bundleDir())
	if err != nil {
		return nil, api.NewError(api.CodeFailedPrecondition, err.Error(), "build it with `banger bundle build`")
	}
	return b, nil
}

// reclaim hands sockets a root-run Firecracker made back to the user; when
// bangerd itself runs as the user there is nothing to do.
func (a *Assembly) reclaim(ctx context.Context, path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid := os.Getuid()
	if s := os.Getenv("SUDO_UID"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			uid = n
		}
	}
	if uid == 0 {
		return nil
	}
	return a.Helper.SocketReclaim(ctx, path, uid)
}

// startDNS serves <name>.<domain> on the bridge address once the bridge
// exists: port dns_port, else dns_fallback_port when that is taken.
func (a *Assembly) startDNS(gw netip.Addr) {
	a.dnsMu.Lock()
	defer a.dnsMu.Unlock()
	if a.dns != nil {
		return
	}
	cfg := a.D.Config
	srv := dnsserver.New(dnsserver.Config{Domain: cfg.DNSDomain, Lookup: a.lookupVM})
	var lastErr error
	for _, port := range []int{cfg.DNSPort, cfg.DNSFallbackPort} {
		if port <= 0 {
			continue
		}
		addr := netip.AddrPortFrom(gw, uint16(port)).String()
		if lastErr = srv.Listen(addr); lastErr == nil {
			ctx, cancel := context.WithCancel(context.Background())
			a.dns, a.dnsAddr, a.dnsStop = srv, addr, cancel
			go func() { _ = srv.Serve(ctx) }()
			a.D.Log.Printf("dns: serving *.%s on %s", cfg.DNSDomain, addr)
			if port == 53 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := hostnet.RegisterResolved(ctx, a.Helper, cfg.Bridge, gw, cfg.DNSDomain); err != nil {
					a.D.Log.Printf("dns: systemd-resolved registration: %v", err)
				}
				cancel()
			}
			return
		}
	}
	a.D.Log.Printf("dns: cannot serve on %s: %v", gw, lastErr)
}

// stopDNS stops the DNS server (host teardown removes its address).
func (a *Assembly) stopDNS() {
	a.dnsMu.Lock()
	defer a.dnsMu.Unlock()
	if a.dnsStop != nil {
		a.dnsStop()
	}
	a.dns, a.dnsAddr, a.dnsStop = nil, "", nil
}

// lookupVM answers DNS queries from the VM records.
func (a *Assembly) lookupVM(name string) (netip.Addr, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := a.D.Store.GetVM(ctx, name)
	if err != nil || v.Name != name {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(v.IP)
	return ip, err == nil
}

// syncMapDNS rewrites the external mapdns data file, when configured, after
// any change of VM names or addresses.
func (a *Assembly) syncMapDNS(ctx context.Context) {
	cfg := a.D.Config
	if cfg.MapDNSDataFile == "" {
		return
	}
	vms, err := a.D.Store.ListVMs(ctx)
	if err != nil {
		a.D.Log.Printf("mapdns: %v", err)
		return
	}
	entries := map[string]netip.Addr{}
	for _, v := range vms {
		if ip, err := netip.ParseAddr(v.IP); err == nil {
			entries[v.Name] = ip
		}
	}
	if err := mapdns.Write(cfg.MapDNSDataFile, cfg.DNSDomain, entries); err != nil {
		a.D.Log.Printf("mapdns: %v", err)
		return
	}
	if cfg.MapDNSBin != "" {
		if err := mapdns.Reload(ctx, cfg.MapDNSBin, cfg.MapDNSDataFile); err != nil {
			a.D.Log.Printf("mapdns: %v", err)
		}
	}
}

// kvmProbe is the doctor's KVM check with the chooser's notion of usable,
// so doctor and the VMM choice agree: a PVM /dev/kvm opens and creates VMs
// but boots no ordinary guest kernel, so it is not "hardware acceleration".
func kvmProbe() error {
	if os.Getenv("BANGER_TEST_ASSUME_KVM") == "1" {
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

// doctorEnv fills the doctor's environment from this daemon.
func (a *Assembly) doctorEnv() *doctor.Env {
	cfg, l := a.D.Config, a.D.Layout
	env := doctor.RealEnv()
	env.ConfigFile = l.ConfigFile()
	env.VMM, env.FirecrackerBin, env.QEMUBin = cfg.VMM, cfg.FirecrackerBin, cfg.QEMUBin
	env.BundleDir, env.StateDir, env.DataDir, env.CacheDir, env.RuntimeDir = a.bundleDir(), l.StateDir, l.DataDir, l.CacheDir, l.RuntimeDir
	env.Subnet, env.Bridge, env.DNSDomain, env.DNSPort, env.NAT = cfg.Subnet, cfg.Bridge, cfg.DNSDomain, cfg.DNSPort, cfg.NAT
	env.MapdnsBin, env.MapdnsDataFile = cfg.MapDNSBin, cfg.MapDNSDataFile
	env.Deprecations, env.XbpsStatic = cfg.Deprecations, cfg.XBPSStatic
	env.HelperArgv = []string{a.Bangerd, HelperSubcommand}
	env.SudoersLine = privhelper.SudoersLine(CurrentUser(), a.Bangerd)
	env.BundleCheck = func() []error {
		b, err := bundle.Load(a.bundleDir())
		if err != nil {
			return []error{err}
		}
		return b.Check()
	}
	env.ChooseVMM = a.chooseFn
	env.OpenKVM = kvmProbe
	env.DaemonInfo = func(context.Context) (api.DaemonInfo, error) { return a.D.Info(), nil }
	env.CLIVersion, env.CLIBuildID = version.Version, version.ID()
	env.DBQuickCheck = a.D.Store.QuickCheck
	env.SSHKeyPath = filepath.Join(a.bundleDir(), "id_ed25519")
	env.KnownHostsPath = l.KnownHosts()
	a.dnsMu.Lock()
	if a.dnsAddr != "" {
		if ap, err := netip.ParseAddrPort(a.dnsAddr); err == nil {
			env.DNSPort = int(ap.Port())
		}
	}
	a.dnsMu.Unlock()
	return env
}

// CurrentUser is the user bangerd acts for (the sudo caller when run
// through sudo).
func CurrentUser() string {
	if s := os.Getenv("SUDO_USER"); s != "" {
		return s
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

// checkedRuntime runs the vm-start preflight before anything is changed,
// and keeps the mapdns file in step with VM changes.
type checkedRuntime struct {
	*vmruntime.Runtime
	a *Assembly
}

func (c *checkedRuntime) preflight(ctx context.Context, v api.VM) error {
	env := c.a.doctorEnv()
	env.RequestedMemoryMiB, env.VMName = v.MemoryMiB, v.Name
	return doctor.Preflight(ctx, env, doctor.ScopeVMStart)
}

// Provision needs no hypervisor (`vm create --no-start` makes the disks
// only), so the vm-start checks wait for Start.
// Preflight runs the vm-start checks for a VM that vm create is about to
// record and boot, so a host that cannot boot it is refused before anything
// is made.
func (c *checkedRuntime) Preflight(ctx context.Context, v api.VM) error {
	return c.preflight(ctx, v)
}

func (c *checkedRuntime) Provision(ctx context.Context, v api.VM, progress func(api.Progress)) error {
	return c.Runtime.Provision(ctx, v, progress)
}

func (c *checkedRuntime) Start(ctx context.Context, v api.VM, progress func(api.Progress)) (api.VM, error) {
	if err := c.preflight(ctx, v); err != nil {
		return v, err
	}
	v, err := c.Runtime.Start(ctx, v, progress)
	c.a.syncMapDNS(ctx)
	return v, err
}

func (c *checkedRuntime) Destroy(ctx context.Context, v api.VM) error {
	err := c.Runtime.Destroy(ctx, v)
	go c.a.syncMapDNS(context.Background()) // the row goes after Destroy returns
	return err
}

func (c *checkedRuntime) ResizeDisk(ctx context.Context, v api.VM, newBytes int64) error {
	env := c.a.doctorEnv()
	stopped := v.State == api.VMStopped || v.State == api.VMError
	env.VMStopped, env.VMName = &stopped, v.Name
	if err := doctor.Preflight(ctx, env, doctor.ScopeDiskResize); err != nil {
		return err
	}
	return c.Runtime.ResizeDisk(ctx, v, newBytes)
}

var _ vm.Runtime = (*checkedRuntime)(nil)

// register adds a typed method to the daemon's server.
func register[P, R any](a *Assembly, method string, f func(ctx context.Context, p P, progress func(api.Progress)) (R, error)) {
	a.D.Server.Register(method, server.Method(f))
}
