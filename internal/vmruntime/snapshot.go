package vmruntime

// Snapshots, restore and suspend. The VM service owns records and names;
// this file moves files and drives the VMM:
//
//   - Capture pauses a running VM, saves its memory and device state (when
//     asked) and copies both disks while it is paused, so disks and memory
//     are of the same instant; the VM is resumed afterwards unless the
//     caller is about to stop it (suspend, --stop).
//   - RestoreDisks puts a snapshot's disks back in place of a stopped VM's.
//   - ResumeFrom starts a VMM from saved state (restore with memory, vm
//     resume) and waits for the guest agent, like Start.
//
// A snapshot directory holds the two disks, the driver's state files and
// manifest.json, written last: a directory without it is incomplete.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/bundle"
	"github.com/banger-dev/banger/internal/disk"
	"github.com/banger-dev/banger/internal/hostinfo"
	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/validate"
	"github.com/banger-dev/banger/internal/vmm"
)

// ManifestFile marks a complete snapshot directory.
const ManifestFile = "manifest.json"

// Work disk file name inside a snapshot directory.
const snapWorkDisk = "work.ext4"

// SnapshotsDir is where a VM's snapshots live: one directory per snapshot,
// named after it, under the VM's state directory.
func (r *Runtime) SnapshotsDir(vm api.VM) string {
	return filepath.Join(r.Layout.VM(vm.ID).Dir, "snapshots")
}

// SuspendDir holds a suspended VM's saved memory and device state (its
// disks stay in place: nothing writes them while it is suspended).
func (r *Runtime) SuspendDir(vm api.VM) string {
	return filepath.Join(r.Layout.VM(vm.ID).Dir, "suspend")
}

// versioner is a driver that can name the VMM build a saved state needs.
type versioner interface {
	VMMVersion(ctx context.Context) (string, error)
}

// captureOptions say what Capture saves and how it leaves the VM.
type captureOptions struct {
	Memory bool // save memory and device state (the VM must be running)
	Disks  bool // copy both disks
	// Resume continues a running VM afterwards; without it the VM stays
	// paused for the caller to stop.
	Resume bool
}

// Capture saves vm into dir, which must not exist; on error dir is removed.
func (r *Runtime) Capture(ctx context.Context, vm api.VM, dir string, memory, disks, resume bool, progress func(api.Progress)) (api.SnapshotManifest, error) {
	return r.capture(ctx, vm, dir, captureOptions{Memory: memory, Disks: disks, Resume: resume}, progress)
}

func (r *Runtime) capture(ctx context.Context, vm api.VM, dir string, o captureOptions, progress func(api.Progress)) (m api.SnapshotManifest, err error) {
	running := vm.State == api.VMRunning && r.Alive(vm)
	if o.Memory && !running {
		return m, api.NewError(api.CodeConflict, "VM "+vm.Name+" is "+string(vm.State)+": only a running VM has memory to save",
			"snapshot its disks with --no-memory, or start it first")
	}
	var snap vmm.Snapshotter
	if running {
		d, err := r.driverFor(vm)
		if err != nil {
			return m, err
		}
		s, ok := d.(vmm.Snapshotter)
		if !ok {
			return m, api.NewError(api.CodeFailedPrecondition, "the "+d.Name()+" driver cannot pause or save a VM", "stop the VM and take a disk-only snapshot")
		}
		snap = s
	}
	f := r.Layout.VM(vm.ID)
	rootName := filepath.Base(f.RootfsQcow())
	rootSrc := f.RootfsQcow()
	if exists(f.Rootfs()) {
		rootName, rootSrc = filepath.Base(f.Rootfs()), f.Rootfs()
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return m, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return m, fmt.Errorf("%s already exists", dir)
		}
		return m, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	h := r.handle(vm)
	paused := false
	steps := []step{
		{name: "check-space", msg: "checking free space for the snapshot", do: func(ctx context.Context) error {
			need := int64(0)
			if o.Memory {
				need += int64(vm.MemoryMiB) << 20
			}
			if o.Disks {
				need += disk.AllocatedBytes(rootSrc, f.WorkDisk())
			}
			fs, err := hostinfo.StatFS(dir)
			if err != nil {
				return err
			}
			if fs.FreeBytes < need {
				return api.NewError(api.CodeResourceExhausted,
					fmt.Sprintf("not enough disk space for the snapshot of %s: it needs up to %s (memory %d MiB plus the disks) and %s has %s free",
						vm.Name, validate.FormatBytes(need), vm.MemoryMiB, filepath.Dir(dir), validate.FormatBytes(fs.FreeBytes)),
					"free space there, delete old snapshots (banger vm snapshot list "+vm.Name+"), or take a disk-only snapshot with --no-memory")
			}
			return nil
		}},
		{name: "manifest", msg: "recording kernel, initrd, image and VMM", do: func(ctx context.Context) (err error) {
			m, err = r.manifest(ctx, vm, rootName)
			return err
		}},
		{name: "pause", msg: "pausing " + vm.Name, do: func(ctx context.Context) error {
			if !running {
				return nil
			}
			if err := snap.Pause(ctx, h); err != nil {
				return err
			}
			paused = true
			return nil
		}, undo: func(ctx context.Context) {
			if paused {
				_ = snap.Resume(ctx, h)
			}
		}},
		{name: "save-state", msg: fmt.Sprintf("saving %d MiB of memory and the device state", vm.MemoryMiB), do: func(ctx context.Context) error {
			if !o.Memory {
				return nil
			}
			return snap.SaveState(ctx, h, dir)
		}},
		// The VM is paused (or stopped) and its VMM has flushed: the disks
		// hold exactly what the saved memory expects.
		{name: "copy-disks", msg: "copying the system and work disks", do: func(ctx context.Context) error {
			if !o.Disks {
				return nil
			}
			if _, err := disk.CloneRootfs(ctx, rootSrc, filepath.Join(dir, rootName)); err != nil {
				return err
			}
			_, err := disk.CloneRootfs(ctx, f.WorkDisk(), filepath.Join(dir, snapWorkDisk))
			return err
		}},
		{name: "write-manifest", msg: "writing the manifest", do: func(ctx context.Context) error {
			return writeManifest(dir, m)
		}},
		{name: "resume", msg: "resuming " + vm.Name, do: func(ctx context.Context) error {
			if !paused || !o.Resume {
				return nil
			}
			return snap.Resume(ctx, h)
		}},
	}
	if err := runSteps(ctx, "snapshot", steps, orNop(progress)); err != nil {
		return m, err
	}
	return m, nil
}

// manifest records what the VM runs on now.
func (r *Runtime) manifest(ctx context.Context, vm api.VM, rootName string) (api.SnapshotManifest, error) {
	b, err := r.Bundle()
	if err != nil {
		return api.SnapshotManifest{}, err
	}
	img, err := r.Image(ctx, vm.Image)
	if err != nil {
		return api.SnapshotManifest{}, err
	}
	kernel, initrd := bootFiles(b, img)
	m := api.SnapshotManifest{Kernel: kernel, Initrd: initrd, Image: img.Name, ImageSHA256: img.SHA256,
		VMM: vm.VMM, RootDisk: rootName, MemoryMiB: vm.MemoryMiB, VCPUs: vm.VCPUs}
	if m.KernelSHA256, _, err = disk.SHA256(kernel); err != nil {
		return m, fmt.Errorf("kernel: %w", err)
	}
	if initrd != "" {
		if m.InitrdSHA256, _, err = disk.SHA256(initrd); err != nil {
			return m, fmt.Errorf("initrd: %w", err)
		}
	}
	if vm.VMM != "" {
		if d, ok := r.Drivers[vm.VMM]; ok {
			if v, ok := d.(versioner); ok {
				m.VMMVersion, _ = v.VMMVersion(ctx)
			}
		}
	}
	return m, nil
}

func bootFiles(b *bundle.Bundle, img api.Image) (kernel, initrd string) {
	if img.KernelPath != "" {
		return img.KernelPath, img.InitrdPath
	}
	return b.KernelPath, b.InitrdPath
}

func writeManifest(dir string, m api.SnapshotManifest) error {
	b, _ := json.MarshalIndent(m, "", "  ")
	tmp := filepath.Join(dir, ManifestFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, ManifestFile))
}

// ReadManifest reads a complete snapshot directory's manifest.
func (r *Runtime) ReadManifest(dir string) (api.SnapshotManifest, error) { return ReadManifest(dir) }

// ReadManifest reads a complete snapshot directory's manifest.
func ReadManifest(dir string) (api.SnapshotManifest, error) {
	var m api.SnapshotManifest
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

// CheckManifest compares a snapshot's manifest with what vm would run on
// now and returns one line per piece that no longer matches. A disk-only
// snapshot needs only its image (the qcow2 system disk is an overlay on
// it); one with memory needs the same kernel, initrd and VMM build too.
func (r *Runtime) CheckManifest(ctx context.Context, vm api.VM, m api.SnapshotManifest, memory bool) ([]string, error) {
	now, err := r.manifest(ctx, vm, m.RootDisk)
	if err != nil {
		return nil, err
	}
	var bad []string
	if now.ImageSHA256 != m.ImageSHA256 {
		bad = append(bad, fmt.Sprintf("image %s was rebuilt (sha256 %.12s, the snapshot needs %.12s)", m.Image, now.ImageSHA256, m.ImageSHA256))
	}
	if !memory {
		return bad, nil
	}
	if now.KernelSHA256 != m.KernelSHA256 {
		bad = append(bad, fmt.Sprintf("kernel %s changed (sha256 %.12s, the snapshot needs %.12s)", now.Kernel, now.KernelSHA256, m.KernelSHA256))
	}
	if now.InitrdSHA256 != m.InitrdSHA256 {
		bad = append(bad, fmt.Sprintf("initrd %s changed (sha256 %.12s, the snapshot needs %.12s)", now.Initrd, now.InitrdSHA256, m.InitrdSHA256))
	}
	if vm.VMM != "" && m.VMM != vm.VMM {
		bad = append(bad, fmt.Sprintf("the VM now runs on %s, the snapshot was taken under %s", vm.VMM, m.VMM))
	}
	// A disk-only snapshot of a VM that never ran names no VMM.
	if d, ok := r.Drivers[m.VMM]; m.VMM != "" && !ok {
		bad = append(bad, "no "+m.VMM+" driver in this bangerd")
	} else if v, isV := d.(versioner); ok && isV && m.VMMVersion != "" {
		if have, err := v.VMMVersion(ctx); err == nil && have != m.VMMVersion {
			bad = append(bad, fmt.Sprintf("%s is now %q, the snapshot was saved by %q", m.VMM, have, m.VMMVersion))
		}
	}
	if now.MemoryMiB != m.MemoryMiB || now.VCPUs != m.VCPUs {
		bad = append(bad, fmt.Sprintf("the VM has %d vCPUs and %d MiB now, the snapshot %d vCPUs and %d MiB", now.VCPUs, now.MemoryMiB, m.VCPUs, m.MemoryMiB))
	}
	return bad, nil
}

// RestoreDisks replaces a stopped VM's disks with the snapshot's. Each disk
// is cloned next to its target and renamed over it, so a failure leaves the
// VM's disks as they were.
func (r *Runtime) RestoreDisks(ctx context.Context, vm api.VM, dir string, m api.SnapshotManifest) error {
	f := r.Layout.VM(vm.ID)
	root := f.RootfsQcow()
	other := f.Rootfs()
	if m.RootDisk == filepath.Base(f.Rootfs()) {
		root, other = f.Rootfs(), f.RootfsQcow()
	}
	pairs := [][2]string{{filepath.Join(dir, m.RootDisk), root}, {filepath.Join(dir, snapWorkDisk), f.WorkDisk()}}
	var tmps []string
	defer func() {
		for _, t := range tmps {
			_ = os.Remove(t)
		}
	}()
	for _, p := range pairs {
		tmp := p[1] + ".restore"
		_ = os.Remove(tmp)
		tmps = append(tmps, tmp)
		if _, err := disk.CloneRootfs(ctx, p[0], tmp); err != nil {
			return err
		}
	}
	for i, p := range pairs {
		if err := os.Rename(tmps[i], p[1]); err != nil {
			return err
		}
	}
	_ = os.Remove(other) // a system disk of the other format would win at boot
	return nil
}

// ResumeFrom starts vm's VMM from the state saved in dir and waits for the
// guest agent. vm's disks already hold the state's disks.
func (r *Runtime) ResumeFrom(ctx context.Context, vm api.VM, dir string, progress func(api.Progress)) (api.VM, error) {
	d, err := r.driverFor(vm)
	if err != nil {
		return vm, err
	}
	snap, ok := d.(vmm.Snapshotter)
	if !ok {
		return vm, api.NewError(api.CodeFailedPrecondition, "the "+d.Name()+" driver cannot restore saved memory", "restore a disk-only snapshot")
	}
	f := r.Layout.VM(vm.ID)
	var (
		b   *bundle.Bundle
		img api.Image
		h   vmm.Handle
	)
	tap := hostnet.TapName(vm.ID)
	vm.VMM = d.Name()
	steps := []step{
		{name: "load-bundle", msg: "kernel, initrd and image " + vm.Image, do: func(ctx context.Context) (err error) {
			if b, err = r.Bundle(); err != nil {
				return err
			}
			img, err = r.Image(ctx, vm.Image)
			return err
		}},
		{name: "network", msg: "bridge " + r.Config.Bridge + ", NAT and DNS", do: r.ensureNetwork},
		{name: "tap", msg: "tap " + tap + " on " + r.Config.Bridge, do: func(ctx context.Context) error {
			_ = r.Helper.TapDel(ctx, tap)
			return r.Helper.TapAdd(ctx, tap, r.Config.Bridge, r.UID)
		}, undo: func(ctx context.Context) { _ = r.Helper.TapDel(ctx, tap) }},
		{name: "restore-vmm", msg: "starting " + d.Name() + " from the saved state", do: func(ctx context.Context) (err error) {
			if err := os.MkdirAll(f.SockDir, 0o700); err != nil {
				return err
			}
			h, err = snap.Restore(ctx, r.spec(vm, b, img, d.Name(), tap), dir)
			return err
		}, undo: func(ctx context.Context) {
			_ = d.Stop(ctx, h, 0)
			r.closeSerial(vm.ID)
		}},
		{name: "wait-agent", msg: "waiting for the guest agent", do: func(ctx context.Context) error {
			vm.PID = h.PID
			if err := r.waitAgent(ctx, vm, f, progress); err != nil {
				return err
			}
			r.setGuestClock(ctx, vm, progress)
			return nil
		}},
	}
	if err := runSteps(ctx, "resume", steps, orNop(progress)); err != nil {
		return vm, err
	}
	now := time.Now().UTC()
	vm.State, vm.VMM, vm.PID, vm.StartedAt, vm.LastError, vm.Tap = api.VMRunning, h.Driver, h.PID, &now, "", tap
	if h.Driver == vmm.DriverFirecracker {
		vm.VsockPath = h.AgentSocket
	}
	return vm, nil
}

// resumePaused continues a VM left paused by a crash in the middle of a snapshot.
func (r *Runtime) resumePaused(ctx context.Context, vm api.VM) error {
	d, err := r.driverFor(vm)
	if err != nil {
		return err
	}
	if s, ok := d.(vmm.Snapshotter); ok {
		return s.Resume(ctx, r.handle(vm))
	}
	return nil
}

// SnapshotEntries lists the entries of a VM's snapshots directory, complete
// or not (names starting with "." are in-progress directories).
func (r *Runtime) SnapshotEntries(vm api.VM) []string {
	entries, _ := os.ReadDir(r.SnapshotsDir(vm))
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// SizeOnDisk is what a snapshot directory's files occupy.
func (r *Runtime) SizeOnDisk(dir string) int64 {
	entries, _ := os.ReadDir(dir)
	var paths []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".tmp") {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	return disk.AllocatedBytes(paths...)
}

func orNop(f func(api.Progress)) func(api.Progress) {
	if f == nil {
		return func(api.Progress) {}
	}
	return f
}

// setGuestClock sets a resumed guest's wall clock to the host's: the guest
// continues from the instant its memory was saved, so without this its
// clock is behind by however long the state sat on disk (a suspend over a
// weekend). Whole seconds, through the agent (`date -s @N` works with GNU
// and busybox date); a guest NTP client, when the image has one, does the
// rest. A failure is reported, not fatal: the guest runs either way.
func (r *Runtime) setGuestClock(ctx context.Context, vm api.VM, progress func(api.Progress)) {
	now := strconv.FormatInt(time.Now().Add(500*time.Millisecond).Unix(), 10)
	err := guestRun(ctx, agentclient.Client{Dial: r.dialer(vm)}, []string{"date", "-u", "-s", "@" + now}, nil)
	if err != nil {
		orNop(progress)(api.Progress{Step: "wait-agent", Message: "warning: the guest's clock was not set (it is behind by the time the state was saved): " + err.Error()})
	}
}
