package firecracker

// Request and response bodies of the Firecracker v1.16.1 API. Field names are
// exactly the spec's (firecracker-v1.16.1.yaml, checked by the contract test
// in internal/vmm/fccontract); optional fields are omitempty so that an
// omitted field takes Firecracker's default.

// MachineConfig is PUT /machine-config. A PUT resets omitted optional fields.
type MachineConfig struct {
	VCPUCount       int    `json:"vcpu_count"`   // 1..32; 1 or even with SMT
	MemSizeMib      int    `json:"mem_size_mib"` // guest memory
	SMT             *bool  `json:"smt,omitempty"`
	TrackDirtyPages *bool  `json:"track_dirty_pages,omitempty"`
	HugePages       string `json:"huge_pages,omitempty"`   // "None" | "2M"
	CPUTemplate     string `json:"cpu_template,omitempty"` // deprecated upstream
}

// BootSource is PUT /boot-source.
type BootSource struct {
	KernelImagePath string `json:"kernel_image_path"`
	BootArgs        string `json:"boot_args,omitempty"`
	InitrdPath      string `json:"initrd_path,omitempty"`
}

// TokenBucket is one half of a RateLimiter.
type TokenBucket struct {
	Size         int64  `json:"size"`
	OneTimeBurst *int64 `json:"one_time_burst,omitempty"`
	RefillTime   int64  `json:"refill_time"` // milliseconds
}

// RateLimiter limits a device's bandwidth (bytes) and operations.
type RateLimiter struct {
	Bandwidth *TokenBucket `json:"bandwidth,omitempty"`
	Ops       *TokenBucket `json:"ops,omitempty"`
}

// Drive is PUT /drives/{drive_id}; DriveID must equal the path id.
type Drive struct {
	DriveID      string       `json:"drive_id"`
	IsRootDevice bool         `json:"is_root_device"`
	PartUUID     string       `json:"partuuid,omitempty"`
	CacheType    string       `json:"cache_type,omitempty"` // "Unsafe" | "Writeback"
	IsReadOnly   *bool        `json:"is_read_only,omitempty"`
	PathOnHost   string       `json:"path_on_host,omitempty"`
	RateLimiter  *RateLimiter `json:"rate_limiter,omitempty"`
	IOEngine     string       `json:"io_engine,omitempty"` // "Sync" | "Async"
	Socket       string       `json:"socket,omitempty"`    // vhost-user-block only
}

// PartialDrive is PATCH /drives/{drive_id} (after boot): a new backing file
// (the guest sees the new size: live grow) or new rate limits.
type PartialDrive struct {
	DriveID     string       `json:"drive_id"`
	PathOnHost  string       `json:"path_on_host,omitempty"`
	RateLimiter *RateLimiter `json:"rate_limiter,omitempty"`
}

// NetworkInterface is PUT /network-interfaces/{iface_id}.
type NetworkInterface struct {
	IfaceID       string       `json:"iface_id"`
	HostDevName   string       `json:"host_dev_name"`
	GuestMAC      string       `json:"guest_mac,omitempty"`
	MTU           int          `json:"mtu,omitempty"`
	RxRateLimiter *RateLimiter `json:"rx_rate_limiter,omitempty"`
	TxRateLimiter *RateLimiter `json:"tx_rate_limiter,omitempty"`
}

// Vsock is PUT /vsock. Firecracker binds UDSPath during the call.
type Vsock struct {
	GuestCID uint32 `json:"guest_cid"` // >= 3
	UDSPath  string `json:"uds_path"`
}

// Logger is PUT /logger. LogPath must exist (file or FIFO).
type Logger struct {
	Level         string `json:"level,omitempty"` // Error, Warning, Info, Debug, Trace, Off
	LogPath       string `json:"log_path,omitempty"`
	ShowLevel     *bool  `json:"show_level,omitempty"`
	ShowLogOrigin *bool  `json:"show_log_origin,omitempty"`
	Module        string `json:"module,omitempty"`
}

// Metrics is PUT /metrics. MetricsPath must exist (file or FIFO).
type Metrics struct {
	MetricsPath string `json:"metrics_path"`
}

// Serial is PUT /serial: where the guest serial console goes instead of the
// VMM's stdout.
type Serial struct {
	SerialOutPath string       `json:"serial_out_path,omitempty"`
	RateLimiter   *TokenBucket `json:"rate_limiter,omitempty"`
}

// Action types for PUT /actions.
const (
	ActionInstanceStart  = "InstanceStart"
	ActionSendCtrlAltDel = "SendCtrlAltDel"
	ActionFlushMetrics   = "FlushMetrics"
)

// InstanceActionInfo is PUT /actions.
type InstanceActionInfo struct {
	ActionType string `json:"action_type"`
}

// VM states for PATCH /vm.
const (
	VMPaused  = "Paused"
	VMResumed = "Resumed"
)

// VMState is PATCH /vm.
type VMState struct {
	State string `json:"state"`
}

// Instance states reported by GET /.
const (
	StateNotStarted = "Not started"
	StateRunning    = "Running"
	StatePaused     = "Paused"
)

// InstanceInfo is GET /.
type InstanceInfo struct {
	AppName    string `json:"app_name"`
	ID         string `json:"id"`
	State      string `json:"state"`
	VMMVersion string `json:"vmm_version"`
}

// FullVMConfig is GET /vm/config (also the --config-file format), limited to
// the sections banger configures; responses are decoded leniently, so the
// sections banger does not use (balloon, mmds-config, ...) are ignored.
type FullVMConfig struct {
	BootSource        *BootSource        `json:"boot-source,omitempty"`
	Drives            []Drive            `json:"drives,omitempty"`
	MachineConfig     *MachineConfig     `json:"machine-config,omitempty"`
	NetworkInterfaces []NetworkInterface `json:"network-interfaces,omitempty"`
	Vsock             *Vsock             `json:"vsock,omitempty"`
	Logger            *Logger            `json:"logger,omitempty"`
	Metrics           *Metrics           `json:"metrics,omitempty"`
}

// Snapshot types for PUT /snapshot/create. A Diff snapshot needs dirty page
// tracking (machine-config track_dirty_pages, or track_dirty_pages at load).
const (
	SnapshotFull = "Full"
	SnapshotDiff = "Diff"
)

// SnapshotCreateParams is PUT /snapshot/create (after boot, VM paused).
// Firecracker creates or truncates both files; their directory must exist.
type SnapshotCreateParams struct {
	SnapshotType string `json:"snapshot_type,omitempty"` // "Full" (default) | "Diff"
	SnapshotPath string `json:"snapshot_path"`           // microVM (device and vCPU) state
	MemFilePath  string `json:"mem_file_path"`           // guest memory, mem_size_mib long
}

// Memory backends for PUT /snapshot/load.
const (
	MemBackendFile = "File"
	MemBackendUffd = "Uffd"
)

// MemoryBackend is where a snapshot load takes guest memory from: a file
// (mapped privately) or a userfaultfd page server listening on a Unix socket.
type MemoryBackend struct {
	BackendType string `json:"backend_type"` // "File" | "Uffd"
	BackendPath string `json:"backend_path"`
}

// NetworkOverride points a restored network interface at another tap.
type NetworkOverride struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
}

// VsockOverride binds a restored vsock device's host socket elsewhere.
type VsockOverride struct {
	UDSPath string `json:"uds_path"`
}

// SnapshotLoadParams is PUT /snapshot/load, accepted only by a fresh
// process (nothing configured but the logger, metrics and serial). The
// deprecated mem_file_path and enable_diff_snapshots are not offered:
// MemBackend replaces them.
type SnapshotLoadParams struct {
	SnapshotPath     string            `json:"snapshot_path"`
	MemBackend       *MemoryBackend    `json:"mem_backend,omitempty"`
	TrackDirtyPages  bool              `json:"track_dirty_pages,omitempty"`
	ResumeVM         bool              `json:"resume_vm,omitempty"`
	NetworkOverrides []NetworkOverride `json:"network_overrides,omitempty"`
	VsockOverride    *VsockOverride    `json:"vsock_override,omitempty"`
	ClockRealtime    bool              `json:"clock_realtime,omitempty"` // x86_64 only
}
