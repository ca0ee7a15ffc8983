package fcfake

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Snapshots. The fake writes real files: the state file is its own JSON
// (Firecracker's is a versioned binary format nothing else reads) holding
// everything a new fake process needs to resume the same "guest": machine
// config, boot source (the agent's port and hostname come from its boot
// args), drives, network interfaces, vsock, and the guest's boot id and
// uptime. The memory file is mem_size_mib long and sparse; its first bytes
// name the guest it belongs to, so a load that pairs a state file with
// another snapshot's memory fails instead of resuming a wrong guest.
//
// clock_realtime is accepted and has no effect: the fake guest's uptime
// continues from the snapshot's either way.

// snapshotFormat tags the fake's state files.
const snapshotFormat = "fake-firecracker-snapshot/1"

// memoryMagic starts the fake's guest memory, followed by the boot id.
const memoryMagic = "fake-firecracker guest memory, boot "

// Messages Firecracker uses for the snapshot calls.
const (
	msgCreatePrefix       = "Create snapshot error: "
	msgLoadPrefix         = "Load snapshot error: "
	msgRestorePrefix      = msgLoadPrefix + "Failed to restore from snapshot: "
	msgLoadNotAllowed     = msgLoadPrefix + "Loading a microVM snapshot not allowed after configuring boot-specific resources."
	msgSaveWhileRunning   = msgCreatePrefix + "Cannot save the microVM state: Operation not allowed: save/restore unavailable while running"
	msgDiffWithoutTrack   = msgCreatePrefix + "Diff snapshots are not allowed on uVMs with dirty page tracking disabled."
	msgMemTooManyFields   = "An error occurred when deserializing the json body of a request: too many fields: either `mem_backend` or `mem_file_path` exclusively is required."
	msgMemMissingField    = "An error occurred when deserializing the json body of a request: missing field: either `mem_backend` or `mem_file_path` is required."
	msgUnknownNetworkDev  = msgRestorePrefix + "Failed to get snapshot state from file: Unknown Network Device."
	restoreFailureExitLag = 50 * time.Millisecond
)

type snapshotState struct {
	Format     string             `json:"format"`
	VMMVersion string             `json:"vmm_version"`
	Machine    machineConfig      `json:"machine_config"`
	Boot       *bootSource        `json:"boot_source"`
	Drives     []drive            `json:"drives"`
	Ifaces     []networkInterface `json:"network_interfaces"`
	Vsock      *vsockConfig       `json:"vsock,omitempty"`
	Guest      guestState         `json:"guest"`
}

// guestState is what the fake "guest" keeps in its memory.
type guestState struct {
	BootID        string  `json:"boot_id"`
	UptimeSeconds float64 `json:"uptime_seconds"`
}

// snapshotCreate is PUT /snapshot/create: after boot, VM paused.
func (f *fake) snapshotCreate(body []byte) fault {
	var p snapshotCreateParams
	if flt := decode(body, &p); flt != "" {
		return flt
	}
	if p.SnapshotPath == nil {
		return missing("snapshot_path")
	}
	if p.MemFilePath == nil {
		return missing("mem_file_path")
	}
	switch p.SnapshotType {
	case "", "Full", "Diff":
	default:
		return faultf("An error occurred when deserializing the json body of a request: unknown variant `%s`, expected `Full` or `Diff`.", p.SnapshotType)
	}
	if !f.started {
		return msgBeforeStart
	}
	if p.SnapshotType == "Diff" && !*f.machine.TrackDirtyPages {
		return msgDiffWithoutTrack
	}
	if !f.paused {
		return msgSaveWhileRunning
	}
	st := snapshotState{
		Format:     snapshotFormat,
		VMMVersion: VMMVersion,
		Machine:    f.machine,
		Boot:       f.boot,
		Drives:     f.drives,
		Ifaces:     f.ifaces,
		Vsock:      f.vsock,
		Guest:      guestState{BootID: f.bootID, UptimeSeconds: f.uptime().Seconds()},
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return faultf(msgCreatePrefix+"Cannot serialize the microVM state: %v", err)
	}
	// Firecracker creates or truncates both files and syncs them.
	if err := writeSynced(*p.SnapshotPath, func(fh *os.File) error { _, err := fh.Write(data); return err }); err != nil {
		return faultf(msgCreatePrefix+"Cannot perform %s on the snapshot backing file: %v", err.op, err.err)
	}
	size := int64(*f.machine.MemSizeMib) << 20
	if err := writeSynced(*p.MemFilePath, func(fh *os.File) error {
		if err := fh.Truncate(size); err != nil {
			return err
		}
		_, err := fh.WriteAt([]byte(memoryMagic+f.bootID+"\n"), 0)
		return err
	}); err != nil {
		return faultf(msgCreatePrefix+"Cannot perform %s on the memory backing file: %v", err.op, err.err)
	}
	return ""
}

type fileError struct {
	op  string
	err error
}

// writeSynced creates or truncates path, fills it and syncs it.
func writeSynced(path string, fill func(*os.File) error) *fileError {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return &fileError{"open", err}
	}
	defer fh.Close()
	if err := fill(fh); err != nil {
		return &fileError{"write", err}
	}
	if err := fh.Sync(); err != nil {
		return &fileError{"sync_all", err}
	}
	return nil
}

// snapshotLoad is PUT /snapshot/load: only on a fresh process. Like
// Firecracker, a load that fails after its argument checks leaves the
// process "too dirty to recover": it answers, then exits with an error.
func (f *fake) snapshotLoad(body []byte) fault {
	var p snapshotLoadParams
	if flt := decode(body, &p); flt != "" {
		return flt
	}
	if p.SnapshotPath == nil {
		return missing("snapshot_path")
	}
	switch {
	case p.MemBackend != nil && p.MemFilePath != nil:
		return msgMemTooManyFields
	case p.MemBackend == nil && p.MemFilePath == nil:
		return msgMemMissingField
	}
	memPath := ""
	if p.MemFilePath != nil {
		memPath = *p.MemFilePath
	} else {
		if p.MemBackend.BackendType == nil {
			return missing("backend_type")
		}
		if p.MemBackend.BackendPath == nil {
			return missing("backend_path")
		}
		switch *p.MemBackend.BackendType {
		case "File":
		case "Uffd":
			return "fake-firecracker does not support the Uffd memory backend (no page-fault handler to serve)."
		default:
			return faultf("An error occurred when deserializing the json body of a request: unknown variant `%s`, expected `File` or `Uffd`.", *p.MemBackend.BackendType)
		}
		memPath = *p.MemBackend.BackendPath
	}
	for _, o := range p.NetworkOverrides {
		if o.IfaceID == nil {
			return missing("iface_id")
		}
		if o.HostDevName == nil {
			return missing("host_dev_name")
		}
	}
	if p.VsockOverride != nil && p.VsockOverride.UDSPath == nil {
		return missing("uds_path")
	}
	if f.started {
		return msgAfterStart
	}
	if f.bootPath {
		return msgLoadNotAllowed
	}
	if flt := f.restore(p, memPath); flt != "" {
		f.fatal(fmt.Errorf("snapshot load failed: %s", flt))
		return flt
	}
	return ""
}

// fatal makes the process exit with err shortly after the current answer.
func (f *fake) fatal(err error) {
	if f.exiting {
		return
	}
	f.exiting = true
	f.exitErr = err
	time.AfterFunc(restoreFailureExitLag, func() { close(f.exit) })
}

// restore rebuilds the VM from the snapshot files; nothing is kept on error
// (the process exits anyway).
func (f *fake) restore(p snapshotLoadParams, memPath string) fault {
	data, err := os.ReadFile(*p.SnapshotPath)
	if err != nil {
		return faultf(msgRestorePrefix+"Failed to get snapshot state from file: Failed to open snapshot file: %v", err)
	}
	var st snapshotState
	if err := json.Unmarshal(data, &st); err != nil || st.Format != snapshotFormat {
		return faultf(msgRestorePrefix+"Failed to get snapshot state from file: Failed to load snapshot state from file: %s is not a fake-firecracker snapshot state file", *p.SnapshotPath)
	}
	if st.VMMVersion != VMMVersion {
		return faultf(msgRestorePrefix+"Failed to get snapshot state from file: the snapshot was made by Firecracker %s, this is %s", st.VMMVersion, VMMVersion)
	}
	if st.Machine.MemSizeMib == nil || st.Machine.VCPUCount == nil || st.Boot == nil || st.Boot.KernelImagePath == nil {
		return faultf(msgRestorePrefix+"Failed to get snapshot state from file: %s lacks the machine configuration", *p.SnapshotPath)
	}
	if flt := checkMemoryFile(memPath, int64(*st.Machine.MemSizeMib)<<20, st.Guest.BootID); flt != "" {
		return flt
	}

	ifaces := append([]networkInterface{}, st.Ifaces...)
	for _, o := range p.NetworkOverrides {
		found := false
		for i, n := range ifaces {
			if *n.IfaceID == *o.IfaceID {
				name := *o.HostDevName
				ifaces[i].HostDevName = &name
				found = true
			}
		}
		if !found {
			return msgUnknownNetworkDev
		}
	}
	// The devices are opened again: drives, taps, the vsock socket.
	for _, d := range st.Drives {
		ro := d.IsReadOnly != nil && *d.IsReadOnly
		if flt := openable(msgRestorePrefix+"Failed to build microVM from snapshot: Cannot restore devices: block device "+*d.DriveID, d.PathOnHost, !ro); flt != "" {
			return flt
		}
	}
	if !f.opts.SkipTapCheck {
		for _, n := range ifaces {
			if _, err := os.Stat("/sys/class/net/" + *n.HostDevName); err != nil {
				return faultf(msgRestorePrefix+"Failed to build microVM from snapshot: Cannot restore devices: Open tap device failed: %s does not exist.", *n.HostDevName)
			}
		}
	}
	vsock := st.Vsock
	if p.VsockOverride != nil {
		if vsock == nil {
			return msgRestorePrefix + "Failed to build microVM from snapshot: a vsock override was given but the snapshot has no vsock device."
		}
		v := *vsock
		path := *p.VsockOverride.UDSPath
		v.UDSPath = &path
		vsock = &v
	}
	var vsockL net.Listener
	if vsock != nil {
		l, err := net.Listen("unix", *vsock.UDSPath)
		if err != nil {
			return faultf(msgRestorePrefix+"Failed to build microVM from snapshot: Cannot restore devices: vsock: Error binding to the host-side Unix socket: %v", err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		vsockL = l
	}
	console := f.opts.Console
	if f.serial != nil && f.serial.SerialOutPath != "" {
		fh, err := os.OpenFile(f.serial.SerialOutPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			if vsockL != nil {
				vsockL.Close()
			}
			return faultf(msgRestorePrefix+"Cannot open the serial output file: %v", err)
		}
		f.console, console = fh, fh
	}

	machine := st.Machine
	track := p.TrackDirtyPages || p.EnableDiffSnapshots
	machine.TrackDirtyPages = &track
	f.machine, f.boot, f.drives, f.ifaces, f.vsock = machine, st.Boot, st.Drives, ifaces, vsock
	f.restored = true
	f.started = true
	f.paused = !p.ResumeVM
	f.bootID = st.Guest.BootID
	f.startedAt = time.Now().Add(-time.Duration(st.Guest.UptimeSeconds * float64(time.Second)))
	if vsockL != nil {
		f.vsockL = vsockL
		go f.serveVsock(vsockL)
	}
	taps := make([]string, 0, len(ifaces))
	for _, n := range ifaces {
		taps = append(taps, *n.IfaceID+"="+*n.HostDevName)
	}
	uds := ""
	if vsock != nil {
		uds = *vsock.UDSPath
	}
	fmt.Fprintf(console, "fake-firecracker: restored guest (boot id %s) from %s, taps [%s], vsock %s, resumed %v\n",
		f.bootID, *p.SnapshotPath, strings.Join(taps, " "), uds, p.ResumeVM)
	if flt := f.startGuestAgent(console); flt != "" {
		return flt
	}
	return ""
}

// checkMemoryFile checks the memory file is this guest's and large enough.
func checkMemoryFile(path string, size int64, bootID string) fault {
	fh, err := os.Open(path)
	if err != nil {
		return faultf(msgRestorePrefix+"Failed to load guest memory: %v", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return faultf(msgRestorePrefix+"Failed to load guest memory: %v", err)
	}
	if fi.Size() < size {
		return faultf(msgRestorePrefix+"Failed to load guest memory: %s holds %d bytes, the snapshot's guest has %d", path, fi.Size(), size)
	}
	line, _ := bufio.NewReader(fh).ReadString('\n')
	if line != memoryMagic+bootID+"\n" {
		return faultf(msgRestorePrefix+"Failed to load guest memory: %s is not the memory of the snapshot's guest (boot %s)", path, bootID)
	}
	return ""
}

// uptime is how long the guest has been up.
func (f *fake) uptime() time.Duration { return time.Since(f.startedAt) }
