package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/client"
)

func serve(t *testing.T) (*Server, *client.Client, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "bgs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "run", "d.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	s := New(nil)
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, client.New(sock), sock
}

func TestListenPermissionsAndStaleSocket(t *testing.T) {
	_, _, sock := serve(t)
	st, err := os.Stat(sock)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v", st.Mode(), err)
	}
	dst, _ := os.Stat(filepath.Dir(sock))
	if dst.Mode().Perm() != 0o700 {
		t.Fatalf("dir %v", dst.Mode())
	}
	// A leftover file where the socket goes is replaced.
	other := filepath.Join(filepath.Dir(sock), "x.sock")
	os.WriteFile(other, nil, 0o600)
	ln, err := Listen(other)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := Listen(filepath.Join(filepath.Dir(sock), strings.Repeat("x", 120))); err == nil || !strings.Contains(err.Error(), "Unix socket limit") {
		t.Fatalf("long socket path: %v", err)
	}
}

func TestProgressThenResult(t *testing.T) {
	s, c, _ := serve(t)
	release := make(chan struct{})
	s.Register("test.slow", Method(func(ctx context.Context, p api.VMRef, progress func(api.Progress)) (api.VMRef, error) {
		progress(api.Progress{Step: "one", Current: 1, Total: 2})
		<-release // the client must see "one" before the handler finishes
		progress(api.Progress{Step: "two", Current: 2, Total: 2})
		return api.VMRef{Name: p.Name + "!"}, nil
	}))
	var got []string
	var res api.VMRef
	err := c.Call(context.Background(), "test.slow", api.VMRef{Name: "x"}, &res, func(p api.Progress) {
		got = append(got, p.Step)
		if p.Step == "one" {
			close(release)
		}
	})
	if err != nil || res.Name != "x!" || strings.Join(got, ",") != "one,two" {
		t.Fatalf("res %+v progress %v err %v", res, got, err)
	}
}

func TestErrorsBecomeTyped(t *testing.T) {
	s, c, _ := serve(t)
	s.Register("test.plain", func(context.Context, json.RawMessage, func(api.Progress)) (any, error) {
		return nil, errors.New("disk on fire")
	})
	s.Register("test.wrapped", func(context.Context, json.RawMessage, func(api.Progress)) (any, error) {
		return nil, fmt.Errorf("provision VM dev: %w", api.NewError(api.CodeResourceExhausted, "no space", "free some"))
	})
	s.Register("test.panic", func(context.Context, json.RawMessage, func(api.Progress)) (any, error) {
		var m map[string]int
		m["boom"] = 1
		return nil, nil
	})
	s.Register("test.deadline", func(ctx context.Context, _ json.RawMessage, _ func(api.Progress)) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Millisecond)
		defer cancel()
		<-ctx.Done()
		return nil, fmt.Errorf("wait for agent: %w", ctx.Err())
	})
	cases := []struct {
		method string
		code   api.ErrorCode
		msg    string
		hint   string
	}{
		{"test.plain", api.CodeInternal, "disk on fire", ""},
		{"test.wrapped", api.CodeResourceExhausted, "provision VM dev: no space", "free some"},
		{"test.panic", api.CodeInternal, "panic", ""},
		{"test.deadline", api.CodeTimeout, "wait for agent", ""},
	}
	for _, tc := range cases {
		err := c.Call(context.Background(), tc.method, nil, nil, nil)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != tc.code || !strings.Contains(ae.Message, tc.msg) || ae.Hint != tc.hint {
			t.Errorf("%s: %#v", tc.method, err)
		}
	}
	// Still serving after a panic.
	s.Register("test.ok", Method(func(context.Context, struct{}, func(api.Progress)) (int, error) { return 7, nil }))
	var n int
	if err := c.Call(context.Background(), "test.ok", nil, &n, nil); err != nil || n != 7 {
		t.Fatalf("%d %v", n, err)
	}
	if ms := s.Methods(); len(ms) != 5 || ms[0] != "test.deadline" {
		t.Fatalf("methods %v", ms)
	}
}

func TestVersionMismatchExceptDaemonInfo(t *testing.T) {
	s, c, _ := serve(t)
	s.Register(api.MethodDaemonInfo, Method(func(context.Context, struct{}, func(api.Progress)) (api.DaemonInfo, error) {
		return api.DaemonInfo{BuildID: "x"}, nil
	}))
	s.Register(api.MethodVMList, Method(func(context.Context, struct{}, func(api.Progress)) (api.VMListResult, error) {
		return api.VMListResult{}, nil
	}))
	err := c.CallRaw(context.Background(), []byte(`{"version":0,"method":"vm.list"}`), nil, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeVersionMismatch || ae.Hint == "" {
		t.Fatalf("vm.list at version 0: %v", err)
	}
	var info api.DaemonInfo
	if err := c.CallRaw(context.Background(), []byte(`{"version":0,"method":"daemon.info"}`), &info, nil); err != nil || info.BuildID != "x" {
		t.Fatalf("daemon.info at another version: %+v %v", info, err)
	}
}

func TestShutdownCancelsStuckHandlers(t *testing.T) {
	s, c, _ := serve(t)
	cleaned := make(chan struct{})
	started := make(chan struct{})
	s.Register("test.stuck", func(ctx context.Context, _ json.RawMessage, _ func(api.Progress)) (any, error) {
		close(started)
		<-ctx.Done() // a long build; it must notice shutdown and undo
		close(cleaned)
		return nil, ctx.Err()
	})
	go c.Call(context.Background(), "test.stuck", nil, nil, nil)
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown reported success while a handler was stuck")
	}
	select {
	case <-cleaned:
	default:
		t.Fatal("stuck handler's context was not cancelled before Shutdown returned")
	}
}

// A method registered twice would leave one handler silently dead (the
// double image.register of old): it panics at start instead.
func TestRegisterTwicePanics(t *testing.T) {
	s := New(nil)
	h := Method(func(context.Context, struct{}, func(api.Progress)) (int, error) { return 1, nil })
	s.Register("test.once", h)
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "test.once") {
			t.Fatalf("second Register: recover() = %v, want a panic naming the method", p)
		}
	}()
	s.Register("test.once", h)
}

// A handler's own encoding (Encoded) is the result as it is, not a JSON
// string of its bytes.
func TestEncodedResultSentAsIs(t *testing.T) {
	s, c, _ := serve(t)
	s.Register("test.encoded", Method(func(context.Context, struct{}, func(api.Progress)) (Encoded, error) {
		return Encoded(`{"vms":[{"name":"a"}]}`), nil
	}))
	var res api.VMListResult
	if err := c.Call(context.Background(), "test.encoded", nil, &res, nil); err != nil {
		t.Fatal(err)
	}
	if len(res.VMs) != 1 || res.VMs[0].Name != "a" {
		t.Fatalf("result %+v", res)
	}
}

// A reply that is only its result frame carries its length (the client
// reads it into one buffer of that size); one with progress frames is
// streamed, its length unknown when the first frame goes out.
func TestResultOnlyReplyHasItsLength(t *testing.T) {
	s := New(nil)
	big := strings.Repeat("x", 100<<10) // past net/http's own buffering
	s.Register("test.big", Method(func(_ context.Context, p struct{ Progress bool }, progress func(api.Progress)) (api.VMRef, error) {
		if p.Progress {
			progress(api.Progress{Step: "one"})
		}
		return api.VMRef{Name: big}, nil
	}))
	for _, withProgress := range []bool{false, true} {
		rec := httptest.NewRecorder()
		body := fmt.Sprintf(`{"version":%d,"method":"test.big","params":{"Progress":%v}}`, api.Version, withProgress)
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, api.CallPath, strings.NewReader(body)))
		length := rec.Header().Get("Content-Length")
		switch {
		case !strings.Contains(rec.Body.String(), big):
			t.Errorf("progress %v: no result in the reply %.200q", withProgress, rec.Body.String())
		case withProgress && length != "":
			t.Errorf("a reply with progress announced length %s", length)
		case !withProgress && length != strconv.Itoa(rec.Body.Len()):
			t.Errorf("a result-only reply of %d bytes announced length %q", rec.Body.Len(), length)
		}
	}
}
