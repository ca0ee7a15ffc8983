package vmruntime

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/termsafe"
)

// Reidentify makes a cloned guest its own machine through its agent: new
// /etc/machine-id and SSH host keys (the clone's disks carry the source's),
// its hostname, and with memory (the guest resumed with the source's
// network state in RAM) its MAC, address and default route. Values reach
// the guest as argv elements, never inside a script.
func (r *Runtime) Reidentify(ctx context.Context, vm api.VM, memory bool) error {
	var cmds [][]string
	if memory {
		gw := hostnet.Gateway(r.Config.Subnet)
		cmds = append(cmds,
			[]string{"ip", "link", "set", "dev", "eth0", "address", vm.MAC},
			[]string{"ip", "addr", "flush", "dev", "eth0"},
			[]string{"ip", "addr", "add", fmt.Sprintf("%s/%d", vm.IP, r.Config.Subnet.Bits()), "dev", "eth0"},
			[]string{"ip", "route", "replace", "default", "via", gw.String()},
		)
	}
	cmds = append(cmds,
		[]string{"hostname", vm.Name},
		[]string{"sh", "-c", `printf '%s\n' "$1" > /etc/hostname`, "sh", vm.Name},
		[]string{"sh", "-c", "rm -f /etc/machine-id && (systemd-machine-id-setup || dbus-uuidgen --ensure=/etc/machine-id)"},
		[]string{"sh", "-c", "rm -f /etc/ssh/ssh_host_* && /usr/local/lib/banger/banger-hostkeys"},
		[]string{"sh", "-c", "systemctl restart ssh 2>/dev/null || sv restart sshd"},
	)
	c := agentclient.Client{Dial: r.dialer(vm)}
	for _, argv := range cmds {
		if err := guestRun(ctx, c, argv); err != nil {
			return err
		}
	}
	return nil
}

// guestRun runs one command through the agent and fails on a non-zero
// exit, quoting a bounded, sanitised piece of its output.
func guestRun(ctx context.Context, c agentclient.Client, argv []string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conn, err := c.Exec(ctx, agentproto.ExecRequest{Argv: argv, TimeoutMillis: 90_000})
	if err != nil {
		return fmt.Errorf("guest %q: %w", argv, err)
	}
	defer conn.Close()
	var out boundedBuffer
	exit, err := agentclient.RunExec(conn, agentclient.ExecIO{Stdout: &out, Stderr: &out})
	if err != nil {
		return fmt.Errorf("guest %q: %w", argv, err)
	}
	if exit.Code != 0 || exit.Signal != 0 || exit.TimedOut {
		return fmt.Errorf("guest %q: exit %d (signal %d, timed out %v): %s", argv, exit.Code, exit.Signal, exit.TimedOut,
			termsafe.String(out.String()))
	}
	return nil
}

// boundedBuffer keeps the first 4 KiB written to it: guest output is
// untrusted and only quoted in errors.
type boundedBuffer struct{ b bytes.Buffer }

func (w *boundedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (w *boundedBuffer) String() string { return w.b.String() }

// CloneDisks gives the new VM dst the disks saved in dir, and records its
// system disk as cloned from the snapshot's image build (so its next start
// keeps it rather than re-cloning the image).
func (r *Runtime) CloneDisks(ctx context.Context, dst api.VM, dir string, m api.SnapshotManifest) error {
	img, err := r.Image(ctx, m.Image)
	if err != nil {
		return err
	}
	f := r.Layout.VM(dst.ID)
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return err
	}
	if err := r.RestoreDisks(ctx, dst, dir, m); err != nil {
		return err
	}
	return os.WriteFile(rootDiskStamp(f), []byte(m.ImageSHA256+" "+img.RootfsPath+"\n"), 0o600)
}

// WaitIdentity waits until a re-identified clone's agent reports its new
// hostname and its sshd answers on its new address.
func (r *Runtime) WaitIdentity(ctx context.Context, vm api.VM) error {
	c := agentclient.Client{Dial: r.dialer(vm)}
	hctx, cancel := context.WithTimeout(ctx, r.Config.BootTimeout)
	defer cancel()
	for {
		h, _, err := c.Health(hctx)
		if err == nil && h.Hostname == vm.Name {
			break
		}
		select {
		case <-hctx.Done():
			return fmt.Errorf("the clone's agent does not report hostname %s (last: %q, %v)", vm.Name, h.Hostname, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	return r.waitSSH(ctx, vm, r.Layout.VM(vm.ID))
}
