package firecracker_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/vmm/firecracker"
)

// serveUnix answers every request on a temp Unix socket with h.
func serveUnix(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestClientSendsContentLengthAndDecodesFaults(t *testing.T) {
	var gotLen int64
	var gotTE []string
	var gotBody string
	sock := serveUnix(t, func(w http.ResponseWriter, r *http.Request) {
		gotLen, gotTE = r.ContentLength, r.TransferEncoding
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"fault_message":"The kernel file cannot be opened: No such file or directory (os error 2)"}`)
	})
	err := firecracker.NewClient(sock).PutBootSource(context.Background(), firecracker.BootSource{KernelImagePath: "/k"})
	var apiErr *firecracker.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v (%T), want *APIError", err, err)
	}
	if apiErr.Status != 400 || apiErr.Method != "PUT" || apiErr.Path != "/boot-source" ||
		!strings.Contains(err.Error(), "kernel file cannot be opened") {
		t.Fatalf("APIError = %+v", apiErr)
	}
	if gotLen != int64(len(gotBody)) || gotLen == 0 || len(gotTE) != 0 {
		t.Fatalf("Content-Length %d, Transfer-Encoding %v for body %q: want a plain length", gotLen, gotTE, gotBody)
	}
	if gotBody != `{"kernel_image_path":"/k"}` {
		t.Fatalf("body = %s (optional fields must be omitted)", gotBody)
	}
}

func TestClientNonJSONErrorAndTransportError(t *testing.T) {
	sock := serveUnix(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "boom\n")
	})
	_, err := firecracker.NewClient(sock).GetInstanceInfo(context.Background())
	var apiErr *firecracker.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 500 || apiErr.FaultMessage != "boom" {
		t.Fatalf("err = %v", err)
	}
	_, err = firecracker.NewClient(filepath.Join(t.TempDir(), "none.sock")).GetInstanceInfo(context.Background())
	if err == nil || errors.As(err, &apiErr) || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("err = %v, want a transport error naming the socket", err)
	}
}
