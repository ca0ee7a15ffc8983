// Package agent is the guest side of banger's host<->guest channel: a small
// HTTP API (GET /healthz, GET /v1/info) that banger-agent serves inside every
// VM over AF_VSOCK (Firecracker) or a yamux-multiplexed virtio-serial port
// (QEMU without vhost-vsock).
package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
)

// Endpoint paths served by the agent.
const (
	HealthPath = "/healthz"
	InfoPath   = "/v1/info"
)

// Limits that keep a confused or hostile peer from tying up the agent.
const (
	maxBodyBytes   = 4 << 10 // the agent's endpoints take no body
	maxHeaderBytes = 8 << 10
)

// Options configure the handler. Zero fields take the defaults noted, so the
// real agent passes little and tests point ProcRoot at a fabricated tree.
type Options struct {
	Version  string
	Hostname func() (string, error) // default os.Hostname
	ProcRoot string                 // default "/proc"
	// RootDir is the filesystem whose usage /v1/info reports as "root"
	// (default "/"); tests point it at a temporary directory.
	RootDir string
	WorkDir string           // default "/root": where the work disk is mounted
	Now     func() time.Time // default time.Now; stamps the Date header
}

func (o Options) withDefaults() Options {
	if o.Hostname == nil {
		o.Hostname = os.Hostname
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.RootDir == "" {
		o.RootDir = "/"
	}
	if o.WorkDir == "" {
		o.WorkDir = "/root"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

type handler struct {
	opts Options
}

// NewHandler returns the agent's HTTP API.
func NewHandler(opts Options) http.Handler {
	return &handler{opts: opts.withDefaults()}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Date", h.opts.Now().UTC().Format(http.TimeFormat))
	// The work endpoints (exec, files, connect) read their own bodies.
	if work := h.workRoute(r.URL.Path); work != nil {
		work(w, r)
		return
	}
	// Drain a bounded amount of any body so a keep-alive peer stays in sync,
	// and refuse bodies beyond the limit instead of reading them.
	if r.Body == nil {
		r.Body = http.NoBody
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, api.NewError(api.CodeTooLarge,
			fmt.Sprintf("request body larger than %d bytes", maxBodyBytes),
			"the agent's endpoints take no request body"))
		return
	}

	var serve func() (any, error)
	switch r.URL.Path {
	case HealthPath:
		serve = func() (any, error) { return h.health() }
	case InfoPath:
		serve = func() (any, error) { return h.info() }
	default:
		writeError(w, http.StatusNotFound, api.NewError(api.CodeNotFound,
			fmt.Sprintf("no agent endpoint at %q", r.URL.Path),
			"the agent serves GET "+HealthPath+", GET "+InfoPath+" and the protocol "+strconv.Itoa(agentproto.Version)+" endpoints"))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, api.NewError(api.CodeBadRequest,
			fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path),
			"use GET "+r.URL.Path))
		return
	}
	body, err := serve()
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.NewError(api.CodeInternal, err.Error(),
			"check the guest's /proc and mounts; the agent logs to the journal (journalctl -u banger-agent)"))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (h *handler) health() (api.AgentHealth, error) {
	host, err := h.opts.Hostname()
	if err != nil {
		return api.AgentHealth{}, fmt.Errorf("read hostname: %w", err)
	}
	uptime, err := readUptime(filepath.Join(h.opts.ProcRoot, "uptime"))
	if err != nil {
		return api.AgentHealth{}, err
	}
	bootID, err := readTrimmed(filepath.Join(h.opts.ProcRoot, "sys/kernel/random/boot_id"))
	if err != nil {
		return api.AgentHealth{}, err
	}
	mounted, err := h.workDiskMounted()
	if err != nil {
		return api.AgentHealth{}, err
	}
	return api.AgentHealth{
		Status:          "ok",
		Version:         h.opts.Version,
		Protocol:        agentproto.Version,
		Features:        agentproto.Features,
		Hostname:        host,
		UptimeSeconds:   uptime,
		BootID:          bootID,
		WorkDiskMounted: mounted,
	}, nil
}

func (h *handler) info() (api.AgentInfo, error) {
	var info api.AgentInfo
	var err error
	info.Load1, info.Load5, info.Load15, err = readLoadavg(filepath.Join(h.opts.ProcRoot, "loadavg"))
	if err != nil {
		return info, err
	}
	info.MemTotalBytes, info.MemAvailBytes, err = readMeminfo(filepath.Join(h.opts.ProcRoot, "meminfo"))
	if err != nil {
		return info, err
	}
	info.RootTotalBytes, info.RootUsedBytes, err = diskUsage(h.opts.RootDir)
	if err != nil {
		return info, err
	}
	// Without the work disk, WorkDir is just a directory on the root
	// filesystem: report zeros rather than counting the root disk twice.
	mounted, err := h.workDiskMounted()
	if err != nil {
		return info, err
	}
	if mounted {
		info.WorkTotalBytes, info.WorkUsedBytes, err = diskUsage(h.opts.WorkDir)
		if err != nil {
			return info, err
		}
	}
	return info, nil
}

// workDiskMounted reports whether WorkDir is a mount point. /proc/mounts is a
// symlink to self/mounts on modern kernels; fabricated trees may have either.
func (h *handler) workDiskMounted() (bool, error) {
	path := filepath.Join(h.opts.ProcRoot, "mounts")
	data, err := readLimited(path)
	if errors.Is(err, os.ErrNotExist) {
		path = filepath.Join(h.opts.ProcRoot, "self/mounts")
		data, err = readLimited(path)
	}
	if err != nil {
		return false, err
	}
	return hasMountAt(data, h.opts.WorkDir), nil
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		// Only our own fixed types are marshalled; this cannot carry input.
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

func writeError(w http.ResponseWriter, status int, e *api.Error) {
	writeJSON(w, status, e)
}
