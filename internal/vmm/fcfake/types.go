package fcfake

// The fake keeps its own copies of Firecracker's request bodies rather than
// reusing the driver's types: a field the driver renames is then rejected
// here exactly as Firecracker would reject it (unknown field, or a required
// field missing). Pointers mark the fields whose presence is checked.

type machineConfig struct {
	VCPUCount       *int    `json:"vcpu_count"`
	MemSizeMib      *int    `json:"mem_size_mib"`
	SMT             *bool   `json:"smt,omitempty"`
	TrackDirtyPages *bool   `json:"track_dirty_pages,omitempty"`
	HugePages       *string `json:"huge_pages,omitempty"`
	CPUTemplate     *string `json:"cpu_template,omitempty"`
}

type bootSource struct {
	KernelImagePath *string `json:"kernel_image_path"`
	BootArgs        string  `json:"boot_args,omitempty"`
	InitrdPath      string  `json:"initrd_path,omitempty"`
}

type tokenBucket struct {
	Size         *int64 `json:"size"`
	OneTimeBurst *int64 `json:"one_time_burst,omitempty"`
	RefillTime   *int64 `json:"refill_time"`
}

type rateLimiter struct {
	Bandwidth *tokenBucket `json:"bandwidth,omitempty"`
	Ops       *tokenBucket `json:"ops,omitempty"`
}

type drive struct {
	DriveID      *string      `json:"drive_id"`
	IsRootDevice *bool        `json:"is_root_device"`
	PartUUID     string       `json:"partuuid,omitempty"`
	CacheType    string       `json:"cache_type,omitempty"`
	IsReadOnly   *bool        `json:"is_read_only,omitempty"`
	PathOnHost   string       `json:"path_on_host,omitempty"`
	RateLimiter  *rateLimiter `json:"rate_limiter,omitempty"`
	IOEngine     string       `json:"io_engine,omitempty"`
	Socket       string       `json:"socket,omitempty"`
}

type partialDrive struct {
	DriveID     *string      `json:"drive_id"`
	PathOnHost  string       `json:"path_on_host,omitempty"`
	RateLimiter *rateLimiter `json:"rate_limiter,omitempty"`
}

type networkInterface struct {
	IfaceID       *string      `json:"iface_id"`
	HostDevName   *string      `json:"host_dev_name"`
	GuestMAC      string       `json:"guest_mac,omitempty"`
	MTU           *int         `json:"mtu,omitempty"`
	RxRateLimiter *rateLimiter `json:"rx_rate_limiter,omitempty"`
	TxRateLimiter *rateLimiter `json:"tx_rate_limiter,omitempty"`
}

type vsockConfig struct {
	GuestCID *int64  `json:"guest_cid"`
	UDSPath  *string `json:"uds_path"`
	VsockID  string  `json:"vsock_id,omitempty"`
}

type loggerConfig struct {
	Level         string `json:"level,omitempty"`
	LogPath       string `json:"log_path,omitempty"`
	ShowLevel     *bool  `json:"show_level,omitempty"`
	ShowLogOrigin *bool  `json:"show_log_origin,omitempty"`
	Module        string `json:"module,omitempty"`
}

type metricsConfig struct {
	MetricsPath *string `json:"metrics_path"`
}

type serialConfig struct {
	SerialOutPath string       `json:"serial_out_path,omitempty"`
	RateLimiter   *tokenBucket `json:"rate_limiter,omitempty"`
}

type actionInfo struct {
	ActionType *string `json:"action_type"`
}

type vmState struct {
	State *string `json:"state"`
}

type instanceInfo struct {
	AppName    string `json:"app_name"`
	ID         string `json:"id"`
	State      string `json:"state"`
	VMMVersion string `json:"vmm_version"`
}

// fullConfig is GET /vm/config. Absent devices are omitted (the real
// Firecracker prints null for them).
type fullConfig struct {
	BootSource        *bootSource        `json:"boot-source,omitempty"`
	Drives            []drive            `json:"drives"`
	MachineConfig     machineConfig      `json:"machine-config"`
	NetworkInterfaces []networkInterface `json:"network-interfaces"`
	Vsock             *vsockConfig       `json:"vsock,omitempty"`
	Logger            *loggerConfig      `json:"logger,omitempty"`
	Metrics           *metricsConfig     `json:"metrics,omitempty"`
}

type snapshotCreateParams struct {
	SnapshotType string  `json:"snapshot_type,omitempty"`
	SnapshotPath *string `json:"snapshot_path"`
	MemFilePath  *string `json:"mem_file_path"`
}

type memoryBackend struct {
	BackendType *string `json:"backend_type"`
	BackendPath *string `json:"backend_path"`
}

type networkOverride struct {
	IfaceID     *string `json:"iface_id"`
	HostDevName *string `json:"host_dev_name"`
}

type vsockOverride struct {
	UDSPath *string `json:"uds_path"`
}

// snapshotLoadParams carries the deprecated fields too: Firecracker still
// accepts them.
type snapshotLoadParams struct {
	SnapshotPath        *string           `json:"snapshot_path"`
	MemFilePath         *string           `json:"mem_file_path,omitempty"`
	MemBackend          *memoryBackend    `json:"mem_backend,omitempty"`
	EnableDiffSnapshots bool              `json:"enable_diff_snapshots,omitempty"`
	TrackDirtyPages     bool              `json:"track_dirty_pages,omitempty"`
	ResumeVM            bool              `json:"resume_vm,omitempty"`
	NetworkOverrides    []networkOverride `json:"network_overrides,omitempty"`
	VsockOverride       *vsockOverride    `json:"vsock_override,omitempty"`
	ClockRealtime       bool              `json:"clock_realtime,omitempty"`
}
