// Package daemon is bangerd's one composition root: the single-instance
// lock, the log, config, the store, the services and their hooks, start-up
// reconciliation, the method table (methods.go) and serving. What the
// services cannot know about each other (doctor checks before a VM starts,
// DNS for the VMs, the mapdns file, verify's throwaway VM) is joined here,
// each in a file named for it.
package daemon

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/config"
	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/image"
	"github.com/banger-dev/banger/internal/mapdns"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/privhelper"
	"github.com/banger-dev/banger/internal/server"
	"github.com/banger-dev/banger/internal/store"
	"github.com/banger-dev/banger/internal/version"
	"github.com/banger-dev/banger/internal/vm"
	"github.com/banger-dev/banger/internal/vmruntime"
)

// Options configure a daemon run.
type Options struct {
	Layout paths.Layout
	// LogOutput gets the log besides bangerd.log (e.g. stderr in --foreground).
	LogOutput io.Writer
}

// Daemon is a running bangerd: what New assembled, for the methods.
type Daemon struct {
	Layout    paths.Layout
	Config    config.Config
	Store     *store.Store
	Log       *log.Logger
	StartedAt time.Time

	VMs     *vm.Service
	Images  *image.Service
	Runtime *vmruntime.Runtime
	Helper  privhelper.Helper
	Bangerd string // absolute path of this bangerd (for the helper and sudoers line)
	// VMM and VMMReason describe the driver new VMs would use.
	VMM, VMMReason string

	choose func() (string, string, error)
	dns    dnsState
	fwd    forwards
	mapdns *mapdns.Supervisor // the mapdns banger runs; nil when none
	// mapdnsMu serialises rewrites of the mapdns data file.
	mapdnsMu sync.Mutex
	buildMu  sync.Mutex // one bundle or image build at a time

	// The last vm.list and vm.summaries replies, encoded (listreply.go).
	listReply      replyCache[api.VMListResult]
	summariesReply replyCache[api.VMSummariesResult]

	reconciled []string
	stopOnce   sync.Once
	stopCh     chan api.DaemonStopParams
}

// Run runs the daemon until SIGTERM/SIGINT, daemon.stop or ctx ends. VMs
// keep running across a daemon stop unless daemon.stop asked otherwise.
func Run(ctx context.Context, opts Options) (err error) {
	layout := opts.Layout
	if err := layout.Ensure(); err != nil {
		return err
	}
	logFile, err := os.OpenFile(layout.DaemonLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logFile.Close()
	var out io.Writer = logFile
	if opts.LogOutput != nil {
		out = io.MultiWriter(logFile, opts.LogOutput)
	}
	logger := log.New(out, fmt.Sprintf("bangerd[%d] ", os.Getpid()), log.LstdFlags|log.Lmicroseconds)
	for _, s := range envknob.Active() {
		logger.Printf("test-only switch set: %s (inherited from the environment; it changes what bangerd does)", s)
	}

	lock, err := AcquireLock(layout.DaemonLock())
	if err != nil {
		logger.Print(err)
		return err
	}
	defer lock.Release()

	cfg, err := config.Load(layout.ConfigFile())
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	for _, d := range cfg.Deprecations {
		logger.Print("config: ", d)
	}
	st, err := store.Open(layout.Database())
	if err != nil {
		return err
	}
	defer st.Close()

	d, err := New(layout, cfg, st, logger)
	if err != nil {
		return err
	}
	srv := server.New(logger)
	for _, m := range d.methods() {
		srv.Register(m.name, m.handler)
	}

	notes, err := d.VMs.Reconcile(ctx)
	if err != nil {
		logger.Printf("reconcile: %v", err) // serve anyway: the user needs the CLI to fix things
	}
	for _, n := range notes {
		logger.Print("reconcile: ", n)
	}
	d.reconciled = notes
	d.startMapDNS(ctx)
	defer d.stopMapDNS()
	if _, err := d.writeSSHConfig(ctx, ""); err != nil {
		logger.Printf("ssh config: %v", err)
	}
	// VMs that kept running while no daemon was up get their forwards back.
	d.syncForwards(ctx, true)
	defer d.stopForwards()
	trimCtx, stopTrim := context.WithCancel(ctx)
	defer stopTrim()
	go d.VMs.TrimConsoles(trimCtx, 10*time.Second, logger.Printf)
	go d.pollListeners(trimCtx, 2*time.Second)

	ln, err := server.Listen(layout.DaemonSocket())
	if err != nil {
		return err
	}
	defer os.Remove(layout.DaemonSocket())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Printf("serving on %s (version %s, build %s)", layout.DaemonSocket(), version.Version, version.ID())

	select {
	case <-ctx.Done():
		logger.Print("context done: shutting down")
	case s := <-sigs:
		logger.Printf("%s: shutting down (VMs keep running)", s)
	case p := <-d.stopCh:
		logger.Printf("daemon.stop: shutting down (stop_vms=%v)", p.StopVMs)
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		logger.Printf("shutdown: %v", err)
	}
	logger.Print("stopped")
	return nil
}

// New assembles the services on an open store: the hypervisor runtime
// (drivers, disks, networking through the privileged helper, the agent
// channel), the VM service with its hooks and the image service.
func New(layout paths.Layout, cfg config.Config, st *store.Store, logger *log.Logger) (*Daemon, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find bangerd's own path: %w", err)
	}
	d := &Daemon{
		Layout: layout, Config: cfg, Store: st, Log: logger, StartedAt: time.Now(),
		Bangerd: self, Helper: newHelper(),
		stopCh: make(chan api.DaemonStopParams, 1),
	}
	d.choose = chooser(cfg)
	d.VMM, d.VMMReason, err = d.choose()
	if err != nil {
		d.VMMReason = "no usable hypervisor: " + err.Error()
	}
	d.Runtime = d.newRuntime()
	d.mapdns = d.newMapDNS()
	d.VMs = &vm.Service{
		Store: st, Config: cfg, Layout: layout, Runtime: d.Runtime, Snapshots: d.Runtime,
		Preflight: d.vmPreflight,
		OnChange:  d.vmsChanged,
		SSHKeyPath: func() string {
			if b, err := d.loadBundle(); err == nil {
				return b.SSHKeyPath
			}
			return d.bundleKeyPath()
		},
	}
	d.Images = &image.Service{
		Store: st, Builder: &image.Builder{Layout: layout}, Bundle: d.loadBundle,
		VoidRepo: cfg.VoidRepo, XBPSStatic: cfg.XBPSStatic, BuildLock: &d.buildMu,
		Preflight: d.imageBuildPreflight,
		Boot:      d.verifyBoot,
	}
	return d, nil
}
