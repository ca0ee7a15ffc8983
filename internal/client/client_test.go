package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
)

func socketDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "bgc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// serveRaw answers every call with body, as a daemon would on the wire.
func serveRaw(t *testing.T, body string) string {
	sock := filepath.Join(socketDir(t), "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(body))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestUnreachable(t *testing.T) {
	c := New(filepath.Join(socketDir(t), "none.sock"))
	err := c.Call(context.Background(), api.MethodVMList, nil, nil, nil)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("err = %v", err)
	}
}

func TestFrames(t *testing.T) {
	c := New(serveRaw(t, `{"progress":{"step":"a"}}`+"\n"+`{"progress":{"step":"b"}}`+"\n"+`{"result":{"name":"dev"}}`+"\n"))
	var steps []string
	var ref api.VMRef
	if err := c.Call(context.Background(), "x", nil, &ref, func(p api.Progress) { steps = append(steps, p.Step) }); err != nil {
		t.Fatal(err)
	}
	if ref.Name != "dev" || strings.Join(steps, "") != "ab" {
		t.Fatalf("%+v %v", ref, steps)
	}

	c = New(serveRaw(t, `{"error":{"code":"conflict","message":"VM dev is running","hint":"banger vm stop dev"}}`+"\n"))
	err := c.Call(context.Background(), "x", nil, nil, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeConflict || ae.Hint != "banger vm stop dev" {
		t.Fatalf("%#v", err)
	}

	c = New(serveRaw(t, `{"progress":{"step":"a"}}`+"\n"))
	if err := c.Call(context.Background(), "x", nil, nil, nil); err == nil || !strings.Contains(err.Error(), "without a result") {
		t.Fatalf("truncated stream: %v", err)
	}
	c = New(serveRaw(t, "garbage\n"))
	if err := c.Call(context.Background(), "x", nil, nil, nil); err == nil || !strings.Contains(err.Error(), "malformed frame") {
		t.Fatalf("garbage: %v", err)
	}
}

func TestDaemonBinLookup(t *testing.T) {
	if b, _ := DaemonBin("/explicit"); b != "/explicit" {
		t.Fatal(b)
	}
	t.Setenv("BANGER_DAEMON_BIN", "/from/env")
	if b, _ := DaemonBin(""); b != "/from/env" {
		t.Fatal(b)
	}
}

func TestEnsureDaemonMissingBinary(t *testing.T) {
	root := socketDir(t)
	l := paths.UnderRoot(root)
	_, err := EnsureDaemon(context.Background(), l, EnsureOptions{Bin: filepath.Join(root, "no-bangerd")})
	if err == nil || !strings.Contains(err.Error(), "no-bangerd") {
		t.Fatalf("err = %v", err)
	}
}
