package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

// echoServer registers, for several real param types, a handler that sends
// one progress frame and returns what server.Decode made of the params, so a
// fuzz run drives the whole path: body limit, envelope, version, method
// lookup, Decode[T], handler, frame encoding.
func echoServer() (*Server, map[string]func(json.RawMessage) (any, error)) {
	s := New(nil)
	decoders := map[string]func(json.RawMessage) (any, error){}
	echo := func(method string, h Handler, dec func(json.RawMessage) (any, error)) {
		s.Register(method, h)
		decoders[method] = dec
	}
	echo(api.MethodVMCreate, Method(echoOf[api.VMCreateParams]), decodeAny[api.VMCreateParams])
	echo(api.MethodVMSet, Method(echoOf[api.VMSetParams]), decodeAny[api.VMSetParams])
	echo(api.MethodVMLogs, Method(echoOf[api.VMLogsParams]), decodeAny[api.VMLogsParams])
	echo(api.MethodImageRegister, Method(echoOf[api.ImageRegisterParams]), decodeAny[api.ImageRegisterParams])
	echo(api.MethodImageBuild, Method(echoOf[api.ImageBuildParams]), decodeAny[api.ImageBuildParams])
	echo(api.MethodDoctorRun, Method(echoOf[api.DoctorParams]), decodeAny[api.DoctorParams])
	echo(api.MethodVMList, Method(echoOf[struct{}]), decodeAny[struct{}])
	return s, decoders
}

func echoOf[P any](_ context.Context, p P, progress func(api.Progress)) (P, error) {
	progress(api.Progress{Step: "echo"})
	return p, nil
}

func decodeAny[P any](raw json.RawMessage) (any, error) { return Decode[P](raw) }

// call posts body to s and returns the decoded frames, failing on anything
// that is not a well-formed NDJSON response ending in one result or error.
func call(t *testing.T, s *Server, body io.Reader) []api.Frame {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, api.CallPath, body))
	var frames []api.Frame
	sc := bufio.NewScanner(rec.Body)
	sc.Buffer(nil, 4*api.MaxRequestBytes)
	for sc.Scan() {
		var f api.Frame
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatalf("response line is not a frame: %q: %v", sc.Text(), err)
		}
		frames = append(frames, f)
	}
	if len(frames) == 0 {
		t.Fatal("no response frame")
	}
	for _, f := range frames[:len(frames)-1] {
		if f.Progress == nil || f.Result != nil || f.Error != nil {
			t.Fatalf("non-final frame is not a progress frame: %+v", f)
		}
	}
	last := frames[len(frames)-1]
	if (last.Result == nil) == (last.Error == nil) || last.Progress != nil {
		t.Fatalf("final frame must carry exactly one of result or error: %+v", last)
	}
	if last.Error != nil && (last.Error.Code == "" || last.Error.Message == "") {
		t.Fatalf("error without code or message: %+v", last.Error)
	}
	return frames
}

func requestSeeds() []string {
	return []string{
		`{"version":1,"method":"vm.create","params":{"name":"dev","vcpus":2,"memory_mib":1024,"disk_bytes":8589934592}}`,
		`{"version":1,"method":"vm.create","params":{"name":"dev","vcpus":0,"memory_mib":-1}}`,
		`{"version":1,"method":"vm.create","params":{"name":"a;rm -rf /","bogus":true}}`,
		`{"version":1,"method":"vm.set","params":{"name":"dev","disk_bytes":99999999999999999999}}`,
		`{"version":1,"method":"image.register","params":{"name":"x","rootfs_path":"../../etc/shadow"}}`,
		`{"version":1,"method":"image.build","params":{"name":"d","packages":["a","b"],"size_bytes":null}}`,
		`{"version":1,"method":"doctor.run","params":{"scopes":"not-a-list"}}`,
		`{"version":1,"method":"vm.list"}`,
		`{"version":1,"method":"vm.list","params":null}`,
		`{"version":1,"method":"vm.list","params":[]}`,
		`{"version":2,"method":"vm.list"}`,
		`{"version":1,"method":"no.such"}`,
		`{"version":1,"method":"vm.create","params":{"name":"x"}} trailing`,
		`{"version":1,"method":"vm.create","params":{"name":"x"}{"name":"y"}}`,
		`{"version":"1"}`,
		`[`,
		``,
		"\xff\xfe",
	}
}

// FuzzServeHTTP sends arbitrary request bodies through ServeHTTP.
func FuzzServeHTTP(f *testing.F) {
	for _, s := range requestSeeds() {
		f.Add([]byte(s))
	}
	s, decoders := echoServer()
	f.Fuzz(func(t *testing.T, body []byte) {
		frames := call(t, s, bytes.NewReader(body))
		last := frames[len(frames)-1]
		var req api.Request
		if err := json.Unmarshal(body, &req); err != nil {
			if last.Error == nil || last.Error.Code != api.CodeBadRequest {
				t.Fatalf("malformed body %q answered %+v", body, last)
			}
			return
		}
		dec, known := decoders[req.Method]
		switch {
		case req.Version != api.Version:
			if last.Error == nil || last.Error.Code != api.CodeVersionMismatch {
				t.Fatalf("version %d answered %+v", req.Version, last)
			}
		case !known:
			if last.Error == nil || last.Error.Code != api.CodeUnknownMethod || !strings.Contains(last.Error.Hint, api.MethodVMCreate) {
				t.Fatalf("unknown method %q answered %+v", req.Method, last)
			}
		default:
			checkDecoded(t, dec, req.Params, frames)
		}
	})
}

// FuzzDecodeParams builds a valid envelope around arbitrary params for each
// echoed method, so the fuzzer spends its time inside Decode[T].
func FuzzDecodeParams(f *testing.F) {
	s, decoders := echoServer()
	methods := slices.Sorted(maps.Keys(decoders))
	f.Add(uint8(0), []byte(`{"name":"dev","vcpus":2}`))
	f.Add(uint8(1), []byte(`{"name":"dev","disk_bytes":-1}`))
	f.Add(uint8(2), []byte(`{"name":"../x","tail_bytes":1e400}`))
	f.Add(uint8(3), []byte(`{"name":"x","rootfs_path":"/dev/zero","unknown":1}`))
	f.Add(uint8(4), []byte(`{"packages":[null,"a"]}`))
	f.Add(uint8(5), []byte(`null`))
	f.Add(uint8(6), []byte(`{}`))
	f.Fuzz(func(t *testing.T, which uint8, params []byte) {
		method := methods[int(which)%len(methods)]
		body := fmt.Sprintf(`{"version":%d,"method":%q,"params":%s}`, api.Version, method, params)
		frames := call(t, s, strings.NewReader(body))
		var req api.Request
		if err := json.Unmarshal([]byte(body), &req); err != nil {
			if last := frames[len(frames)-1]; last.Error == nil || last.Error.Code != api.CodeBadRequest {
				t.Fatalf("malformed params %q answered %+v", params, last)
			}
			return
		}
		checkDecoded(t, decoders[method], req.Params, frames)
	})
}

// checkDecoded: a known method answers either bad_request (when Decode
// refuses the params) or the echo of exactly what Decode produced.
func checkDecoded(t *testing.T, dec func(json.RawMessage) (any, error), params json.RawMessage, frames []api.Frame) {
	t.Helper()
	last := frames[len(frames)-1]
	want, err := dec(params)
	if err != nil {
		if last.Error == nil || last.Error.Code != api.CodeBadRequest || !strings.HasPrefix(last.Error.Message, "bad params") {
			t.Fatalf("Decode refused %q (%v) but the server answered %+v", params, err, last)
		}
		return
	}
	wantJSON, _ := json.Marshal(want)
	if last.Error != nil || !bytes.Equal(last.Result, wantJSON) || len(frames) != 2 {
		t.Fatalf("params %q: got frames %+v, want one progress then result %s", params, frames, wantJSON)
	}
}

// endless yields an unbounded stream of one byte and counts what was read.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	e.n += int64(len(p))
	return len(p), nil
}

// TestOversizedBodyStopsReading proves the bound: a client streaming an
// endless body is answered too_large after at most MaxRequestBytes+1 bytes
// plus one read buffer, never buffered whole.
func TestOversizedBodyStopsReading(t *testing.T) {
	s, _ := echoServer()
	body := &endless{}
	frames := call(t, s, body)
	last := frames[len(frames)-1]
	if last.Error == nil || last.Error.Code != api.CodeTooLarge || !strings.Contains(last.Error.Message, fmt.Sprint(api.MaxRequestBytes)) {
		t.Fatalf("endless body answered %+v", last)
	}
	if body.n > api.MaxRequestBytes+64<<10 {
		t.Fatalf("server read %d bytes of an oversized body; the limit is %d", body.n, api.MaxRequestBytes)
	}
	// Exactly at the limit is still served.
	pad := api.MaxRequestBytes - len(`{"version":1,"method":"vm.list"}`)
	ok := `{"version":1,"method":"vm.list"}` + strings.Repeat(" ", pad)
	if last := call(t, s, strings.NewReader(ok))[1]; last.Error != nil {
		t.Fatalf("body of exactly %d bytes refused: %+v", len(ok), last.Error)
	}
}

func TestServeHTTPRefusesGet(t *testing.T) {
	s, _ := echoServer()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, api.CallPath, nil))
	var f api.Frame
	if err := json.Unmarshal(rec.Body.Bytes(), &f); err != nil || f.Error == nil || f.Error.Code != api.CodeBadRequest || !strings.Contains(f.Error.Message, "POST") {
		t.Fatalf("GET answered %q (%v)", rec.Body.String(), err)
	}
}
