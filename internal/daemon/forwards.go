package daemon

import (
	"context"
	"io"
	"net"
	"slices"
	"sync"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/portfwd"
)

// forwards serves the VMs' persistent port forwards (vm create/set
// --publish) while they run: sync, called whenever VMs change and at start,
// makes the listeners match the records.
type forwards struct {
	mu     sync.Mutex
	active map[string]map[api.PortForward]*forward // VM id -> forward
}

type forward struct {
	cancel context.CancelFunc // nil when it failed to listen
	err    string
}

// syncForwards starts the forwards of running VMs that are not served yet
// (retrying those that failed) and stops those of VMs that stopped, were
// deleted or unpublished them.
func (d *Daemon) syncForwards(ctx context.Context) {
	vms, err := d.Store.ListVMs(ctx)
	if err != nil {
		d.Log.Printf("port forwards: %v", err)
		return
	}
	want := map[string]map[api.PortForward]bool{}
	for _, vm := range vms {
		if vm.State != api.VMRunning {
			continue
		}
		for _, f := range vm.Publish {
			if want[vm.ID] == nil {
				want[vm.ID] = map[api.PortForward]bool{}
			}
			want[vm.ID][f] = true
		}
	}
	fw := &d.fwd
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.active == nil {
		fw.active = map[string]map[api.PortForward]*forward{}
	}
	for id, fs := range fw.active {
		for f, a := range fs {
			if !want[id][f] || a.cancel == nil {
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
		for f := range fs {
			if fw.active[id][f] != nil {
				continue
			}
			if fw.active[id] == nil {
				fw.active[id] = map[api.PortForward]*forward{}
			}
			fw.active[id][f] = d.startForward(id, f)
		}
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
		return c.Connect(ctx, port)
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
		out = append(out, api.ForwardStatus{PortForward: f, Error: a.err})
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
