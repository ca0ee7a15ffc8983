package agentclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

// maxResponseBytes bounds what we read from the agent; its replies are a few
// hundred bytes.
const maxResponseBytes = 64 << 10

// maxResponseHeaderBytes bounds the reply's header (the guest writes it):
// net/http's default would read a megabyte of it.
const maxResponseHeaderBytes = 16 << 10

// Client talks HTTP to the guest agent over whatever Dial returns, e.g.
//
//	Client{Dial: func(ctx context.Context) (net.Conn, error) { return DialHybridVsock(ctx, path, 1024) }}
//	Client{Dial: serialSession.Dial}
type Client struct {
	Dial func(ctx context.Context) (net.Conn, error)
}

// Streamer opens bangerd's stream methods (a *client.Client does).
type Streamer interface {
	Stream(ctx context.Context, method string, params any) (net.Conn, error)
}

// ViaDaemon is VM name's agent as banger's programs reach it: each
// connection a vm.agent_connect stream through bangerd, whose client daemon
// returns (connecting on first use).
func ViaDaemon(name string, daemon func(context.Context) (Streamer, error)) Client {
	return Client{Dial: func(ctx context.Context) (net.Conn, error) {
		d, err := daemon(ctx)
		if err != nil {
			return nil, err
		}
		return d.Stream(ctx, api.MethodVMAgentConnect, api.VMRef{Name: name})
	}}
}

// Health calls GET /healthz. rtt covers the whole exchange: dial (vsock
// handshake or yamux ping), request and response.
func (c Client) Health(ctx context.Context) (api.AgentHealth, time.Duration, error) {
	var h api.AgentHealth
	start := time.Now()
	if err := c.get(ctx, "/healthz", &h); err != nil {
		return h, 0, err
	}
	rtt := time.Since(start)
	if h.Status != "ok" {
		return h, rtt, fmt.Errorf("agent reports status %q, want \"ok\"", h.Status)
	}
	return h, rtt, nil
}

// Info calls GET /v1/info.
func (c Client) Info(ctx context.Context) (api.AgentInfo, error) {
	var info api.AgentInfo
	err := c.get(ctx, "/v1/info", &info)
	return info, err
}

func (c Client) get(ctx context.Context, path string, out any) error {
	if c.Dial == nil {
		return errors.New("agent client has no Dial function")
	}
	transport := &http.Transport{
		DialContext:            func(ctx context.Context, _, _ string) (net.Conn, error) { return c.Dial(ctx) },
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
	defer transport.CloseIdleConnections()
	// The host name is a placeholder: Dial decides where requests go.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+path, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return fmt.Errorf("agent GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("agent GET %s: read response: %w", path, err)
	}
	if len(body) > maxResponseBytes {
		return fmt.Errorf("agent GET %s: response larger than %d bytes", path, maxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		var apiErr api.Error
		if json.Unmarshal(body, &apiErr) == nil && apiErr.Message != "" {
			return fmt.Errorf("agent GET %s: %s: %w", path, resp.Status, &apiErr)
		}
		return fmt.Errorf("agent GET %s: %s: %q", path, resp.Status, truncate(body, 200))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("agent GET %s: decode response: %w", path, err)
	}
	return nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// WaitHealthy polls c.Health every interval until the agent answers "ok" or
// ctx ends; the error then names the last failure.
func WaitHealthy(ctx context.Context, c Client, every time.Duration) (api.AgentHealth, error) {
	if every <= 0 {
		every = 200 * time.Millisecond
	}
	attempts := 0
	var lastErr, finalErr error
	for {
		attempts++
		h, _, err := c.Health(ctx)
		if err == nil {
			return h, nil
		}
		// An attempt cut short by ctx says less than the one before it;
		// keep both for the message.
		if ctx.Err() == nil {
			lastErr = err
		} else {
			finalErr = err
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			msg := fmt.Sprintf("guest agent not healthy after %d attempts", attempts)
			switch {
			case lastErr != nil && finalErr != nil:
				return api.AgentHealth{}, fmt.Errorf("%s (%w); last failure: %v; then: %v", msg, ctx.Err(), lastErr, finalErr)
			case lastErr != nil:
				return api.AgentHealth{}, fmt.Errorf("%s (%w); last failure: %v", msg, ctx.Err(), lastErr)
			default:
				return api.AgentHealth{}, fmt.Errorf("%s (%w); last failure: %v", msg, ctx.Err(), finalErr)
			}
		case <-t.C:
		}
	}
}
