// Package api holds the wire types shared by the banger CLI/TUI (client) and
// bangerd (server). It imports only the standard library so that both sides
// can depend on it without pulling in each other's internals.
//
// Transport: HTTP/1.1 over the daemon's Unix socket. Every call is
//
//	POST /v1/call   body: Request
//
// and every response is a stream of newline-delimited JSON Frames
// (Content-Type application/x-ndjson): zero or more progress frames, then
// exactly one frame carrying either a result or an error.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Version is the API version. The server rejects requests carrying another
// version with CodeVersionMismatch.
const Version = 1

// CallPath is the single HTTP endpoint.
const CallPath = "/v1/call"

// StreamUpgrade is the Upgrade header a client sends to call a stream
// method (vm.agent_connect): on success the daemon answers "101 Switching
// Protocols" instead of frames and the connection becomes the stream; on
// failure it answers the usual error frame.
const StreamUpgrade = "banger-stream/1"

// MaxRequestBytes bounds a request body; larger bodies get CodeTooLarge.
const MaxRequestBytes = 1 << 20

// Method names: the product's vocabulary.
const (
	MethodVMCreate    = "vm.create"
	MethodVMList      = "vm.list"
	MethodVMSummaries = "vm.summaries"
	MethodVMGet       = "vm.get"
	MethodVMSet       = "vm.set"
	MethodVMStart     = "vm.start"
	MethodVMStop      = "vm.stop"
	MethodVMRestart   = "vm.restart"
	MethodVMDelete    = "vm.delete"
	MethodVMHealth    = "vm.health"
	MethodVMSSHInfo   = "vm.ssh_info"
	MethodVMLogs      = "vm.logs"
	MethodVMSSHConfig = "vm.ssh_config"
	// MethodVMAgentConnect is a stream method: it upgrades the call's
	// connection to a byte stream to the VM's guest agent, on which the
	// caller speaks the agent protocol (internal/agentproto) itself.
	MethodVMAgentConnect = "vm.agent_connect"
	MethodSnapshotCreate = "vm.snapshot.create"
	MethodSnapshotList   = "vm.snapshot.list"
	MethodSnapshotDelete = "vm.snapshot.delete"
	MethodVMRestore      = "vm.restore"
	MethodVMSuspend      = "vm.suspend"
	MethodVMResume       = "vm.resume"
	MethodVMClone        = "vm.clone"
	MethodImageBuild     = "image.build"
	MethodImageRegister  = "image.register"
	MethodImageList      = "image.list"
	MethodImageGet       = "image.get"
	MethodImageVerify    = "image.verify"
	MethodImageDelete    = "image.delete"
	MethodImageImport    = "image.import"
	MethodHostResources  = "host.resources"
	MethodHostNAT        = "host.nat"
	MethodHostTeardown   = "host.teardown"
	MethodDaemonInfo     = "daemon.info"
	MethodDaemonStop     = "daemon.stop"
	MethodDoctorRun      = "doctor.run"
	MethodBundleBuild    = "bundle.build"
	MethodBundleShow     = "bundle.show"
)

// Request is the body of every call.
type Request struct {
	Version int             `json:"version"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// Frame is one line of a response stream.
type Frame struct {
	Progress *Progress       `json:"progress,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    *Error          `json:"error,omitempty"`
}

// Progress reports a step of a long operation (image build, VM boot).
type Progress struct {
	Step    string `json:"step"`              // short stable name, e.g. "debootstrap", "wait-agent"
	Message string `json:"message,omitempty"` // human text, e.g. one line of script output
	Current int64  `json:"current,omitempty"`
	Total   int64  `json:"total,omitempty"`
}

// ErrorCode classifies failures so clients can react without parsing text.
type ErrorCode string

const (
	CodeInvalidArgument    ErrorCode = "invalid_argument"    // bad input; message says what and how to fix
	CodeNotFound           ErrorCode = "not_found"           // no such VM / image
	CodeAlreadyExists      ErrorCode = "already_exists"      // name taken
	CodeConflict           ErrorCode = "conflict"            // wrong state (e.g. VM running)
	CodeFailedPrecondition ErrorCode = "failed_precondition" // host not ready (missing tool, no driver, doctor check failed)
	CodeResourceExhausted  ErrorCode = "resource_exhausted"  // subnet full, not enough memory/disk
	CodeTimeout            ErrorCode = "timeout"             // deadline passed (boot, agent)
	CodeBadRequest         ErrorCode = "bad_request"         // malformed JSON
	CodeUnknownMethod      ErrorCode = "unknown_method"
	CodeTooLarge           ErrorCode = "too_large"
	CodeVersionMismatch    ErrorCode = "version_mismatch"
	CodeInternal           ErrorCode = "internal"
	CodeProvisionFailed    ErrorCode = "provision_failed" // a provisioning script, copy or ready check failed; the VM is kept, stopped
)

// Error is the wire form of a failure. It implements error so that the client
// can return it directly; use errors.As to inspect Code.
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	Hint    string    `json:"hint,omitempty"` // the fix: a command or config line
}

func (e *Error) Error() string {
	if e.Hint != "" {
		return e.Message + " (hint: " + e.Hint + ")"
	}
	return e.Message
}

// Report writes err as banger's programs print a failure: "prog: message",
// then "  hint: ..." on its own line when err is an *Error with a fix.
func Report(w io.Writer, prog string, err error) {
	var ae *Error
	if errors.As(err, &ae) {
		fmt.Fprintf(w, "%s: %s\n", prog, ae.Message)
		if ae.Hint != "" {
			fmt.Fprintf(w, "  hint: %s\n", ae.Hint)
		}
		return
	}
	fmt.Fprintf(w, "%s: %v\n", prog, err)
}

// Errorf-style constructors keep call sites short.
func NewError(code ErrorCode, msg, hint string) *Error {
	return &Error{Code: code, Message: msg, Hint: hint}
}

// VMState is the lifecycle state of a VM.
type VMState string

const (
	VMStopped  VMState = "stopped"
	VMStarting VMState = "starting"
	VMRunning  VMState = "running"
	VMStopping VMState = "stopping"
	VMError    VMState = "error" // last start/stop failed; LastError says why
	// VMSuspended: memory and devices saved to disk (vm suspend), no VMM
	// process; vm resume continues where the guest was.
	VMSuspended VMState = "suspended"
)

// VM is a persistent development VM.
type VM struct {
	ID        string  `json:"id"`   // short hex id, used in file and tap names
	Name      string  `json:"name"` // DNS label, unique
	Image     string  `json:"image"`
	VCPUs     int     `json:"vcpus"`
	MemoryMiB int     `json:"memory_mib"`
	DiskBytes int64   `json:"disk_bytes"` // work disk size
	State     VMState `json:"state"`
	VMM       string  `json:"vmm,omitempty"` // "firecracker" | "qemu" once started
	IP        string  `json:"ip,omitempty"`
	MAC       string  `json:"mac,omitempty"`
	Tap       string  `json:"tap,omitempty"`
	VsockPath string  `json:"vsock_path,omitempty"`
	VsockCID  uint32  `json:"vsock_cid,omitempty"`
	PID       int     `json:"pid,omitempty"`
	// DiskAllocatedBytes is what the rootfs clone and work disk really occupy
	// on the host (allocated blocks, not apparent size).
	DiskAllocatedBytes int64      `json:"disk_allocated_bytes"`
	LastError          string     `json:"last_error,omitempty"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
	StartedAt          *time.Time `json:"started_at,omitempty"`
	// Publish is the VM's persistent port forwards (vm create/set
	// --publish); bangerd serves them while the VM runs.
	Publish []PortForward `json:"publish,omitempty"`
	// AutoForward: the VM's guest listening ports are forwarded to the same
	// ports on the host's 127.0.0.1; nil follows config.toml's auto_forward.
	AutoForward *bool `json:"auto_forward,omitempty"`
	// Forwards is what bangerd forwards for the VM right now, each with
	// its problem if it could not (vm.get and vm.list fill it).
	Forwards []ForwardStatus `json:"forwards,omitempty"`
	// Provision is the VM's provisioning record, when it has one (vm.get
	// fills it).
	Provision *VMProvision `json:"provision,omitempty"`
}

// ForwardStatus is one forward bangerd serves (or failed to).
type ForwardStatus struct {
	PortForward
	Auto  bool   `json:"auto,omitempty"`  // followed from the guest's listening ports
	Error string `json:"error,omitempty"` // e.g. the host port is in use
}

// VMCreateParams: pointer fields distinguish "omitted" (use the configured
// default) from an explicit value (validated; zero or negative is rejected).
type VMCreateParams struct {
	Name      string  `json:"name"`
	Image     *string `json:"image,omitempty"`
	VCPUs     *int    `json:"vcpus,omitempty"`
	MemoryMiB *int    `json:"memory_mib,omitempty"`
	DiskBytes *int64  `json:"disk_bytes,omitempty"`
	NoStart   bool    `json:"no_start,omitempty"`
	// Publish: persistent port forwards, [HOST_ADDR:]HOST_PORT[:GUEST_PORT].
	Publish     []string `json:"publish,omitempty"`
	AutoForward *bool    `json:"auto_forward,omitempty"`
	// Provisioning (vm create --provision/--copy/--ready): absolute host
	// paths of shell scripts run once, in order, as root at the first
	// boot; files or trees placed in the guest before them; and what must
	// hold before the VM counts as running ("tcp:PORT" or "cmd:COMMAND").
	Provision []string        `json:"provision,omitempty"`
	Copy      []ProvisionCopy `json:"copy,omitempty"`
	Ready     string          `json:"ready,omitempty"`
}

// ProvisionCopy is one --copy SRC:DST: an absolute host path and a guest
// path (relative paths are under /root).
type ProvisionCopy struct {
	Src string `json:"src"`
	Dst string `json:"dst"`
}

// VMProvision is a VM's provisioning record (vm show): what runs at its
// first boot and how far it got.
type VMProvision struct {
	// State: "pending" (first boot to come), "done", or "failed" (the next
	// start resumes at the script that failed).
	State       string   `json:"state"`
	Scripts     []string `json:"scripts,omitempty"`
	ScriptsDone int      `json:"scripts_done"`
	Copies      int      `json:"copies,omitempty"`
	CopiesDone  bool     `json:"copies_done,omitempty"`
	Ready       string   `json:"ready,omitempty"`
	Error       string   `json:"error,omitempty"`
	LogPath     string   `json:"log_path,omitempty"`
}

// VMRef names a VM by name or id.
type VMRef struct {
	Name string `json:"name"`
}

type VMSetParams struct {
	Name      string `json:"name"`
	VCPUs     *int   `json:"vcpus,omitempty"`
	MemoryMiB *int   `json:"memory_mib,omitempty"`
	DiskBytes *int64 `json:"disk_bytes,omitempty"`
	// Publish adds persistent port forwards; Unpublish removes those on
	// the given host ports. Both apply at once to a running VM.
	Publish     []string `json:"publish,omitempty"`
	Unpublish   []int    `json:"unpublish,omitempty"`
	AutoForward *bool    `json:"auto_forward,omitempty"`
}

// VMSetResult tells the user when the change takes effect.
type VMSetResult struct {
	VM VM `json:"vm"`
	// PendingRestart is true when the VM is running and the change applies at
	// its next start.
	PendingRestart bool   `json:"pending_restart"`
	Note           string `json:"note,omitempty"`
}

type VMStopParams struct {
	Name string `json:"name"`
	// Force skips the graceful shutdown and kills the VMM.
	Force bool `json:"force,omitempty"`
}

type VMDeleteParams struct {
	Name string `json:"name"`
	// Force stops a running VM first instead of refusing.
	Force bool `json:"force,omitempty"`
}

type VMListResult struct {
	VMs []VM `json:"vms"`
}

// VMSummary is a VM as the `banger vm list` table shows it. vm.summaries
// returns these: it reads 9 columns instead of 18 and sends about 60% of
// vm.list's bytes (the full records stay with vm.list).
type VMSummary struct {
	ID                 string    `json:"id"`
	Name               string    `json:"name"`
	State              VMState   `json:"state"`
	IP                 string    `json:"ip,omitempty"`
	VCPUs              int       `json:"vcpus"`
	MemoryMiB          int       `json:"memory_mib"`
	DiskBytes          int64     `json:"disk_bytes"`
	DiskAllocatedBytes int64     `json:"disk_allocated_bytes"`
	Image              string    `json:"image"`
	CreatedAt          time.Time `json:"created_at"`
}

type VMSummariesResult struct {
	VMs []VMSummary `json:"vms"`
}

// AgentHealth is the guest agent's GET /healthz body.
type AgentHealth struct {
	Status  string `json:"status"` // "ok"
	Version string `json:"version"`
	// Protocol and Features say what work the agent does (agentproto);
	// an agent from before exec reports neither.
	Protocol        int      `json:"protocol,omitempty"`
	Features        []string `json:"features,omitempty"`
	Hostname        string   `json:"hostname"`
	UptimeSeconds   float64  `json:"uptime_seconds"`
	BootID          string   `json:"boot_id"`
	WorkDiskMounted bool     `json:"work_disk_mounted"`
}

// AgentInfo is the guest agent's GET /v1/info body.
type AgentInfo struct {
	Load1          float64 `json:"load1"`
	Load5          float64 `json:"load5"`
	Load15         float64 `json:"load15"`
	MemTotalBytes  int64   `json:"mem_total_bytes"`
	MemAvailBytes  int64   `json:"mem_available_bytes"`
	RootTotalBytes int64   `json:"root_total_bytes"`
	RootUsedBytes  int64   `json:"root_used_bytes"`
	WorkTotalBytes int64   `json:"work_total_bytes"`
	WorkUsedBytes  int64   `json:"work_used_bytes"`
}

type VMHealthResult struct {
	Name      string       `json:"name"`
	State     VMState      `json:"state"`
	Healthy   bool         `json:"healthy"`
	Agent     *AgentHealth `json:"agent,omitempty"`
	RTTMillis float64      `json:"rtt_ms,omitempty"`
	Error     string       `json:"error,omitempty"`
}

// VMSSHInfo is what the CLI needs to run the system ssh.
type VMSSHInfo struct {
	Name           string `json:"name"`
	User           string `json:"user"`
	Host           string `json:"host"`
	Port           int    `json:"port"`
	KeyPath        string `json:"key_path"`
	KnownHostsPath string `json:"known_hosts_path"`
	HostKeyAlias   string `json:"host_key_alias"` // stable per VM, so a rebuilt VM's new key is detected
}

// PortForward forwards HostAddr:HostPort on the host to GuestPort on the
// guest's loopback, over the guest agent.
type PortForward struct {
	HostAddr  string `json:"host_addr"`
	HostPort  int    `json:"host_port"`
	GuestPort int    `json:"guest_port"`
}

// VMSSHConfigResult is `banger ssh-config`: OpenSSH Host blocks for the
// VMs, and the file bangerd keeps them in (what --install includes).
type VMSSHConfigResult struct {
	Text string `json:"text"`
	Path string `json:"path"`
}

type VMLogsParams struct {
	Name string `json:"name"`
	// TailBytes limits the returned console log to its last N bytes (0 = all).
	TailBytes int64 `json:"tail_bytes,omitempty"`
	// Offset returns the log from this byte offset on (used by `logs -f`).
	Offset int64 `json:"offset,omitempty"`
	// Provision returns the output of the VM's provisioning scripts
	// instead of the console.
	Provision bool `json:"provision,omitempty"`
}

type VMLogsResult struct {
	Path   string `json:"path"`
	Data   string `json:"data"`
	Offset int64  `json:"offset"` // offset after Data; pass back to follow
}

// Image is a registered root filesystem image.
type Image struct {
	Name          string    `json:"name"`
	Distro        string    `json:"distro"` // "debian" | "void" | "custom"
	Suite         string    `json:"suite,omitempty"`
	RootfsPath    string    `json:"rootfs_path"`
	KernelPath    string    `json:"kernel_path,omitempty"` // empty = bundle kernel
	InitrdPath    string    `json:"initrd_path,omitempty"` // empty = bundle initrd
	SizeBytes     int64     `json:"size_bytes"`
	SHA256        string    `json:"sha256"`
	KernelVersion string    `json:"kernel_version,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	// Source and Digest: where an imported image came from (image import):
	// its reference and its manifest digest.
	Source string `json:"source,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// ImageImportParams: image.import makes an image from an OCI image.
type ImageImportParams struct {
	Name string `json:"name"`
	// Ref is a registry reference, oci:DIR[:TAG] or docker-archive:FILE.
	Ref       string `json:"ref"`
	SizeBytes *int64 `json:"size_bytes,omitempty"`
	// Packages are installed with the image's own package manager (apt-get,
	// dnf or apk).
	Packages []string `json:"packages,omitempty"`
	// Force replaces an image of that name imported from another digest.
	Force bool `json:"force,omitempty"`
}

type ImageBuildParams struct {
	Name      string   `json:"name"`
	Distro    string   `json:"distro,omitempty"` // default "debian"
	Suite     string   `json:"suite,omitempty"`  // Debian suite, default "bookworm"
	SizeBytes *int64   `json:"size_bytes,omitempty"`
	Packages  []string `json:"packages,omitempty"` // extra packages
	// Void only.
	Libc        string `json:"libc,omitempty"`         // "glibc" (default) | "musl"
	FromTarball string `json:"from_tarball,omitempty"` // offline path
	// Force rebuilds even if an image of that name exists (replacing it).
	Force bool `json:"force,omitempty"`
}

type ImageRegisterParams struct {
	Name       string `json:"name"`
	RootfsPath string `json:"rootfs_path"`
	KernelPath string `json:"kernel_path,omitempty"`
	InitrdPath string `json:"initrd_path,omitempty"`
	Distro     string `json:"distro,omitempty"`
}

type ImageRef struct {
	Name string `json:"name"`
}

type ImageListResult struct {
	Images []Image `json:"images"`
}

type ImageVerifyResult struct {
	Image  string        `json:"image"`
	Passed bool          `json:"passed"`
	Checks []CheckResult `json:"checks"`
}

// CheckStatus is the outcome of a doctor or verify check.
type CheckStatus string

const (
	CheckOK   CheckStatus = "ok"
	CheckWarn CheckStatus = "warn"
	CheckFail CheckStatus = "fail"
	// CheckSkip: the check does not apply here (e.g. vm-stopped when no VM
	// is named); Detail says why. It never blocks an operation.
	CheckSkip CheckStatus = "skip"
)

type CheckResult struct {
	Name   string      `json:"name"`
	Scope  string      `json:"scope,omitempty"`
	Status CheckStatus `json:"status"`
	Detail string      `json:"detail,omitempty"`
	Fix    string      `json:"fix,omitempty"` // exact command or config line
}

type DoctorParams struct {
	Scopes []string `json:"scopes,omitempty"` // empty = all
}

type DoctorResult struct {
	Checks []CheckResult `json:"checks"`
}

// HostResources feeds the TUI's capacity row.
type HostResources struct {
	CPUs                int   `json:"cpus"`
	MemoryBytes         int64 `json:"memory_bytes"`
	MemoryAvailBytes    int64 `json:"memory_available_bytes"`
	FSBytes             int64 `json:"fs_bytes"` // filesystem holding banger's state
	FSFreeBytes         int64 `json:"fs_free_bytes"`
	VCPUsReserved       int   `json:"vcpus_reserved"`        // by running VMs
	MemoryReservedBytes int64 `json:"memory_reserved_bytes"` // by running VMs
	DiskAllocatedBytes  int64 `json:"disk_allocated_bytes"`  // all VMs' disks, allocated blocks
}

type HostNATParams struct {
	Enable bool `json:"enable"`
}

type HostTeardownParams struct {
	Force bool `json:"force,omitempty"`
}

type HostTeardownResult struct {
	Removed []string `json:"removed"`
}

type DaemonInfo struct {
	Version    string    `json:"version"`
	BuildID    string    `json:"build_id"`
	APIVersion int       `json:"api_version"`
	PID        int       `json:"pid"`
	StartedAt  time.Time `json:"started_at"`
	Socket     string    `json:"socket"`
	StateDir   string    `json:"state_dir"`
	LogPath    string    `json:"log_path,omitempty"`
	VMM        string    `json:"vmm,omitempty"`        // driver new VMs would use
	VMMReason  string    `json:"vmm_reason,omitempty"` // why (e.g. "no /dev/kvm: QEMU under TCG, slow")
	Reconciled []string  `json:"reconciled,omitempty"` // what start-up reconcile fixed
	// TestSwitches are the test-only environment switches (NAME=value) the
	// daemon runs with; none in real use.
	TestSwitches []string `json:"test_switches,omitempty"`
}

type DaemonStopParams struct {
	StopVMs bool `json:"stop_vms,omitempty"`
}

type BundleBuildParams struct {
	// Force rebuilds even when a complete bundle exists.
	Force bool `json:"force,omitempty"`
}

// BundleInfo describes the runtime bundle in use.
type BundleInfo struct {
	Dir           string `json:"dir"`
	Legacy        bool   `json:"legacy"` // loaded from the fixed-name layout without bundle.json
	KernelPath    string `json:"kernel_path"`
	KernelVersion string `json:"kernel_version,omitempty"`
	InitrdPath    string `json:"initrd_path,omitempty"`
	ModulesDir    string `json:"modules_dir,omitempty"`
	RootfsPath    string `json:"rootfs_path,omitempty"`
	AgentPath     string `json:"agent_path"`
	SSHKeyPath    string `json:"ssh_key_path"`
	SSHPubKeyPath string `json:"ssh_pub_key_path"`
}

// Snapshot is a saved state of a VM: its two disks, and its memory and
// device state when HasMemory.
type Snapshot struct {
	VMID      string    `json:"vm_id"`
	VM        string    `json:"vm"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	HasMemory bool      `json:"has_memory"`
	// SizeBytes is what the snapshot's files occupy on the host.
	SizeBytes int64            `json:"size_bytes"`
	Manifest  SnapshotManifest `json:"manifest"`
}

// SnapshotManifest records what a snapshot needs to be restored: a memory
// snapshot resumes only on the same kernel, initrd, image and VMM build.
type SnapshotManifest struct {
	Kernel       string `json:"kernel"`
	KernelSHA256 string `json:"kernel_sha256"`
	Initrd       string `json:"initrd,omitempty"`
	InitrdSHA256 string `json:"initrd_sha256,omitempty"`
	Image        string `json:"image"`
	ImageSHA256  string `json:"image_sha256"`
	VMM          string `json:"vmm"`
	VMMVersion   string `json:"vmm_version,omitempty"`
	// RootDisk is the root disk file name in the snapshot ("rootfs.qcow2"
	// or "rootfs.ext4").
	RootDisk  string `json:"root_disk"`
	MemoryMiB int    `json:"memory_mib"`
	VCPUs     int    `json:"vcpus"`
}

// SnapshotCreateParams: vm.snapshot.create.
type SnapshotCreateParams struct {
	VM   string `json:"vm"`
	Name string `json:"name,omitempty"` // default: a time stamp
	// NoMemory saves the disks only (a restore boots from them).
	NoMemory bool `json:"no_memory,omitempty"`
	// Stop leaves a running VM stopped after the snapshot.
	Stop bool `json:"stop,omitempty"`
}

// SnapshotRef names one snapshot of one VM (vm.snapshot.delete, vm.restore).
type SnapshotRef struct {
	VM   string `json:"vm"`
	Name string `json:"name"`
}

// SnapshotListParams: vm.snapshot.list.
type SnapshotListParams struct {
	VM string `json:"vm"`
}

// SnapshotListResult: vm.snapshot.list.
type SnapshotListResult struct {
	Snapshots []Snapshot `json:"snapshots"`
}

// VMRestoreParams: vm.restore.
type VMRestoreParams struct {
	VM       string `json:"vm"`
	Snapshot string `json:"snapshot"`
	// NoSafety skips the snapshot of the current state taken before it is
	// discarded.
	NoSafety bool `json:"no_safety,omitempty"`
}

// VMRestoreResult: the restored VM and the safety snapshot's name ("" when
// none was taken).
type VMRestoreResult struct {
	VM     VM     `json:"vm"`
	Safety string `json:"safety_snapshot,omitempty"`
}

// VMCloneParams: vm.clone.
type VMCloneParams struct {
	Source string `json:"source"`
	Name   string `json:"name"`
	// Snapshot clones from one of Source's snapshots instead of its
	// current state.
	Snapshot string `json:"snapshot,omitempty"`
}
