package daemon

import (
	"context"
	"fmt"
	"os"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/doctor"
	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/server"
	"github.com/banger-dev/banger/internal/version"
)

type method struct {
	name    string
	handler server.Handler
}

// m pairs a method name with its typed handler.
func m[P, R any](name string, f func(ctx context.Context, p P, progress func(api.Progress)) (R, error)) method {
	return method{name, server.Method(f)}
}

// methods is the daemon's one method table: every API method and the
// function that serves it. Run registers each; a name listed twice panics
// at start (server.Register), and a test holds the table to api's names.
func (d *Daemon) methods() []method {
	vms, images := d.VMs, d.Images
	return []method{
		m(api.MethodVMCreate, vms.Create),
		// The two list methods answer with the encoded reply of the last
		// call when the list is unchanged (listreply.go).
		m(api.MethodVMSummaries, func(ctx context.Context, _ struct{}, _ func(api.Progress)) (server.Encoded, error) {
			sums, err := vms.Summaries(ctx)
			if err != nil {
				return nil, err
			}
			return d.summariesReply.encode(api.VMSummariesResult{VMs: sums}, sameSummaries)
		}),
		m(api.MethodVMList, func(ctx context.Context, _ struct{}, _ func(api.Progress)) (server.Encoded, error) {
			list, err := vms.List(ctx)
			if err != nil {
				return nil, err
			}
			for i := range list {
				list[i].Forwards = d.forwardStatus(list[i].ID)
			}
			return d.listReply.encode(api.VMListResult{VMs: list}, sameVMList)
		}),
		m(api.MethodVMGet, func(ctx context.Context, p api.VMRef, _ func(api.Progress)) (api.VM, error) {
			v, err := vms.Get(ctx, p.Name)
			v.Forwards = d.forwardStatus(v.ID)
			return v, err
		}),
		m(api.MethodVMSet, func(ctx context.Context, p api.VMSetParams, _ func(api.Progress)) (api.VMSetResult, error) {
			return vms.Set(ctx, p)
		}),
		m(api.MethodVMStart, func(ctx context.Context, p api.VMRef, pr func(api.Progress)) (api.VM, error) {
			return vms.Start(ctx, p.Name, pr)
		}),
		m(api.MethodVMStop, func(ctx context.Context, p api.VMStopParams, _ func(api.Progress)) (api.VM, error) {
			return vms.Stop(ctx, p.Name, p.Force)
		}),
		m(api.MethodVMRestart, func(ctx context.Context, p api.VMRef, pr func(api.Progress)) (api.VM, error) {
			return vms.Restart(ctx, p.Name, pr)
		}),
		m(api.MethodVMDelete, func(ctx context.Context, p api.VMDeleteParams, _ func(api.Progress)) (struct{}, error) {
			return struct{}{}, vms.Delete(ctx, p.Name, p.Force)
		}),
		m(api.MethodVMHealth, func(ctx context.Context, p api.VMRef, _ func(api.Progress)) (api.VMHealthResult, error) {
			return vms.Health(ctx, p.Name)
		}),
		// `banger vm ssh` asks for this first: check the ssh client, the key
		// and known_hosts before the CLI runs ssh.
		m(api.MethodVMSSHInfo, func(ctx context.Context, p api.VMRef, _ func(api.Progress)) (api.VMSSHInfo, error) {
			if err := doctor.Preflight(ctx, d.doctorEnv(), doctor.ScopeSSH); err != nil {
				return api.VMSSHInfo{}, err
			}
			return vms.SSHInfo(ctx, p.Name)
		}),
		// A stream method: the server joins the caller's connection to the
		// guest agent's (exec, cp and port forwarding speak over it).
		m(api.MethodVMAgentConnect, func(ctx context.Context, p api.VMRef, _ func(api.Progress)) (*server.Stream, error) {
			conn, err := vms.AgentConnect(ctx, p.Name)
			if err != nil {
				return nil, err
			}
			return &server.Stream{Conn: conn}, nil
		}),
		m(api.MethodSnapshotCreate, vms.SnapshotCreate),
		m(api.MethodSnapshotList, func(ctx context.Context, p api.SnapshotListParams, _ func(api.Progress)) (api.SnapshotListResult, error) {
			list, err := vms.SnapshotList(ctx, p.VM)
			return api.SnapshotListResult{Snapshots: list}, err
		}),
		m(api.MethodSnapshotDelete, func(ctx context.Context, p api.SnapshotRef, _ func(api.Progress)) (struct{}, error) {
			return struct{}{}, vms.SnapshotDelete(ctx, p)
		}),
		m(api.MethodVMRestore, vms.Restore),
		m(api.MethodVMClone, vms.Clone),
		m(api.MethodVMSuspend, func(ctx context.Context, p api.VMRef, pr func(api.Progress)) (api.VM, error) {
			return vms.Suspend(ctx, p.Name, pr)
		}),
		m(api.MethodVMResume, func(ctx context.Context, p api.VMRef, pr func(api.Progress)) (api.VM, error) {
			return vms.Resume(ctx, p.Name, pr)
		}),
		m(api.MethodVMSSHConfig, d.sshConfig),
		m(api.MethodVMLogs, func(ctx context.Context, p api.VMLogsParams, _ func(api.Progress)) (api.VMLogsResult, error) {
			return vms.Logs(ctx, p)
		}),

		m(api.MethodImageBuild, images.Build),
		m(api.MethodImageRegister, func(ctx context.Context, p api.ImageRegisterParams, _ func(api.Progress)) (api.Image, error) {
			return images.Register(ctx, p)
		}),
		m(api.MethodImageList, func(ctx context.Context, _ struct{}, _ func(api.Progress)) (api.ImageListResult, error) {
			list, err := images.List(ctx)
			return api.ImageListResult{Images: list}, err
		}),
		m(api.MethodImageGet, func(ctx context.Context, p api.ImageRef, _ func(api.Progress)) (api.Image, error) {
			return images.Get(ctx, p.Name)
		}),
		m(api.MethodImageVerify, func(ctx context.Context, p api.ImageRef, pr func(api.Progress)) (api.ImageVerifyResult, error) {
			return images.Verify(ctx, p.Name, pr)
		}),
		m(api.MethodImageDelete, func(ctx context.Context, p api.ImageRef, _ func(api.Progress)) (struct{}, error) {
			return struct{}{}, images.Delete(ctx, p.Name)
		}),
		m(api.MethodImageImport, images.Import),

		m(api.MethodHostResources, func(ctx context.Context, _ struct{}, _ func(api.Progress)) (api.HostResources, error) {
			return vms.HostResources(ctx)
		}),
		m(api.MethodHostNAT, d.hostNAT),
		m(api.MethodHostTeardown, d.hostTeardown),

		m(api.MethodDaemonInfo, d.daemonInfo),
		m(api.MethodDaemonStop, d.daemonStop),
		m(api.MethodDoctorRun, d.doctorRun),
		m(api.MethodBundleBuild, d.bundleBuild),
		m(api.MethodBundleShow, d.bundleShow),
	}
}

// Info describes this daemon. daemon.info answers with it, and doctor's
// daemon checks read it, so both say the same thing.
func (d *Daemon) Info() api.DaemonInfo {
	return api.DaemonInfo{
		Version: version.Version, BuildID: version.ID(), APIVersion: api.Version, PID: os.Getpid(),
		StartedAt: d.StartedAt, Socket: d.Layout.DaemonSocket(), StateDir: d.Layout.StateDir,
		LogPath: d.Layout.DaemonLog(), VMM: d.VMM, VMMReason: d.VMMReason, Reconciled: d.reconciled,
		TestSwitches: testSwitches(),
	}
}

func (d *Daemon) daemonInfo(context.Context, struct{}, func(api.Progress)) (api.DaemonInfo, error) {
	return d.Info(), nil
}

func (d *Daemon) daemonStop(ctx context.Context, p api.DaemonStopParams, _ func(api.Progress)) (struct{}, error) {
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
}

// testSwitches lists the test-only switches set in the daemon's environment
// (NAME=value), for `daemon status` and doctor.
func testSwitches() []string {
	var out []string
	for _, s := range envknob.Active() {
		out = append(out, s.String())
	}
	return out
}
