// Package fcfake is a wire-level fake of the Firecracker v1.16.1 API, for
// tests and for end-to-end runs on machines without Firecracker. It speaks
// the same HTTP API on the same kind of Unix socket with the same status
// codes and rules (pre/post-boot, unknown fields, required fields, files
// opened at PUT time), and its hybrid vsock plays a guest agent that answers
// GET /healthz once the "guest" has started. It boots nothing. Snapshots
// (PUT /snapshot/create, /snapshot/load) write and read real files in the
// fake's own format, so a new fake process resumes the same "guest".
package fcfake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/banger-dev/banger/internal/envknob"
)

// VMMVersion is the Firecracker version the fake claims to be.
const VMMVersion = "1.16.1"

// AgentVersion is what the fake guest agent reports in /healthz.
const AgentVersion = "fake-firecracker"

// Options configure one fake Firecracker instance.
type Options struct {
	// ID is the instance id (--id); GET / reports it.
	ID string
	// Console receives the guest serial output when no PUT /serial names a
	// file, as Firecracker writes the serial console to its stdout.
	Console io.Writer
	// SkipTapCheck accepts any host_dev_name instead of requiring
	// /sys/class/net/<name> (for unit tests without root).
	SkipTapCheck bool
	// Fail lists calls ("PUT /boot-source") answered with 400 whatever the
	// body, to exercise a client's error paths.
	Fail []string
	// HangStop ignores SendCtrlAltDel (a guest that never reboots).
	HangStop bool
	// NoAgent plays a guest whose agent never comes up (a broken image), so
	// the VM manager's boot deadline can be exercised.
	NoAgent bool
	// Agent, when set, is a banger-agent binary the fake runs as its
	// guest's agent (on a Unix socket, from InstanceStart until exit) and
	// joins vsock connections to, instead of answering canned health.
	Agent string
	// Record, when set, sees every request (method, path, body) as received.
	Record func(method, path string, body []byte)
}

// OptionsFromEnv reads the fault-injection settings of the fake binary:
// FAKE_FC_FAIL="PUT /boot-source[,PUT /vsock...]", FAKE_FC_HANG_STOP=1 and
// FAKE_FC_SKIP_TAP_CHECK=1 (accept a tap that does not exist).
func OptionsFromEnv() Options {
	var o Options
	for _, f := range strings.Split(envknob.FakeFCFail.Value(), ",") {
		if f = strings.TrimSpace(f); f != "" {
			o.Fail = append(o.Fail, f)
		}
	}
	o.HangStop = envknob.FakeFCHangStop.On()
	o.SkipTapCheck = envknob.FakeFCSkipTapCheck.On()
	o.NoAgent = envknob.FakeFCNoAgent.On()
	o.Agent = envknob.FakeFCAgent.Value()
	return o
}

// Messages Firecracker uses for calls made in the wrong phase.
const (
	msgAfterStart  = "The requested operation is not supported after starting the microVM."
	msgBeforeStart = "The requested operation is not supported before starting the microVM."
)

// ctrlAltDelExitDelay is how long the fake "guest" takes to reboot after
// SendCtrlAltDel; the process then exits as Firecracker does with reboot=k.
const ctrlAltDelExitDelay = 50 * time.Millisecond

// maxBody mirrors Firecracker's default payload limit.
const maxBody = 51200

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// Serve answers the Firecracker API on l until ctx ends or the guest
// "reboots" after SendCtrlAltDel; both return nil. Like Firecracker, it
// leaves the socket files (API and vsock) in place.
func Serve(ctx context.Context, l net.Listener, opts Options) error {
	if opts.Console == nil {
		opts.Console = io.Discard
	}
	if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // Firecracker never deletes its socket
	}
	f := &fake{opts: opts, exit: make(chan struct{})}
	f.machine = defaultMachine()
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	var err error
	select {
	case <-ctx.Done():
	case <-f.exit:
	case err = <-served:
	}
	srv.Close()
	f.mu.Lock()
	f.stopAgent()
	if f.vsockL != nil {
		f.vsockL.Close()
	}
	if f.console != nil {
		f.console.Close()
	}
	if err == nil {
		err = f.exitErr
	}
	f.mu.Unlock()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

type fake struct {
	opts Options

	mu        sync.Mutex
	started   bool
	paused    bool
	startedAt time.Time
	bootID    string
	exiting   bool
	exitErr   error // why the process ends, when it is a failure
	exit      chan struct{}
	// bootPath is set by the first boot-specific configuration call;
	// after it a snapshot load is refused, as Firecracker does.
	bootPath bool
	// restored: the VM came from a snapshot (GET /vm/config then shows no
	// boot source, as Firecracker's does).
	restored bool

	machine machineConfig
	boot    *bootSource
	drives  []drive
	ifaces  []networkInterface
	vsock   *vsockConfig
	vsockL  net.Listener
	agent   *runningAgent // the real agent, with Options.Agent
	logger  *loggerConfig
	metrics *metricsConfig
	serial  *serialConfig
	console *os.File // serial_out_path opened at InstanceStart
}

func defaultMachine() machineConfig {
	one, mem, no, none := 1, 128, false, "None"
	no2 := false
	return machineConfig{VCPUCount: &one, MemSizeMib: &mem, SMT: &no, TrackDirtyPages: &no2, HugePages: &none}
}

// fault is a 400 answer.
type fault string

func faultf(format string, a ...any) fault { return fault(fmt.Sprintf(format, a...)) }

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeFault(w, faultf("Failed to read request body: %v", err))
		return
	}
	if f.opts.Record != nil {
		f.opts.Record(r.Method, r.URL.Path, body)
	}
	if len(body) > maxBody {
		writeFault(w, faultf("Request payload with size %d is larger than the limit of %d allowed by server.", len(body), maxBody))
		return
	}
	call := r.Method + " " + r.URL.Path
	for _, fail := range f.opts.Fail {
		if fail == call {
			writeFault(w, faultf("fake-firecracker: injected failure for %s (FAKE_FC_FAIL)", call))
			return
		}
	}
	f.mu.Lock()
	out, flt := f.route(r.Method, r.URL.Path, body)
	f.mu.Unlock()
	switch {
	case flt != "":
		writeFault(w, flt)
	case out != nil:
		data, _ := json.Marshal(out)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(data)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func writeFault(w http.ResponseWriter, msg fault) {
	data, _ := json.Marshal(map[string]string{"fault_message": string(msg)})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	w.Write(data)
}

// route dispatches one call with f.mu held. A non-nil out is a 200 JSON
// body; a non-empty fault a 400; neither a 204.
func (f *fake) route(method, path string, body []byte) (out any, flt fault) {
	resource, id, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	switch {
	case method == http.MethodGet && path == "/":
		return f.instanceInfo(), ""
	case method == http.MethodGet && path == "/vm/config":
		return f.fullConfig(), ""
	case method == http.MethodGet && path == "/machine-config":
		return f.machine, ""
	case method == http.MethodGet && path == "/version":
		return map[string]string{"firecracker_version": VMMVersion}, ""
	case method == http.MethodPut && path == "/machine-config":
		return nil, f.bootResource(func() fault { return f.putMachine(body) })
	case method == http.MethodPut && path == "/boot-source":
		return nil, f.bootResource(func() fault { return f.putBoot(body) })
	case method == http.MethodPut && resource == "drives" && id != "":
		return nil, f.bootResource(func() fault { return f.putDrive(id, body) })
	case method == http.MethodPatch && resource == "drives" && id != "":
		return nil, f.postBoot(func() fault { return f.patchDrive(id, body) })
	case method == http.MethodPut && resource == "network-interfaces" && id != "":
		return nil, f.bootResource(func() fault { return f.putIface(id, body) })
	case method == http.MethodPut && path == "/vsock":
		return nil, f.bootResource(func() fault { return f.putVsock(body) })
	case method == http.MethodPut && path == "/logger":
		return nil, f.preBoot(func() fault { return f.putLogger(body) })
	case method == http.MethodPut && path == "/metrics":
		return nil, f.preBoot(func() fault { return f.putMetrics(body) })
	case method == http.MethodPut && path == "/serial":
		return nil, f.preBoot(func() fault { return f.putSerial(body) })
	case method == http.MethodPut && path == "/actions":
		return nil, f.action(body)
	case method == http.MethodPatch && path == "/vm":
		return nil, f.postBoot(func() fault { return f.patchVM(body) })
	case method == http.MethodPut && path == "/snapshot/create":
		return nil, f.snapshotCreate(body)
	case method == http.MethodPut && path == "/snapshot/load":
		return nil, f.snapshotLoad(body)
	}
	return nil, faultf("Invalid request method and/or path: %s %s.", method, path)
}

func (f *fake) preBoot(do func() fault) fault {
	if f.started {
		return msgAfterStart
	}
	return do()
}

// bootResource is a pre-boot call that configures a boot-specific resource
// (machine, boot source, drive, network interface, vsock). Firecracker marks
// the boot path before it checks the body, so even a refused call rules out
// a later snapshot load; the logger, metrics and serial do not.
func (f *fake) bootResource(do func() fault) fault {
	if f.started {
		return msgAfterStart
	}
	f.bootPath = true
	return do()
}

func (f *fake) postBoot(do func() fault) fault {
	if !f.started {
		return msgBeforeStart
	}
	return do()
}

// decode parses a body strictly, as Firecracker's serde structs
// (deny_unknown_fields) do.
func decode(body []byte, v any) fault {
	if len(bytes.TrimSpace(body)) == 0 {
		return "Empty request body."
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return faultf("An error occurred when deserializing the json body of a request: %v.", err)
	}
	if dec.More() {
		return "An error occurred when deserializing the json body of a request: trailing characters."
	}
	return ""
}

func missing(field string) fault {
	return faultf("An error occurred when deserializing the json body of a request: missing field `%s`.", field)
}

func checkID(kind, pathID string, bodyID *string, field string) fault {
	if bodyID == nil {
		return missing(field)
	}
	if *bodyID != pathID {
		return faultf("The id from the path [%s] does not match the id from the body [%s]!", pathID, *bodyID)
	}
	if !idPattern.MatchString(pathID) {
		return faultf("Invalid %s id: %q: ids are made of [A-Za-z0-9_].", kind, pathID)
	}
	return ""
}

// openable reports a file Firecracker could not open.
func openable(what, path string, write bool) fault {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	fh, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return faultf("%s: %v", what, err)
	}
	fh.Close()
	return ""
}

func validRateLimiter(rl *rateLimiter) fault {
	if rl == nil {
		return ""
	}
	for _, tb := range []*tokenBucket{rl.Bandwidth, rl.Ops} {
		if tb == nil {
			continue
		}
		if tb.Size == nil {
			return missing("size")
		}
		if tb.RefillTime == nil {
			return missing("refill_time")
		}
		if *tb.Size < 0 || *tb.RefillTime < 0 || (tb.OneTimeBurst != nil && *tb.OneTimeBurst < 0) {
			return "Token bucket values must not be negative."
		}
	}
	return ""
}

func (f *fake) putMachine(body []byte) fault {
	var m machineConfig
	if flt := decode(body, &m); flt != "" {
		return flt
	}
	if m.VCPUCount == nil {
		return missing("vcpu_count")
	}
	if m.MemSizeMib == nil {
		return missing("mem_size_mib")
	}
	if *m.VCPUCount < 1 || *m.VCPUCount > 32 {
		return "The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled."
	}
	if m.SMT != nil && *m.SMT && *m.VCPUCount > 1 && *m.VCPUCount%2 == 1 {
		return "The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled."
	}
	if *m.MemSizeMib < 1 {
		return "The memory size (MiB) is invalid."
	}
	// A PUT resets omitted optional fields to their defaults.
	def := defaultMachine()
	if m.SMT == nil {
		m.SMT = def.SMT
	}
	if m.TrackDirtyPages == nil {
		m.TrackDirtyPages = def.TrackDirtyPages
	}
	if m.HugePages == nil {
		m.HugePages = def.HugePages
	}
	switch *m.HugePages {
	case "None", "2M":
	default:
		return faultf("unknown variant `%s`, expected `None` or `2M`", *m.HugePages)
	}
	if *m.HugePages == "2M" && *m.MemSizeMib%2 != 0 {
		return "The memory size (MiB) is invalid: with 2M huge pages it must be a multiple of 2."
	}
	if m.CPUTemplate != nil {
		switch *m.CPUTemplate {
		case "C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None":
		default:
			return faultf("unknown variant `%s` for cpu_template", *m.CPUTemplate)
		}
	}
	f.machine = m
	return ""
}

func (f *fake) putBoot(body []byte) fault {
	var b bootSource
	if flt := decode(body, &b); flt != "" {
		return flt
	}
	if b.KernelImagePath == nil {
		return missing("kernel_image_path")
	}
	if flt := openable("The kernel file cannot be opened", *b.KernelImagePath, false); flt != "" {
		return flt
	}
	if b.InitrdPath != "" {
		if flt := openable("The initrd file cannot be opened", b.InitrdPath, false); flt != "" {
			return flt
		}
	}
	f.boot = &b
	return ""
}

func (f *fake) putDrive(id string, body []byte) fault {
	var d drive
	if flt := decode(body, &d); flt != "" {
		return flt
	}
	if flt := checkID("drive", id, d.DriveID, "drive_id"); flt != "" {
		return flt
	}
	if d.IsRootDevice == nil {
		return missing("is_root_device")
	}
	switch d.CacheType {
	case "", "Unsafe", "Writeback":
	default:
		return faultf("unknown variant `%s`, expected `Unsafe` or `Writeback`", d.CacheType)
	}
	switch d.IOEngine {
	case "", "Sync", "Async":
	default:
		return faultf("unknown variant `%s`, expected `Sync` or `Async`", d.IOEngine)
	}
	if flt := validRateLimiter(d.RateLimiter); flt != "" {
		return flt
	}
	if d.Socket != "" {
		return "fake-firecracker does not support vhost-user block devices."
	}
	if d.PathOnHost == "" {
		return "Unable to create the virtio block device: path_on_host is required for a virtio-block drive."
	}
	ro := d.IsReadOnly != nil && *d.IsReadOnly
	if flt := openable("Unable to create the virtio block device: cannot open the backing file", d.PathOnHost, !ro); flt != "" {
		return flt
	}
	if *d.IsRootDevice {
		for _, o := range f.drives {
			if *o.IsRootDevice && *o.DriveID != id {
				return "A root block device already exists!"
			}
		}
	}
	for i, o := range f.drives {
		if *o.DriveID == id {
			f.drives[i] = d
			return ""
		}
	}
	f.drives = append(f.drives, d)
	return ""
}

func (f *fake) patchDrive(id string, body []byte) fault {
	var p partialDrive
	if flt := decode(body, &p); flt != "" {
		return flt
	}
	if flt := checkID("drive", id, p.DriveID, "drive_id"); flt != "" {
		return flt
	}
	if flt := validRateLimiter(p.RateLimiter); flt != "" {
		return flt
	}
	for i, d := range f.drives {
		if *d.DriveID != id {
			continue
		}
		if p.PathOnHost != "" {
			if flt := openable("Unable to patch the block device: cannot open the backing file", p.PathOnHost, true); flt != "" {
				return flt
			}
			f.drives[i].PathOnHost = p.PathOnHost
		}
		if p.RateLimiter != nil {
			f.drives[i].RateLimiter = p.RateLimiter
		}
		return ""
	}
	return faultf("Unable to patch the block device: no drive with id %s.", id)
}

func (f *fake) putIface(id string, body []byte) fault {
	var n networkInterface
	if flt := decode(body, &n); flt != "" {
		return flt
	}
	if flt := checkID("network interface", id, n.IfaceID, "iface_id"); flt != "" {
		return flt
	}
	if n.HostDevName == nil {
		return missing("host_dev_name")
	}
	if n.MTU != nil && (*n.MTU < 68 || *n.MTU > 65535) {
		return "The MTU must be between 68 and 65535."
	}
	if flt := validRateLimiter(n.RxRateLimiter); flt != "" {
		return flt
	}
	if flt := validRateLimiter(n.TxRateLimiter); flt != "" {
		return flt
	}
	if n.GuestMAC != "" {
		if _, err := net.ParseMAC(n.GuestMAC); err != nil {
			return faultf("Invalid guest MAC address %q: %v", n.GuestMAC, err)
		}
	}
	if !f.opts.SkipTapCheck {
		if _, err := os.Stat("/sys/class/net/" + *n.HostDevName); err != nil {
			return faultf("Could not create the network device: Open tap device failed: %s does not exist.", *n.HostDevName)
		}
	}
	for i, o := range f.ifaces {
		if *o.IfaceID == id {
			f.ifaces[i] = n
			return ""
		}
	}
	f.ifaces = append(f.ifaces, n)
	return ""
}

func (f *fake) putVsock(body []byte) fault {
	var v vsockConfig
	if flt := decode(body, &v); flt != "" {
		return flt
	}
	if v.GuestCID == nil {
		return missing("guest_cid")
	}
	if v.UDSPath == nil {
		return missing("uds_path")
	}
	if *v.GuestCID < 3 || *v.GuestCID > 0xFFFFFFFF {
		return faultf("Cannot create backend for vsock device: invalid guest CID %d (must be >= 3).", *v.GuestCID)
	}
	// Firecracker binds the socket during this call and refuses an
	// existing path.
	l, err := net.Listen("unix", *v.UDSPath)
	if err != nil {
		return faultf("Cannot create backend for vsock device: Error binding to the host-side Unix socket: %v", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if f.vsockL != nil {
		f.vsockL.Close()
	}
	f.vsock, f.vsockL = &v, l
	go f.serveVsock(l)
	return ""
}

func (f *fake) putLogger(body []byte) fault {
	var lg loggerConfig
	if flt := decode(body, &lg); flt != "" {
		return flt
	}
	switch strings.ToLower(lg.Level) {
	case "", "error", "warning", "info", "debug", "trace", "off":
	default:
		return faultf("Invalid log level %q.", lg.Level)
	}
	if lg.LogPath != "" {
		if flt := openable("Failed to open the log file", lg.LogPath, true); flt != "" {
			return flt
		}
	}
	f.logger = &lg
	return ""
}

func (f *fake) putMetrics(body []byte) fault {
	var m metricsConfig
	if flt := decode(body, &m); flt != "" {
		return flt
	}
	if m.MetricsPath == nil {
		return missing("metrics_path")
	}
	if f.metrics != nil {
		return "Reinitialization of metrics not allowed."
	}
	if flt := openable("Failed to open the metrics file", *m.MetricsPath, true); flt != "" {
		return flt
	}
	f.metrics = &m
	return ""
}

func (f *fake) putSerial(body []byte) fault {
	var s serialConfig
	if flt := decode(body, &s); flt != "" {
		return flt
	}
	if s.RateLimiter != nil {
		if flt := validRateLimiter(&rateLimiter{Bandwidth: s.RateLimiter}); flt != "" {
			return flt
		}
	}
	f.serial = &s
	return ""
}

func (f *fake) patchVM(body []byte) fault {
	var s vmState
	if flt := decode(body, &s); flt != "" {
		return flt
	}
	if s.State == nil {
		return missing("state")
	}
	switch *s.State {
	case "Paused":
		f.paused = true
	case "Resumed":
		f.paused = false
	default:
		return faultf("unknown variant `%s`, expected `Paused` or `Resumed`", *s.State)
	}
	return ""
}

func (f *fake) action(body []byte) fault {
	var a actionInfo
	if flt := decode(body, &a); flt != "" {
		return flt
	}
	if a.ActionType == nil {
		return missing("action_type")
	}
	switch *a.ActionType {
	case "InstanceStart":
		return f.preBoot(f.instanceStart)
	case "SendCtrlAltDel":
		return f.postBoot(f.ctrlAltDel)
	case "FlushMetrics":
		return f.postBoot(f.flushMetrics)
	}
	return faultf("unknown variant `%s`, expected one of `FlushMetrics`, `InstanceStart`, `SendCtrlAltDel`", *a.ActionType)
}

func (f *fake) instanceStart() fault {
	if f.boot == nil {
		return "Cannot start microvm without kernel configuration."
	}
	console := f.opts.Console
	if f.serial != nil && f.serial.SerialOutPath != "" {
		fh, err := os.OpenFile(f.serial.SerialOutPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return faultf("Cannot open the serial output file: %v", err)
		}
		f.console, console = fh, fh
	}
	f.started = true
	f.startedAt = time.Now()
	f.bootID = newBootID()
	fmt.Fprintf(console, "fake-firecracker: booting kernel %s with boot args %q\n", *f.boot.KernelImagePath, f.bootArgs())
	fmt.Fprintf(console, "fake-firecracker: %d vCPUs, %d MiB, %d drives, %d network interfaces\n",
		*f.machine.VCPUCount, *f.machine.MemSizeMib, len(f.drives), len(f.ifaces))
	return f.startGuestAgent(console)
}

// startGuestAgent brings up the guest's agent after a boot or a restore.
func (f *fake) startGuestAgent(console io.Writer) fault {
	if f.opts.NoAgent {
		fmt.Fprintln(console, "fake-firecracker: guest agent failed to start (FAKE_FC_NO_AGENT)")
	} else if f.opts.Agent != "" {
		if err := f.startAgent(console); err != nil {
			return faultf("Cannot start the guest agent %s: %v", f.opts.Agent, err)
		}
		fmt.Fprintf(console, "fake-firecracker: real guest agent %s serving vsock port %d\n", f.opts.Agent, f.agentPort())
	} else {
		fmt.Fprintf(console, "fake-firecracker: guest agent listening on vsock port %d\n", f.agentPort())
	}
	return ""
}

// bootArgs is the kernel command line as Firecracker would pass it: the
// root drive appends root=/dev/vda.
func (f *fake) bootArgs() string {
	args := f.boot.BootArgs
	for _, d := range f.drives {
		if *d.IsRootDevice {
			mode := "rw"
			if d.IsReadOnly != nil && *d.IsReadOnly {
				mode = "ro"
			}
			args = strings.TrimSpace(args + " root=/dev/vda " + mode)
		}
	}
	return args
}

func (f *fake) ctrlAltDel() fault {
	if f.opts.HangStop || f.exiting {
		return ""
	}
	f.exiting = true
	// The guest reboots (reboot=k) and Firecracker exits shortly after the
	// call has been answered.
	time.AfterFunc(ctrlAltDelExitDelay, func() { close(f.exit) })
	return ""
}

func (f *fake) flushMetrics() fault {
	if f.metrics == nil {
		return "Cannot flush metrics: the metrics system is not initialized."
	}
	fh, err := os.OpenFile(*f.metrics.MetricsPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return faultf("Cannot flush metrics: %v", err)
	}
	defer fh.Close()
	line, _ := json.Marshal(map[string]any{"utc_timestamp_ms": time.Now().UnixMilli(), "api_server": map[string]int{"process_startup_time_us": 0}})
	fh.Write(append(line, '\n'))
	return ""
}

func (f *fake) instanceInfo() instanceInfo {
	state := "Not started"
	if f.started {
		state = "Running"
		if f.paused {
			state = "Paused"
		}
	}
	id := f.opts.ID
	if id == "" {
		id = "anonymous-instance"
	}
	return instanceInfo{AppName: "Firecracker", ID: id, State: state, VMMVersion: VMMVersion}
}

func (f *fake) fullConfig() fullConfig {
	boot := f.boot
	if f.restored {
		boot = nil
	}
	c := fullConfig{
		BootSource:        boot,
		Drives:            append([]drive{}, f.drives...),
		MachineConfig:     f.machine,
		NetworkInterfaces: append([]networkInterface{}, f.ifaces...),
		Vsock:             f.vsock,
		Logger:            f.logger,
		Metrics:           f.metrics,
	}
	return c
}
