package qemu

// Snapshots with QEMU 7.2 (Debian bookworm's).
//
// Why migration to a file descriptor, not qcow2 internal snapshots: the
// snapshot-save job (savevm) puts the memory state inside a qcow2 image and
// needs every writable disk to be qcow2, but the work disk is raw, and an
// internal snapshot would tie the saved memory to one image file that the
// VM keeps writing to. QEMU 7.2 has no "file:" migration URI, so the state
// goes through a plain file this process opens and hands to QEMU with QMP
// getfd (SCM_RIGHTS): "migrate fd:NAME" on the source writes the device and
// RAM stream into it, and a new QEMU started with "-incoming defer" reads it
// back with "migrate-incoming fd:NAME". The memory file is then an ordinary
// file in the snapshot directory whose size we can check and account for,
// and disks stay separate files the caller copies while the VM is paused.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/vmm"
)

// StateFile and InfoFile are the files SaveState writes into its directory.
const (
	StateFile = "qemu-state.bin"
	InfoFile  = "qemu-state.json"
)

// stateInfo records what a restore must reproduce: the accelerator (a TCG
// stream does not load under KVM with -cpu host, nor the reverse) and the
// QEMU version that wrote the stream.
type stateInfo struct {
	Accel       string `json:"accel"`
	QEMUVersion string `json:"qemu_version"`
}

const migrateFD = "banger-migrate"

// restoreTimeout bounds Restore when ctx has no deadline.
const restoreTimeout = 5 * time.Minute

var _ vmm.Snapshotter = (*Driver)(nil)

// Pause implements vmm.Snapshotter.
func (d *Driver) Pause(ctx context.Context, h vmm.Handle) error {
	return d.control(ctx, h, "stop")
}

// Resume implements vmm.Snapshotter. It also resumes a VM whose state was
// just saved (QEMU's "postmigrate" state): cont re-activates its disks.
func (d *Driver) Resume(ctx context.Context, h vmm.Handle) error {
	return d.control(ctx, h, "cont")
}

func (d *Driver) control(ctx context.Context, h vmm.Handle, cmd string) error {
	if !d.Alive(h) {
		return &vmm.Error{VM: fmt.Sprintf("qemu pid %d", h.PID), Step: "qmp " + cmd, Err: errors.New("the QEMU process is gone")}
	}
	err := d.qmp(ctx, h.APISocket, func(c *QMPClient) error { return c.Execute(ctx, cmd, nil, nil) })
	if err != nil {
		return &vmm.Error{VM: fmt.Sprintf("qemu pid %d", h.PID), Step: "qmp " + cmd, Err: err}
	}
	return nil
}

// Version asks a running QEMU for its version, "major.minor.micro".
func (d *Driver) Version(ctx context.Context, h vmm.Handle) (string, error) {
	var v string
	err := d.qmp(ctx, h.APISocket, func(c *QMPClient) error {
		q := c.Greeting.QMP.Version.QEMU
		v = fmt.Sprintf("%d.%d.%d", q.Major, q.Minor, q.Micro)
		return nil
	})
	return v, err
}

// SaveState implements vmm.Snapshotter: it streams the paused VM's device
// state and RAM into dir/StateFile through a migration to a passed fd.
func (d *Driver) SaveState(ctx context.Context, h vmm.Handle, dir string) error {
	label := fmt.Sprintf("qemu pid %d", h.PID)
	fail := func(step string, err error) error { return &vmm.Error{VM: label, Step: step, Err: err} }
	accel, _, err := d.Accel()
	if err != nil {
		return fail("choose accelerator", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, StateFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail("create state file", err)
	}
	defer f.Close()
	c, err := DialQMP(ctx, h.APISocket)
	if err != nil {
		return fail("qmp connect", err)
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return fail("qmp query-status", err)
	}
	if st.Running {
		return fail("check paused", errors.New("the VM is running: pause it before saving its state"))
	}
	// The default migration bandwidth cap (32 MiB/s) is for networks; a
	// local file takes what the disk gives.
	if err := c.Execute(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": int64(1) << 40}, nil); err != nil {
		return fail("qmp migrate-set-parameters", err)
	}
	if err := c.ExecuteWithFD(ctx, "getfd", map[string]any{"fdname": migrateFD}, f); err != nil {
		return fail("qmp getfd", err)
	}
	if err := c.Execute(ctx, "migrate", map[string]any{"uri": "fd:" + migrateFD}, nil); err != nil {
		c.Execute(ctx, "closefd", map[string]any{"fdname": migrateFD}, nil)
		return fail("qmp migrate", err)
	}
	if err := waitMigration(ctx, c); err != nil {
		return fail("save state", err)
	}
	if err := f.Sync(); err != nil {
		return fail("sync state file", err)
	}
	q := c.Greeting.QMP.Version.QEMU
	info, _ := json.Marshal(stateInfo{Accel: accel, QEMUVersion: fmt.Sprintf("%d.%d.%d", q.Major, q.Minor, q.Micro)})
	if err := os.WriteFile(filepath.Join(dir, InfoFile), info, 0o600); err != nil {
		return fail("write state info", err)
	}
	return nil
}

// waitMigration polls query-migrate until the outgoing migration ends.
func waitMigration(ctx context.Context, c *QMPClient) error {
	for {
		var m struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		if err := c.Execute(ctx, "query-migrate", nil, &m); err != nil {
			return err
		}
		switch m.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			if m.ErrorDesc == "" {
				m.ErrorDesc = "no reason given"
			}
			return fmt.Errorf("migration %s: %s", m.Status, m.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			// Leave QEMU as it was: the VM stays paused, the stream stops.
			cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			c.Execute(cctx, "migrate_cancel", nil, nil)
			cancel()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Restore implements vmm.Snapshotter: a new QEMU for spec, started with
// -incoming defer, reads dir/StateFile and resumes the guest.
func (d *Driver) Restore(ctx context.Context, spec vmm.Spec, dir string) (vmm.Handle, error) {
	fail := func(step string, err error) (vmm.Handle, error) {
		return vmm.Handle{}, &vmm.Error{VM: vmLabel(spec), Step: step, Err: err}
	}
	var info stateInfo
	b, err := os.ReadFile(filepath.Join(dir, InfoFile))
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	if err != nil {
		return fail("read state info", err)
	}
	accel, _, err := d.Accel()
	if err != nil {
		return fail("choose accelerator", err)
	}
	if accel != info.Accel {
		return fail("check accelerator", fmt.Errorf("the state was saved under %s and this host would run %s: restore it where the same accelerator is used, or boot from the snapshot's disks", info.Accel, accel))
	}
	f, err := os.Open(filepath.Join(dir, StateFile))
	if err != nil {
		return fail("open state file", err)
	}
	defer f.Close()
	if _, ok := ctx.Deadline(); !ok {
		// Loading the state reads the whole memory file: under TCG on a
		// busy host that takes longer than a boot's QMP wait.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, restoreTimeout)
		defer cancel()
	}
	return d.launch(ctx, spec, accel, func(ctx context.Context, c *QMPClient) error {
		if err := c.ExecuteWithFD(ctx, "getfd", map[string]any{"fdname": migrateFD}, f); err != nil {
			return err
		}
		return c.Execute(ctx, "migrate-incoming", map[string]any{"uri": "fd:" + migrateFD}, nil)
	})
}

// VMMVersion is the first line of `qemu-system-x86_64 --version`: a saved
// state loads only into the QEMU build that wrote it.
func (d *Driver) VMMVersion(ctx context.Context) (string, error) {
	bin, err := sysexec.LookPath(d.opts.Binary)
	if err != nil {
		return "", err
	}
	out, err := sysexec.Output(ctx, bin, "--version")
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return line, nil
}
