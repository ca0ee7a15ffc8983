// Package daemon wires bangerd together: directories, config, the
// single-instance lock, the store, the VM service, start-up reconciliation,
// the API server and graceful shutdown.
package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/config"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/server"
	"github.com/banger-dev/banger/internal/store"
	"github.com/banger-dev/banger/internal/version"
	"github.com/banger-dev/banger/internal/vm"
)

// Options configure a daemon run.
type Options struct {
	Layout paths.Layout
	// LogOutput gets the log besides bangerd.log (e.g. stderr in --foreground).
	LogOutput io.Writer
	// Setup runs after the store and VM service exist and before serving:
	// the place to set svc.Runtime and register extra methods.
	Setup func(d *Daemon) error
}

// Daemon is a running bangerd.
type Daemon struct {
	Layout    paths.Layout
	Config    config.Config
	Store     *store.Store
	VMs       *vm.Service
	Server    *server.Server
	Log       *log.Logger
	StartedAt time.Time
	// VMM and VMMReason describe the driver new VMs would use (set by Setup).
	VMM, VMMReason string

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

	d := &Daemon{
		Layout: layout, Config: cfg, Store: st, Log: logger, StartedAt: time.Now(),
		Server: server.New(logger),
		VMs:    &vm.Service{Store: st, Config: cfg, Layout: layout},
		stopCh: make(chan api.DaemonStopParams, 1),
	}
	server.RegisterVMService(d.Server, d.VMs)
	d.registerDaemonMethods()
	if opts.Setup != nil {
		if err := opts.Setup(d); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	if d.VMs.Runtime == nil {
		logger.Print("no hypervisor runtime wired: VM records only; start/stop will fail with failed_precondition")
	}
	notes, err := d.VMs.Reconcile(ctx)
	if err != nil {
		logger.Printf("reconcile: %v", err) // serve anyway: the user needs the CLI to fix things
	}
	for _, n := range notes {
		logger.Print("reconcile: ", n)
	}
	d.reconciled = notes

	ln, err := server.Listen(layout.DaemonSocket())
	if err != nil {
		return err
	}
	defer os.Remove(layout.DaemonSocket())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	serveErr := make(chan error, 1)
	go func() { serveErr <- d.Server.Serve(ln) }()
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
	if err := d.Server.Shutdown(shCtx); err != nil {
		logger.Printf("shutdown: %v", err)
	}
	logger.Print("stopped")
	return nil
}

// Info describes this daemon. daemon.info answers with it, and doctor's
// daemon checks read it, so both say the same thing.
func (d *Daemon) Info() api.DaemonInfo {
	return api.DaemonInfo{
		Version: version.Version, BuildID: version.ID(), APIVersion: api.Version, PID: os.Getpid(),
		StartedAt: d.StartedAt, Socket: d.Layout.DaemonSocket(), StateDir: d.Layout.StateDir,
		LogPath: d.Layout.DaemonLog(), VMM: d.VMM, VMMReason: d.VMMReason, Reconciled: d.reconciled,
	}
}

func (d *Daemon) registerDaemonMethods() {
	d.Server.Register(api.MethodDaemonInfo, server.Method(func(ctx context.Context, _ struct{}, _ func(api.Progress)) (api.DaemonInfo, error) {
		return d.Info(), nil
	}))
	d.Server.Register(api.MethodDaemonStop, server.Method(func(ctx context.Context, p api.DaemonStopParams, _ func(api.Progress)) (struct{}, error) {
		if p.StopVMs {
			// Stop VMs before answering so failures reach the user, and keep
			// serving when some VM would not stop.
			if err := d.VMs.StopAll(ctx); err != nil {
				return struct{}{}, fmt.Errorf("daemon not stopped: stopping VMs failed: %w", err)
			}
		}
		// Shutdown waits for this call to finish, so the reply gets out.
		d.stopOnce.Do(func() { d.stopCh <- p })
		return struct{}{}, nil
	}))
}

// Lock is the held single-instance lock.
type Lock struct{ f *os.File }

// AcquireLock takes an exclusive flock on path and writes our pid into it.
// A second daemon on the same state directory is refused, naming the lock
// file and the pid holding it.
func AcquireLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	// A daemon that was just killed can still hold the lock for a moment
	// after its main thread is gone (its other threads are exiting), so a
	// holder that is no longer alive gets a short grace before we give up.
	deadline := time.Now().Add(3 * time.Second)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		b, _ := os.ReadFile(path)
		holder := strings.TrimSpace(string(b))
		pid, perr := strconv.Atoi(holder)
		if errors.Is(err, syscall.EWOULDBLOCK) && perr == nil && !processAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if perr != nil {
				holder = "unknown"
			}
			return nil, fmt.Errorf("another bangerd (pid %s) holds the lock %s: stop it with `banger daemon stop` before starting a new one", holder, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// processAlive reports whether pid runs and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// Release drops the lock.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		l.f.Close()
	}
}
