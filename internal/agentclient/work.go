package agentclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/termsafe"
)

// maxMessage bounds the text of an agent's error shown to the user.
const maxMessage = 1000

// TooOldError is what a request for a feature an old agent lacks returns.
func TooOldError(feature string) *api.Error {
	return api.NewError(api.CodeFailedPrecondition,
		fmt.Sprintf("%s for %s: it predates agent protocol %d", tooOld, feature, agentproto.Version),
		"rebuild the VM's image with this banger (banger image build --name IMAGE --force), then banger vm restart NAME")
}

const tooOld = "the guest agent is too old"

// IsTooOld reports whether err is a TooOldError: the agent lacks the
// feature (a caller may fall back to an older way).
func IsTooOld(err error) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == api.CodeFailedPrecondition && strings.HasPrefix(ae.Message, tooOld)
}

// Conn is an upgraded agent connection (exec frames or a TCP stream). It
// reads what the response parser buffered before handing it over.
type Conn struct {
	net.Conn
	r io.Reader
}

func (c *Conn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the stream: a Unix socket shuts its write side,
// a yamux stream's Close sends FIN and keeps reading until the guest's.
func (c *Conn) CloseWrite() error {
	switch conn := c.Conn.(type) {
	case interface{ CloseWrite() error }:
		return conn.CloseWrite()
	case *yamux.Stream:
		return conn.Close()
	}
	return nil
}

// Exec starts req in the guest. On success the connection carries exec
// frames (agentproto): the first from the guest is TypeStarted.
func (c Client) Exec(ctx context.Context, req agentproto.ExecRequest) (*Conn, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	return c.upgrade(ctx, "exec", agentproto.ExecPath, body, agentproto.ExecUpgrade)
}

// Connect opens a TCP stream to port on the guest's loopback.
func (c Client) Connect(ctx context.Context, port int) (*Conn, error) {
	return c.upgrade(ctx, "port forwarding", agentproto.ConnectPath+"?port="+strconv.Itoa(port), nil, agentproto.ConnectUpgrade)
}

// Stat stats a guest path (absolute, or relative to /root).
func (c Client) Stat(ctx context.Context, path string) (agentproto.Stat, error) {
	var st agentproto.Stat
	err := c.work(ctx, "cp", http.MethodGet, agentproto.StatPath+"?path="+url.QueryEscape(path), nil, &st)
	return st, err
}

// maxDirResponseBytes bounds a directory listing's answer (max entries of
// at most 255-byte names, JSON-escaped).
const maxDirResponseBytes = 8 << 20

// ReadDir lists a guest directory (absolute, or relative to /root) by
// name, at most max entries (1 to agentproto.MaxDirEntries).
func (c Client) ReadDir(ctx context.Context, path string, max int) (agentproto.DirResult, error) {
	var res agentproto.DirResult
	q := url.Values{"path": {path}, "max": {strconv.Itoa(max)}}
	err := c.workLimit(ctx, "directory listings", http.MethodGet, agentproto.DirPath+"?"+q.Encode(), nil, &res, maxDirResponseBytes)
	if len(res.Entries) > max {
		res.Entries, res.Truncated = res.Entries[:max], true // the guest's word: bounded
	}
	return res, err
}

// Listeners lists the guest's listening TCP sockets.
func (c Client) Listeners(ctx context.Context) ([]agentproto.Listener, error) {
	var res agentproto.ListenersResult
	err := c.work(ctx, "listening-port reports", http.MethodGet, agentproto.ListenersPath, nil, &res)
	if len(res.Listeners) > 4096 {
		res.Listeners = res.Listeners[:4096] // the guest's word: bounded
	}
	return res.Listeners, err
}

// Put unpacks the tar stream r into the guest directory dir, its top entry
// renamed to name when set.
func (c Client) Put(ctx context.Context, dir, name string, r io.Reader) (agentproto.PutResult, error) {
	var res agentproto.PutResult
	q := url.Values{"dir": {dir}}
	if name != "" {
		q.Set("name", name)
	}
	err := c.work(ctx, "cp", http.MethodPut, agentproto.FilesPath+"?"+q.Encode(), r, &res)
	return res, err
}

// Get streams a tar of the guest path to w. A stream the guest cut short
// is an error (the archive reader sees it too).
func (c Client) Get(ctx context.Context, path string, recursive bool, w io.Writer) error {
	q := url.Values{"path": {path}}
	if recursive {
		q.Set("recursive", "1")
	}
	resp, conn, err := c.request(ctx, http.MethodGet, agentproto.FilesPath+"?"+q.Encode(), nil, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return responseError("cp", resp)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("copy from the guest: %w", err)
	}
	return nil
}

// work makes one request with an optional streamed body and decodes a
// bounded JSON answer into out.
func (c Client) work(ctx context.Context, feature, method, path string, body io.Reader, out any) error {
	return c.workLimit(ctx, feature, method, path, body, out, maxResponseBytes)
}

// workLimit is work with a bound on the answer other than maxResponseBytes.
func (c Client) workLimit(ctx context.Context, feature, method, path string, body io.Reader, out any, limit int) error {
	resp, conn, err := c.request(ctx, method, path, body, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return responseError(feature, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return fmt.Errorf("agent %s %s: read response: %w", method, path, err)
	}
	if len(data) > limit {
		return fmt.Errorf("agent %s %s: response larger than %d bytes", method, path, limit)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("agent %s %s: decode response: %w", method, path, err)
	}
	return nil
}

// upgrade sends a request asking to switch to proto and returns the
// connection after "101 Switching Protocols".
func (c Client) upgrade(ctx context.Context, feature, path string, body []byte, proto string) (*Conn, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	resp, conn, err := c.request(ctx, http.MethodPost, path, r, proto)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		return nil, responseError(feature, resp)
	}
	return &Conn{Conn: conn, r: resp.Body.(*upgradedBody).r}, nil
}

// request dials the agent and sends one HTTP/1.1 request on its own
// connection; the caller closes conn (and, unless 101, the body).
func (c Client) request(ctx context.Context, method, path string, body io.Reader, upgradeTo string) (*http.Response, net.Conn, error) {
	if c.Dial == nil {
		return nil, nil, fmt.Errorf("agent client has no Dial function")
	}
	conn, err := c.Dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	// Until the answer's headers are in, ctx bounds the exchange.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	req, err := http.NewRequest(method, "http://agent"+path, body)
	if err != nil {
		stop()
		conn.Close()
		return nil, nil, err
	}
	if upgradeTo != "" {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", upgradeTo)
	}
	if body != nil && req.ContentLength == 0 {
		req.ContentLength = -1 // chunked: a streamed tar
	}
	werr := make(chan error, 1)
	go func() { werr <- req.Write(conn) }()
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		err = <-werr
		resp.Body = &upgradedBody{r: br}
	} else if err != nil {
		if werr := <-werr; werr != nil {
			err = fmt.Errorf("%w (sending: %v)", err, werr)
		}
	}
	if !stop() || err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("agent %s %s: %w", method, path, err)
	}
	return resp, conn, nil
}

type upgradedBody struct{ r *bufio.Reader }

func (b *upgradedBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *upgradedBody) Close() error               { return nil }

// responseError turns an agent's non-success answer into an error: an old
// agent's 404 for a path it does not know becomes TooOldError, anything
// else the agent's own *api.Error, its text bounded and made safe to print.
func responseError(feature string, resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	var ae api.Error
	decoded := json.Unmarshal(data, &ae) == nil && ae.Message != ""
	if resp.StatusCode == http.StatusNotFound && (!decoded || strings.HasPrefix(ae.Message, "no agent endpoint")) {
		return TooOldError(feature)
	}
	if !decoded {
		return fmt.Errorf("agent answered %s: %q", resp.Status, truncate(data, 200))
	}
	return sanitize(&ae)
}

// sanitize bounds an agent's error text and makes it safe to print.
func sanitize(ae *api.Error) *api.Error {
	clean := func(s string) string {
		s = termsafe.String(s)
		if len(s) > maxMessage {
			s = s[:maxMessage] + "..."
		}
		return s
	}
	return &api.Error{Code: api.ErrorCode(clean(string(ae.Code))), Message: clean(ae.Message), Hint: clean(ae.Hint)}
}
