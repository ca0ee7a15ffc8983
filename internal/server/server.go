// Package server serves the daemon API: one HTTP endpoint on the daemon's
// Unix socket, a request decoded into a method and params, a handler looked
// up by method name, and a response streamed as NDJSON frames.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/splice"
)

// Handler serves one method. params is the raw JSON of Request.Params (may
// be empty); progress streams a frame to the client at once.
type Handler func(ctx context.Context, params json.RawMessage, progress func(api.Progress)) (any, error)

// Server dispatches calls to registered handlers.
type Server struct {
	Log *log.Logger

	mu       sync.RWMutex
	handlers map[string]Handler
	http     *http.Server
	streams  map[io.Closer]struct{} // upgraded connections being served
	stopping bool                   // Shutdown has begun: no new streams

	// base is every call's parent context; cancelling it tells running
	// handlers to undo and return when shutdown cannot wait any longer.
	base     context.Context
	cancel   context.CancelFunc
	inflight sync.WaitGroup
}

// New returns a server with no methods.
func New(logger *log.Logger) *Server {
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	base, cancel := context.WithCancel(context.Background())
	return &Server{Log: logger, handlers: map[string]Handler{}, base: base, cancel: cancel}
}

// Register adds the handler for method. A method registered twice is a
// programming error (one of the two would be silently dead), so it panics,
// at daemon start rather than on some later call.
func (s *Server) Register(method string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.handlers[method]; dup {
		panic("server: method " + method + " registered twice")
	}
	if h == nil {
		panic("server: method " + method + " registered with a nil handler")
	}
	s.handlers[method] = h
}

// Methods lists the registered method names.
func (s *Server) Methods() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ms []string
	for m := range s.handlers {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	return ms
}

// Listen binds the Unix socket at path: its directory mode 0700, the socket
// 0600. A socket file left by a dead daemon is replaced; the caller must hold
// the daemon lock so no live daemon owns it.
func Listen(path string) (net.Listener, error) {
	if err := paths.CheckSocketPath(path); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if err := os.Chmod(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("chmod socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle(api.CallPath, s)
	s.mu.Lock()
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: s.Log,
		BaseContext: func(net.Listener) context.Context { return s.base }}
	hs := s.http
	s.mu.Unlock()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// CancelGrace is how long cancelled handlers get to undo their work when
// Shutdown's deadline passes.
const CancelGrace = 10 * time.Second

// Shutdown stops accepting calls and waits for running ones until ctx ends;
// then it cancels their contexts and gives them CancelGrace to clean up.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.RLock()
	hs := s.http
	s.mu.RUnlock()
	if hs == nil {
		return nil
	}
	err := hs.Shutdown(ctx)
	// Upgraded streams are not the HTTP server's any more: end them.
	s.mu.Lock()
	s.stopping = true
	for c := range s.streams {
		c.Close()
	}
	s.mu.Unlock()
	if err == nil {
		return nil
	}
	s.cancel()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(CancelGrace):
		s.Log.Print("shutdown: handlers still running after cancellation")
	}
	hs.Close()
	return err
}

// ServeHTTP handles POST /v1/call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	if r.Method != http.MethodPost {
		writeFrame(w, api.Frame{Error: api.NewError(api.CodeBadRequest, "use POST "+api.CallPath, "")})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, api.MaxRequestBytes+1))
	if err != nil {
		writeFrame(w, api.Frame{Error: api.NewError(api.CodeBadRequest, "read request: "+err.Error(), "")})
		return
	}
	if len(body) > api.MaxRequestBytes {
		writeFrame(w, api.Frame{Error: api.NewError(api.CodeTooLarge,
			fmt.Sprintf("request body over %d bytes", api.MaxRequestBytes), "send smaller parameters")})
		return
	}
	var req api.Request
	if err := json.Unmarshal(body, &req); err != nil {
		writeFrame(w, api.Frame{Error: api.NewError(api.CodeBadRequest, "malformed request JSON: "+err.Error(), "")})
		return
	}
	// daemon.info and daemon.stop are answered at any API version so that a
	// newer CLI can always identify and replace an older daemon.
	if req.Version != api.Version && req.Method != api.MethodDaemonInfo && req.Method != api.MethodDaemonStop {
		writeFrame(w, api.Frame{Error: api.NewError(api.CodeVersionMismatch,
			fmt.Sprintf("client speaks API version %d, this bangerd speaks %d", req.Version, api.Version),
			"use banger and bangerd from the same build (banger daemon stop, then rerun the command)")})
		return
	}
	s.mu.RLock()
	h := s.handlers[req.Method]
	s.mu.RUnlock()
	if h == nil {
		writeFrame(w, api.Frame{Error: api.NewError(api.CodeUnknownMethod,
			fmt.Sprintf("unknown method %q", req.Method), "this bangerd serves: "+fmt.Sprint(s.Methods()))})
		return
	}

	s.inflight.Add(1)
	defer s.inflight.Done()
	flusher, _ := w.(http.Flusher)
	var (
		wmu      sync.Mutex
		streamed bool // a progress frame went out
	)
	progress := func(p api.Progress) {
		wmu.Lock()
		defer wmu.Unlock()
		streamed = true
		writeFrame(w, api.Frame{Progress: &p})
		if flusher != nil {
			flusher.Flush()
		}
	}
	start := time.Now()
	result, err := s.call(r.Context(), h, req.Params, progress)
	wmu.Lock()
	defer wmu.Unlock()
	if err != nil {
		ae := toAPIError(err)
		s.Log.Printf("%s failed after %s: %s: %s", req.Method, time.Since(start).Round(time.Millisecond), ae.Code, ae.Message)
		writeFrame(w, api.Frame{Error: ae})
		return
	}
	if st, ok := result.(*Stream); ok {
		s.serveStream(w, r, req.Method, st)
		return
	}
	b, ok := result.(Encoded)
	if !ok {
		if b, err = json.Marshal(result); err != nil {
			writeFrame(w, api.Frame{Error: api.NewError(api.CodeInternal, "encode result: "+err.Error(), "")})
			return
		}
	}
	// The result frame is {"result":<b>}; writing it around b directly
	// spares re-encoding (and re-validating) a large result such as vm.list.
	// A reply that is only this frame goes with its length, so the client
	// reads it into one buffer of that size (client.readFrames).
	const open, end = `{"result":`, "}\n"
	if !streamed {
		w.Header().Set("Content-Length", strconv.Itoa(len(open)+len(b)+len(end)))
	}
	w.Write([]byte(open))
	w.Write(b)
	w.Write([]byte(end))
}

// Encoded is a result its handler encoded as JSON itself; the server sends
// it as it is. A handler that answers the same large result again and
// again (vm.list) encodes it once and hands out the bytes, which the
// server must not change.
type Encoded []byte

// Stream is the result of a stream method: a byte stream (to a guest
// agent) the server joins to the caller's connection after answering
// "101 Switching Protocols". The caller must have asked for the upgrade
// (Upgrade: api.StreamUpgrade); the server closes Conn when either side
// is done.
type Stream struct {
	Conn io.ReadWriteCloser
}

// serveStream hands the connection over to st.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, method string, st *Stream) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), api.StreamUpgrade) {
		st.Conn.Close()
		writeFrame(w, api.Frame{Error: api.NewError(api.CodeBadRequest,
			fmt.Sprintf("%s is a stream method: call it with \"Upgrade: %s\"", method, api.StreamUpgrade), "")})
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		st.Conn.Close()
		writeFrame(w, api.Frame{Error: api.NewError(api.CodeInternal, "connection cannot be upgraded", "")})
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		st.Conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	// Registered before the 101 goes out, so a Shutdown that starts after
	// the caller sees the upgrade always finds (and ends) this stream.
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		conn.Close()
		st.Conn.Close()
		return
	}
	if s.streams == nil {
		s.streams = map[io.Closer]struct{}{}
	}
	s.streams[conn] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams, conn)
		s.mu.Unlock()
		conn.Close()
		st.Conn.Close()
	}()
	if _, err := fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", api.StreamUpgrade); err != nil {
		return
	}
	splice.Join(&hijacked{Conn: conn, r: brw.Reader}, st.Conn)
}

// hijacked reads what the HTTP server buffered, then the connection.
type hijacked struct {
	net.Conn
	r io.Reader
}

func (h *hijacked) Read(p []byte) (int, error) { return h.r.Read(p) }

func (h *hijacked) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// call runs h, turning a panic into an internal error so one bad handler
// cannot take the daemon down.
func (s *Server) call(ctx context.Context, h Handler, params json.RawMessage, progress func(api.Progress)) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.Log.Printf("handler panic: %v", p)
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	return h(ctx, params, progress)
}

func toAPIError(err error) *api.Error {
	var ae *api.Error
	if errors.As(err, &ae) {
		// Keep the context a wrapper added ("provision VM x: ..."), without
		// repeating the hint inside the message.
		msg := strings.Replace(err.Error(), ae.Error(), ae.Message, 1)
		return &api.Error{Code: ae.Code, Message: msg, Hint: ae.Hint}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return api.NewError(api.CodeTimeout, err.Error(), "")
	}
	return api.NewError(api.CodeInternal, err.Error(), "")
}

func writeFrame(w io.Writer, f api.Frame) {
	b, _ := json.Marshal(f)
	w.Write(append(b, '\n'))
}

// Decode unmarshals params into T, refusing unknown fields so a typo in a
// client is an error, not a silently ignored option.
func Decode[T any](params json.RawMessage) (T, error) {
	var v T
	if len(bytes.TrimSpace(params)) == 0 {
		return v, nil
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, api.NewError(api.CodeBadRequest, "bad params: "+err.Error(), "")
	}
	return v, nil
}

// Method adapts a typed function to a Handler.
func Method[P any, R any](f func(ctx context.Context, p P, progress func(api.Progress)) (R, error)) Handler {
	return func(ctx context.Context, raw json.RawMessage, progress func(api.Progress)) (any, error) {
		p, err := Decode[P](raw)
		if err != nil {
			return nil, err
		}
		return f(ctx, p, progress)
	}
}
