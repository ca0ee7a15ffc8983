// Package client talks to bangerd over its Unix socket: it sends a call,
// reads the NDJSON frame stream (progress, then a result or an error) and
// turns error frames back into *api.Error.
package client

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
	"sync"
	"sync/atomic"
	"time"

	framejson "github.com/segmentio/encoding/json"

	"github.com/banger-dev/banger/internal/api"
)

// Client calls one daemon socket.
type Client struct {
	Socket string
	http   *http.Client
	spare  atomic.Pointer[spareConn]
}

// spareConn is a connection made before the first call or stream
// (EnsureDaemon's check that the daemon accepts), which that call uses
// instead of dialing again.
type spareConn struct {
	conn net.Conn
	at   time.Time
}

// spareMaxAge keeps a spare connection well inside bangerd's 10 s
// ReadHeaderTimeout, after which it would have closed it.
const spareMaxAge = 2 * time.Second

// New returns a client for the daemon listening on socket.
func New(socket string) *Client {
	c := &Client{Socket: socket}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return c.dial(ctx)
		},
		MaxIdleConns:    4,
		IdleConnTimeout: 30 * time.Second,
	}
	c.http = &http.Client{Transport: tr}
	return c
}

// dial connects to the socket, or hands out the spare connection.
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	if s := c.spare.Swap(nil); s != nil {
		if time.Since(s.at) < spareMaxAge {
			return s.conn, nil
		}
		s.conn.Close()
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", c.Socket)
}

// keepSpare hands conn, just dialed to the socket, to the next call.
func (c *Client) keepSpare(conn net.Conn) {
	if old := c.spare.Swap(&spareConn{conn: conn, at: time.Now()}); old != nil {
		old.conn.Close()
	}
}

// UnreachableError means no daemon answered on the socket.
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach bangerd at %s: %v", e.Socket, e.Err)
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// Call invokes method with params and decodes the result into result (may
// be nil). onProgress (may be nil) receives progress frames as they arrive.
// A daemon-side failure comes back as *api.Error.
func (c *Client) Call(ctx context.Context, method string, params, result any, onProgress func(api.Progress)) error {
	req := api.Request{Version: api.Version, Method: method}
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("encode %s params: %w", method, err)
		}
		req.Params = b
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return c.CallRaw(ctx, body, result, onProgress)
}

// CallRaw sends body as is (tests use it to send malformed requests).
func (c *Client) CallRaw(ctx context.Context, body []byte, result any, onProgress func(api.Progress)) error {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://bangerd"+api.CallPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &UnreachableError{Socket: c.Socket, Err: err}
	}
	defer resp.Body.Close()
	err = readFrames(resp.Body, resp.ContentLength, result, onProgress)
	var ae *api.Error
	if err != nil && !errors.As(err, &ae) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readFrames reads a response's frames: progress to onProgress, then the
// result into result, or the error.
//
// Frames are decoded with github.com/segmentio/encoding/json, a drop-in
// for encoding/json that decodes the same values (TestFramesDecodeAsEncodingJSON)
// about three times faster: with 1,000 VMs, encoding/json's decoding of
// vm.list's ~320 KB was most of the round trip.
//
// size is the body's length when the daemon sent it (-1 when not): a reply
// without progress frames comes with its length, and is then read at once
// into a buffer of that size, not gathered in a growing one, whose fresh
// pages cost a large list most of its reading.
func readFrames(body io.Reader, size int64, result any, onProgress func(api.Progress)) error {
	fr := frameReaders.Get().(*frameReader)
	defer frameReaders.Put(fr)
	next := fr.readLine
	if 0 < size && size <= maxSizedReply {
		if int64(cap(fr.line)) < size {
			fr.line = make([]byte, size)
		}
		buf := fr.line[:size]
		n, end := io.ReadFull(body, buf)
		buf = buf[:n]
		if end == nil || errors.Is(end, io.ErrUnexpectedEOF) {
			end = io.EOF // what follows the last line: the body's end, or a cut
		}
		next = func() ([]byte, error) {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				line := buf
				buf = nil
				return line, end
			}
			line := buf[:i+1]
			buf = buf[i+1:]
			return line, nil
		}
	} else {
		fr.r.Reset(body)
		defer fr.r.Reset(nil) // the pool must not keep the body
	}
	for {
		line, err := next()
		if len(bytes.TrimSpace(line)) > 0 {
			// One pass: the result decodes straight into the caller's value
			// (an api.Frame would hold it as raw bytes and decode twice).
			f := struct {
				Progress *api.Progress `json:"progress"`
				Result   any           `json:"result"`
				Error    *api.Error    `json:"error"`
			}{Result: result}
			if jerr := framejson.Unmarshal(line, &f); jerr != nil {
				return fmt.Errorf("bangerd sent a malformed frame or result (%v): %.200s", jerr, line)
			}
			switch {
			case f.Error != nil:
				return f.Error
			case f.Progress != nil:
				if onProgress != nil {
					onProgress(*f.Progress)
				}
				continue
			default:
				return nil
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("bangerd closed the connection without a result (did it crash? see its log)")
			}
			return fmt.Errorf("read response: %w", err)
		}
	}
}

// frameReader reads frames a line at a time. Its buffers are reused by
// the calls that follow (a pool), so a process that lists VMs again and
// again (the TUI, the MCP server) does not allocate and clear a large
// reply's buffers each time.
type frameReader struct {
	r    *bufio.Reader
	line []byte // a line longer than r's buffer, gathered
}

// maxSizedReply bounds the buffer a reply's announced length allocates
// at once; a longer reply is read a line at a time.
const maxSizedReply = 64 << 20

var frameReaders = sync.Pool{New: func() any {
	return &frameReader{r: bufio.NewReaderSize(nil, 64<<10)}
}}

// readLine returns the next line (with its '\n' unless the stream ended
// first), valid until the next call.
func (fr *frameReader) readLine() ([]byte, error) {
	line, err := fr.r.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	b := append(fr.line[:0], line...)
	for err == bufio.ErrBufferFull {
		line, err = fr.r.ReadSlice('\n')
		b = append(b, line...)
	}
	fr.line = b
	return b, err
}

// Info calls daemon.info.
func (c *Client) Info(ctx context.Context) (api.DaemonInfo, error) {
	var info api.DaemonInfo
	err := c.Call(ctx, api.MethodDaemonInfo, nil, &info, nil)
	return info, err
}

// Stream calls a stream method (api.MethodVMAgentConnect) and returns the
// upgraded connection. A daemon-side failure comes back as *api.Error.
func (c *Client) Stream(ctx context.Context, method string, params any) (net.Conn, error) {
	body, err := json.Marshal(api.Request{Version: api.Version, Method: method})
	if err != nil {
		return nil, err
	}
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return nil, fmt.Errorf("encode %s params: %w", method, err)
		}
		if body, err = json.Marshal(api.Request{Version: api.Version, Method: method, Params: b}); err != nil {
			return nil, err
		}
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, &UnreachableError{Socket: c.Socket, Err: err}
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	req, err := http.NewRequest(http.MethodPost, "http://bangerd"+api.CallPath, bytes.NewReader(body))
	if err != nil {
		stop()
		conn.Close()
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", api.StreamUpgrade)
	br := bufio.NewReader(conn)
	if err = req.Write(conn); err == nil {
		var resp *http.Response
		if resp, err = http.ReadResponse(br, req); err == nil {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				if !stop() {
					conn.Close()
					return nil, ctx.Err()
				}
				return &streamConn{Conn: conn, r: br}, nil
			}
			err = readFrames(resp.Body, resp.ContentLength, nil, nil)
			resp.Body.Close()
			if err == nil {
				err = fmt.Errorf("bangerd answered %s without upgrading the %s stream", resp.Status, method)
			}
		}
	}
	stop()
	conn.Close()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, err
}

// streamConn reads what was buffered with the 101 answer, then the socket.
type streamConn struct {
	net.Conn
	r *bufio.Reader
}

func (s *streamConn) Read(p []byte) (int, error) { return s.r.Read(p) }

func (s *streamConn) CloseWrite() error { return s.Conn.(*net.UnixConn).CloseWrite() }
