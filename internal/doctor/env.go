package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/sysexec"
)

// Env is everything the checks look at. Probes (LookPath ... FreeBytes) fall
// back to the real host when nil; tests replace them, or set Root, to
// fabricate a host. Callbacks computed by other packages (BundleCheck,
// ChooseVMM, DaemonInfo, ...) make their check warn "not checked: ..." when
// nil. The daemon fills the config fields from config.toml.
type Env struct {
	// Root is prepended to the host's system paths (/dev, /proc, /sys, /run)
	// so tests can fabricate them in a temp dir. "" = the real host. Paths
	// that come from configuration are used as given.
	Root string

	LookPath func(name string) (string, error)
	Geteuid  func() int
	Getenv   func(key string) string
	// OpenKVM opens /dev/kvm read-write and checks the KVM API; it runs only
	// when Root/dev/kvm exists.
	OpenKVM func() error
	// RunVersion runs a version command and returns stdout and stderr
	// together (mkfs.ext4 -V prints to stderr).
	RunVersion func(ctx context.Context, argv []string) (string, error)
	// SudoAllowed reports whether `sudo -n` may run argv (sudo -n -l argv).
	SudoAllowed func(ctx context.Context, argv []string) error
	// FreeBytes reports the bytes available to unprivileged users on the
	// filesystem holding path.
	FreeBytes func(path string) (uint64, error)

	// Configuration (config.toml and the layout).
	ConfigFile     string // shown in fixes; "" = "config.toml"
	VMM            string // "auto" | "firecracker" | "qemu"
	FirecrackerBin string // "" = look in PATH
	QEMUBin        string // "" = qemu-system-x86_64 in PATH
	BundleDir      string
	StateDir       string
	DataDir        string
	CacheDir       string
	RuntimeDir     string
	Subnet         netip.Prefix // e.g. 172.30.0.0/24; the gateway (.1) is the bridge address
	Bridge         string
	DNSDomain      string
	DNSPort        int // the port bangerd's DNS really listens on
	NAT            bool
	MapdnsBin      string
	MapdnsDataFile string
	Deprecations   []string // config alias notes, e.g. "config key ping_helper_port is deprecated: rename it to agent_port"
	XbpsStatic     string
	Distro         string // image-build: "debian" | "void"; "" = any (doctor)
	VoidTarball    bool   // image-build: a Void build from --from-tarball (xbps only installs what the tarball lacks)

	// HelperPath is the installed privileged helper bangerd runs through
	// `sudo -n`; HelperCheck says why it could not be granted safely (not
	// installed, or a path a non-root user could change).
	HelperPath  string
	HelperCheck func() error

	BundleCheck  func() []error
	ChooseVMM    func() (driver, reason string, err error)
	DaemonInfo   func(ctx context.Context) (api.DaemonInfo, error)
	CLIVersion   string
	CLIBuildID   string
	DBQuickCheck func(ctx context.Context) error // PRAGMA quick_check
	// ResolveName asks bangerd's DNS server (on the bridge address) for
	// name. NXDOMAIN must come back as a *net.DNSError with IsNotFound set,
	// so "the server answered no" differs from "no server".
	ResolveName func(ctx context.Context, name string) ([]string, error)
	// ResolveAt asks the DNS server at server ("ip:port") for name, with
	// the same error contract; nil = Go's resolver sent there.
	ResolveAt func(ctx context.Context, server, name string) ([]string, error)
	// SampleVM returns a VM with an address, to ask a name server for
	// (ok false when there is none).
	SampleVM func(ctx context.Context) (name string, ip netip.Addr, ok bool)
	// Mapdns reports the mapdns bangerd runs, or found running; nil when
	// unknown (no daemon).
	Mapdns func() MapdnsState

	RequestedMemoryMiB int    // vm-start: the VM's memory (0 = not checked)
	VMName             string // the VM an operation is about (for fixes)
	VMStopped          *bool  // disk-resize: nil = unknown
	SSHKeyPath         string
	KnownHostsPath     string
}

// MapdnsState is what bangerd knows of mapdns.
type MapdnsState struct {
	Supervised bool   // bangerd runs mapdns (mapdns_bin is set)
	PID        int    // the mapdns bangerd runs now; 0 when none
	Foreign    []int  // processes running mapdns_bin that bangerd did not start
	LastExit   string // how bangerd's last mapdns ended
	LogFile    string // where bangerd's mapdns writes
}

// RealEnv returns an Env probing the real host, with defaults for the
// callbacks doctor can compute itself (ChooseVMM follows the vmm package's
// rule; ResolveName queries the subnet's gateway at DNSPort). The caller
// fills the configuration fields, and should replace ChooseVMM with
// vmm.Choose so doctor reports exactly what the daemon would do.
func RealEnv() *Env {
	e := &Env{
		LookPath:    sysexec.LookPath,
		Geteuid:     os.Geteuid,
		Getenv:      os.Getenv,
		OpenKVM:     func() error { return openKVM("/dev/kvm") },
		RunVersion:  runVersion,
		SudoAllowed: sudoAllowed,
		FreeBytes:   freeBytes,
		VMM:         "auto",
		Bridge:      "banger0",
		Subnet:      netip.MustParsePrefix(hostnet.DefaultSubnet),
		DNSDomain:   "vm",
		DNSPort:     53,
	}
	e.ChooseVMM = e.chooseVMM
	e.ResolveName = e.resolveAtGateway
	return e
}

// sys maps a host system path under Root.
func (e *Env) sys(p string) string {
	if e.Root == "" {
		return p
	}
	return filepath.Join(e.Root, p)
}

func (e *Env) lookPath(name string) (string, error) {
	if e.LookPath != nil {
		return e.LookPath(name)
	}
	return sysexec.LookPath(name)
}

func (e *Env) euid() int {
	if e.Geteuid != nil {
		return e.Geteuid()
	}
	return os.Geteuid()
}

func (e *Env) getenv(k string) string {
	if e.Getenv != nil {
		return e.Getenv(k)
	}
	return os.Getenv(k)
}

func (e *Env) runVersion(ctx context.Context, argv ...string) (string, error) {
	if e.RunVersion != nil {
		return e.RunVersion(ctx, argv)
	}
	return runVersion(ctx, argv)
}

func (e *Env) sudoAllowed(ctx context.Context, argv []string) error {
	if e.SudoAllowed != nil {
		return e.SudoAllowed(ctx, argv)
	}
	return sudoAllowed(ctx, argv)
}

func (e *Env) freeBytes(path string) (uint64, error) {
	if e.FreeBytes != nil {
		return e.FreeBytes(path)
	}
	return freeBytes(path)
}

func (e *Env) openKVM() error {
	if e.OpenKVM != nil {
		return e.OpenKVM()
	}
	return openKVM(e.sys("/dev/kvm"))
}

func (e *Env) configFile() string {
	if e.ConfigFile != "" {
		return e.ConfigFile
	}
	return "config.toml"
}

func (e *Env) vmmPref() string {
	if e.VMM == "" {
		return "auto"
	}
	return e.VMM
}

func (e *Env) domain() string {
	if e.DNSDomain == "" {
		return "vm"
	}
	return e.DNSDomain
}

func (e *Env) bridge() string {
	if e.Bridge == "" {
		return "banger0"
	}
	return e.Bridge
}

func (e *Env) vmName() string {
	if e.VMName == "" {
		return "NAME"
	}
	return e.VMName
}

// subnet is the VM subnet (config checked it); the default when unset.
func (e *Env) subnet() netip.Prefix {
	if !e.Subnet.IsValid() {
		return netip.MustParsePrefix(hostnet.DefaultSubnet)
	}
	return e.Subnet
}

// gateway is the bridge address (hostnet's rule).
func (e *Env) gateway() netip.Addr { return hostnet.Gateway(e.subnet()) }

// runVersion runs argv and returns its combined output.
func runVersion(ctx context.Context, argv []string) (string, error) {
	res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: argv})
	out := strings.TrimSpace(string(res.Stdout) + "\n" + string(res.Stderr))
	return out, err
}

// sudoAllowed asks sudo, without prompting, whether argv may run as root.
func sudoAllowed(ctx context.Context, argv []string) error {
	if _, err := sysexec.LookPath("sudo"); err != nil {
		return errors.New("sudo is not installed")
	}
	_, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: append([]string{"sudo", "-n", "-l"}, argv...)})
	return err
}

// freeBytes reports the space available on the filesystem holding path, or
// on its nearest existing ancestor (the directory may not exist yet).
func freeBytes(path string) (uint64, error) {
	p := path
	for {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			return st.Bavail * uint64(st.Bsize), nil
		}
		if !errors.Is(err, unix.ENOENT) || p == "/" || p == "." {
			return 0, fmt.Errorf("statfs %s: %w", p, err)
		}
		p = filepath.Dir(p)
	}
}

// KVM ioctls from <linux/kvm.h>: _IO(0xAE, nr).
const (
	kvmGetAPIVersion = 0xAE00
	kvmCreateVM      = 0xAE01
	kvmAPIVersion    = 12
)

// openKVM opens dev read-write, checks the API version and creates (and
// drops) a VM: the same test the VMM selection makes.
func openKVM(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dev, Err: err}
	}
	defer unix.Close(fd)
	v, err := unix.IoctlRetInt(fd, kvmGetAPIVersion)
	if err != nil {
		return fmt.Errorf("%s: KVM_GET_API_VERSION: %w", dev, err)
	}
	if v != kvmAPIVersion {
		return fmt.Errorf("%s: KVM API version %d, want %d", dev, v, kvmAPIVersion)
	}
	vm, err := unix.IoctlRetInt(fd, kvmCreateVM)
	if err != nil {
		return fmt.Errorf("%s: KVM_CREATE_VM: %w (is another hypervisor holding VT-x/AMD-V?)", dev, err)
	}
	unix.Close(vm)
	return nil
}

// chooseVMM mirrors vmm.Choose for hosts where the daemon has not supplied
// the real chooser: auto = Firecracker when KVM is usable and firecracker
// is found, else QEMU.
func (e *Env) chooseVMM() (string, string, error) {
	kvmErr := e.kvmError()
	fc, fcErr := e.findFirecracker()
	switch e.vmmPref() {
	case "auto":
		if kvmErr != nil {
			return "qemu", "qemu: " + kvmErr.Error() + "; software emulation (TCG): slow", nil
		}
		if fcErr != nil {
			return "qemu", "qemu: " + fcErr.Error() + " (KVM usable: QEMU runs accelerated)", nil
		}
		return "firecracker", "firecracker: KVM usable and firecracker at " + fc, nil
	case "firecracker":
		if kvmErr != nil {
			return "", "", fmt.Errorf("vmm = firecracker but Firecracker needs KVM: %v", kvmErr)
		}
		if fcErr != nil {
			return "", "", fmt.Errorf("vmm = firecracker but %v", fcErr)
		}
		return "firecracker", "firecracker: requested; firecracker at " + fc, nil
	case "qemu":
		if kvmErr != nil {
			return "qemu", "qemu: requested; " + kvmErr.Error() + "; software emulation (TCG): slow", nil
		}
		return "qemu", "qemu: requested; KVM usable", nil
	}
	return "", "", fmt.Errorf("unknown vmm %q", e.VMM)
}

// kvmError is nil when KVM is usable, else says why not.
func (e *Env) kvmError() error {
	if _, err := os.Stat(e.sys("/dev/kvm")); err != nil {
		return errors.New("no /dev/kvm")
	}
	return e.openKVM()
}

// resolveAtGateway queries the DNS server on the bridge address.
func (e *Env) resolveAtGateway(ctx context.Context, name string) ([]string, error) {
	gw := e.gateway()
	port := e.DNSPort
	if port == 0 {
		port = 53
	}
	server := net.JoinHostPort(gw.String(), strconv.Itoa(port))
	return resolverAt(server).LookupHost(ctx, name)
}

// resolverAt is a Go resolver that sends every query to server.
func resolverAt(server string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}
}

// resolveAt queries server ("ip:port") for name.
func (e *Env) resolveAt(ctx context.Context, server, name string) ([]string, error) {
	if e.ResolveAt != nil {
		return e.ResolveAt(ctx, server, name)
	}
	return resolverAt(server).LookupHost(ctx, name)
}
