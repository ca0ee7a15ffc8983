package firecracker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Client talks to one Firecracker process over its API Unix socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the API socket at path. It does not
// connect until the first call.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		// One VMM, one short-lived caller at a time: no idle pool needed.
		DisableKeepAlives: true,
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Socket is the API socket path the client talks to.
func (c *Client) Socket() string { return c.socket }

// APIError is a call Firecracker refused (any non-2xx answer). Its message
// is Firecracker's fault_message; Method and Path name the call.
type APIError struct {
	Method       string
	Path         string
	Status       int
	FaultMessage string
}

func (e *APIError) Error() string {
	msg := e.FaultMessage
	if msg == "" {
		msg = "(no fault_message)"
	}
	return fmt.Sprintf("firecracker answered HTTP %d: %s", e.Status, msg)
}

// GetInstanceInfo is GET /.
func (c *Client) GetInstanceInfo(ctx context.Context) (InstanceInfo, error) {
	var info InstanceInfo
	err := c.do(ctx, http.MethodGet, "/", nil, &info)
	return info, err
}

// GetVMConfig is GET /vm/config.
func (c *Client) GetVMConfig(ctx context.Context) (FullVMConfig, error) {
	var cfg FullVMConfig
	err := c.do(ctx, http.MethodGet, "/vm/config", nil, &cfg)
	return cfg, err
}

// PutMachineConfig is PUT /machine-config (before boot).
func (c *Client) PutMachineConfig(ctx context.Context, m MachineConfig) error {
	return c.do(ctx, http.MethodPut, "/machine-config", m, nil)
}

// PutBootSource is PUT /boot-source (before boot).
func (c *Client) PutBootSource(ctx context.Context, b BootSource) error {
	return c.do(ctx, http.MethodPut, "/boot-source", b, nil)
}

// PutDrive is PUT /drives/{d.DriveID} (before boot).
func (c *Client) PutDrive(ctx context.Context, d Drive) error {
	return c.do(ctx, http.MethodPut, "/drives/"+url.PathEscape(d.DriveID), d, nil)
}

// PatchDrive is PATCH /drives/{d.DriveID} (after boot).
func (c *Client) PatchDrive(ctx context.Context, d PartialDrive) error {
	return c.do(ctx, http.MethodPatch, "/drives/"+url.PathEscape(d.DriveID), d, nil)
}

// PutNetworkInterface is PUT /network-interfaces/{n.IfaceID} (before boot).
func (c *Client) PutNetworkInterface(ctx context.Context, n NetworkInterface) error {
	return c.do(ctx, http.MethodPut, "/network-interfaces/"+url.PathEscape(n.IfaceID), n, nil)
}

// PutVsock is PUT /vsock (before boot).
func (c *Client) PutVsock(ctx context.Context, v Vsock) error {
	return c.do(ctx, http.MethodPut, "/vsock", v, nil)
}

// PutLogger is PUT /logger.
func (c *Client) PutLogger(ctx context.Context, l Logger) error {
	return c.do(ctx, http.MethodPut, "/logger", l, nil)
}

// PutMetrics is PUT /metrics.
func (c *Client) PutMetrics(ctx context.Context, m Metrics) error {
	return c.do(ctx, http.MethodPut, "/metrics", m, nil)
}

// PutSerial is PUT /serial (before boot).
func (c *Client) PutSerial(ctx context.Context, s Serial) error {
	return c.do(ctx, http.MethodPut, "/serial", s, nil)
}

// PutAction is PUT /actions with one of the Action* types.
func (c *Client) PutAction(ctx context.Context, actionType string) error {
	return c.do(ctx, http.MethodPut, "/actions", InstanceActionInfo{ActionType: actionType}, nil)
}

// PatchVM is PATCH /vm with VMPaused or VMResumed (after boot).
func (c *Client) PatchVM(ctx context.Context, state string) error {
	return c.do(ctx, http.MethodPatch, "/vm", VMState{State: state}, nil)
}

// PutSnapshotCreate is PUT /snapshot/create: the VM must be paused.
func (c *Client) PutSnapshotCreate(ctx context.Context, p SnapshotCreateParams) error {
	return c.do(ctx, http.MethodPut, "/snapshot/create", p, nil)
}

// PutSnapshotLoad is PUT /snapshot/load, on a fresh process only. A load
// that fails past its argument checks ends the Firecracker process.
func (c *Client) PutSnapshotLoad(ctx context.Context, p SnapshotLoadParams) error {
	return c.do(ctx, http.MethodPut, "/snapshot/load", p, nil)
}

// do sends one call. Bodies go with a Content-Length (Firecracker does not
// read chunked bodies). A refused call returns *APIError; a transport
// failure is returned as is (the caller names the call).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data) // net/http sets Content-Length from it
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://localhost"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("API socket %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var f struct {
			FaultMessage string `json:"fault_message"`
		}
		if json.Unmarshal(data, &f) != nil || f.FaultMessage == "" {
			f.FaultMessage = string(bytes.TrimSpace(data))
		}
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, FaultMessage: f.FaultMessage}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}
