package daemon

import (
	"context"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/portfwd"
)

// forwards serves the VMs' port forwards while they run: the persistent
// ones (vm create/set --publish) and, with auto-forward, one per TCP port
// the guest listens on. sync makes the listeners match what is wanted.
type forwards struct {
	mu     sync.Mutex
	active map[string]map[api.PortForward]*forward // VM id -> forward
	// auto holds the forwards the last poll of each VM's listening
	// ports asked for.
	auto map[string]map[api.PortForward]bool
}

type forward struct {
	cancel context.CancelFunc // nil when it failed to listen
	auto   bool
	err    string
}

// syncForwards starts the wanted forwards of running VMs and stops the
// rest. retry also retries forwards that failed to listen (a host port that
// was taken); the auto-forward poller does not, so a taken port is tried
// (and logged) once per VM change, not every poll.
func (d *Daemon) syncForwards(ctx context.Context, retry bool) {
	vms, err := d.Store.ListVMs(ctx)
	if err != nil {
		d.Log.Printf("port forwards: %v", err)
		return
	}
	fw := &d.fwd
	fw.mu.Lock()
	defer fw.mu.Unlock()
	want := map[string]map[api.PortForward]bool{} // forward -> auto
	for _, vm := range vms {
		if vm.State != api.VMRunning {
			continue
		}
		w := map[api.PortForward]bool{}
		if d.autoForward(vm) {
			for f := range fw.auto[vm.ID] {
				w[f] = true
			}
		}
		for _, f := range vm.Publish {
			// A published forward wins over an automatic one on its port.
			for a := range w {
				if a.HostPort == f.HostPort {
					delete(w, a)
				}
			}
			w[f] = false
		}
		want[vm.ID] = w
	}
	if fw.active == nil {
		fw.active = map[string]map[api.PortForward]*forward{}
	}
	for id, fs := range fw.active {
		for f, a := range fs {
			auto, ok := want[id][f]
			if !ok || auto != a.auto || (retry && a.cancel == nil) {
				if a.cancel != nil {
					a.cancel()
				}
				delete(fs, f)
			}
		}
		if len(fs) == 0 {
			delete(fw.active, id)
		}
	}
	for id, fs := range want {
		for f, auto := range fs {
			if fw.active[id][f] != nil {
				continue
			}
			if fw.active[id] == nil {
				fw.active[id] = map[api.PortForward]*forward{}
			}
			a := d.startForward(id, f)
			a.auto = auto
			fw.active[id][f] = a
		}
	}
}

// autoForward says whether vm's listening ports are followed.
func (d *Daemon) autoForward(vm api.VM) bool {
	if vm.AutoForward != nil {
		return *vm.AutoForward
	}
	return d.Config.AutoForward
}

// pollListeners asks the agent of every running auto-forward VM which TCP
// ports the guest listens on, every interval, and forwards them (1024 and
// up: lower host ports need privileges, and 22 is sshd's) to the same port
// on the host's 127.0.0.1.
func (d *Daemon) pollListeners(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		vms, err := d.Store.ListVMs(ctx)
		if err != nil {
			continue
		}
		auto := map[string]map[api.PortForward]bool{}
		for _, vm := range vms {
			if vm.State != api.VMRunning || !d.autoForward(vm) {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c := agentclient.Client{Dial: func(ctx context.Context) (net.Conn, error) { return d.Runtime.DialAgent(ctx, vm) }}
			ls, err := c.Listeners(pctx)
			cancel()
			if err != nil {
				// Keep what was forwarded: a slow answer is no reason to
				// drop connections.
				d.fwd.mu.Lock()
				auto[vm.ID] = d.fwd.auto[vm.ID]
				d.fwd.mu.Unlock()
				continue
			}
			set := map[api.PortForward]bool{}
			for _, l := range ls {
				if l.Port >= 1024 && l.Port <= 65535 {
					set[api.PortForward{HostAddr: "127.0.0.1", HostPort: l.Port, GuestPort: l.Port}] = true
				}
			}
			auto[vm.ID] = set
		}
		d.fwd.mu.Lock()
		d.fwd.auto = auto
		d.fwd.mu.Unlock()
		d.syncForwards(ctx, false)
	}
}

// startForward listens for f and serves it until cancelled.
func (d *Daemon) startForward(id string, f api.PortForward) *forward {
	ln, err := portfwd.Listen(f)
	if err != nil {
		d.Log.Printf("port forward %s of VM %s: %v", portfwd.String(f), id, err)
		return &forward{err: err.Error()}
	}
	ctx, cancel := context.WithCancel(context.Background())
	dial := func(ctx context.Context, port int) (io.ReadWriteCloser, error) {
		// The record of now: the VM may have restarted since.
		vm, err := d.Store.GetVM(ctx, id)
		if err != nil {
			return nil, err
		}
		c := agentclient.Client{Dial: func(ctx context.Context) (net.Conn, error) { return d.Runtime.DialAgent(ctx, vm) }}
		return portfwd.DirectFirst(vm.IP, func(ctx context.Context, port int) (io.ReadWriteCloser, error) {
			return c.Connect(ctx, port)
		})(ctx, port)
	}
	go portfwd.Serve(ctx, ln, f.GuestPort, dial, d.Log.Printf)
	return &forward{cancel: cancel}
}

// forwardStatus is what bangerd forwards for a VM now.
func (d *Daemon) forwardStatus(id string) []api.ForwardStatus {
	d.fwd.mu.Lock()
	defer d.fwd.mu.Unlock()
	var out []api.ForwardStatus
	for f, a := range d.fwd.active[id] {
		out = append(out, api.ForwardStatus{PortForward: f, Auto: a.auto, Error: a.err})
	}
	slices.SortFunc(out, func(a, b api.ForwardStatus) int { return a.HostPort - b.HostPort })
	return out
}

// stopForwards ends every forward (daemon shutdown).
func (d *Daemon) stopForwards() {
	d.fwd.mu.Lock()
	defer d.fwd.mu.Unlock()
	for _, fs := range d.fwd.active {
		for _, a := range fs {
			if a.cancel != nil {
				a.cancel()
			}
		}
	}
	d.fwd.active = nil
}
