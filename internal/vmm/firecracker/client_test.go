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
	"time"

	"github.com/banger-dev/banger/internal/vmm/fcfake"
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

func TestClientSnapshotBodies(t *testing.T) {
	var bodies []string
	sock := serveUnix(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, r.Method+" "+r.URL.Path+" "+string(b))
		w.WriteHeader(http.StatusNoContent)
	})
	c := firecracker.NewClient(sock)
	ctx := context.Background()
	if err := c.PutSnapshotCreate(ctx, firecracker.SnapshotCreateParams{SnapshotType: firecracker.SnapshotFull, SnapshotPath: "/d/vmstate", MemFilePath: "/d/memory"}); err != nil {
		t.Fatal(err)
	}
	if err := c.PutSnapshotLoad(ctx, firecracker.SnapshotLoadParams{
		SnapshotPath:     "/d/vmstate",
		MemBackend:       &firecracker.MemoryBackend{BackendType: firecracker.MemBackendFile, BackendPath: "/d/memory"},
		ResumeVM:         true,
		NetworkOverrides: []firecracker.NetworkOverride{{IfaceID: "eth0", HostDevName: "tap1"}},
		VsockOverride:    &firecracker.VsockOverride{UDSPath: "/r/v.sock"},
	}); err != nil {
		t.Fatal(err)
	}
	// Unset options are omitted, so Firecracker applies its defaults.
	if err := c.PutSnapshotLoad(ctx, firecracker.SnapshotLoadParams{SnapshotPath: "/s",
		MemBackend: &firecracker.MemoryBackend{BackendType: firecracker.MemBackendFile, BackendPath: "/m"}}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`PUT /snapshot/create {"snapshot_type":"Full","snapshot_path":"/d/vmstate","mem_file_path":"/d/memory"}`,
		`PUT /snapshot/load {"snapshot_path":"/d/vmstate","mem_backend":{"backend_type":"File","backend_path":"/d/memory"},"resume_vm":true,` +
			`"network_overrides":[{"iface_id":"eth0","host_dev_name":"tap1"}],"vsock_override":{"uds_path":"/r/v.sock"}}`,
		`PUT /snapshot/load {"snapshot_path":"/s","mem_backend":{"backend_type":"File","backend_path":"/m"}}`,
	}
	if strings.Join(bodies, "\n") != strings.Join(want, "\n") {
		t.Fatalf("sent:\n%s\nwant:\n%s", strings.Join(bodies, "\n"), strings.Join(want, "\n"))
	}
}

// TestClientSnapshotCallsAgainstFake checks the calls' refusals come back
// as APIErrors carrying the fake's Firecracker fault messages.
func TestClientSnapshotCallsAgainstFake(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fcfake.Serve(ctx, l, fcfake.Options{ID: "client"}) }()
	defer func() { cancel(); <-done }()
	c := firecracker.NewClient(sock)
	err = c.PutSnapshotCreate(ctx, firecracker.SnapshotCreateParams{SnapshotPath: filepath.Join(dir, "s"), MemFilePath: filepath.Join(dir, "m")})
	var apiErr *firecracker.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Path != "/snapshot/create" || !strings.Contains(apiErr.FaultMessage, "before starting the microVM") {
		t.Fatalf("create before boot: %v", err)
	}
	err = c.PutSnapshotLoad(ctx, firecracker.SnapshotLoadParams{SnapshotPath: filepath.Join(dir, "s")})
	if !errors.As(err, &apiErr) || !strings.Contains(apiErr.FaultMessage, "either `mem_backend` or `mem_file_path` is required") {
		t.Fatalf("load without memory: %v", err)
	}
	err = c.PutSnapshotLoad(ctx, firecracker.SnapshotLoadParams{SnapshotPath: filepath.Join(dir, "nosuch"),
		MemBackend: &firecracker.MemoryBackend{BackendType: firecracker.MemBackendFile, BackendPath: filepath.Join(dir, "m")}})
	if !errors.As(err, &apiErr) || !strings.Contains(apiErr.FaultMessage, "Failed to restore from snapshot") {
		t.Fatalf("load of a missing snapshot: %v", err)
	}
	// A failed restore ends the process, as Firecracker's does.
	select {
	case err := <-done:
		done <- err
		if err == nil {
			t.Fatal("the fake exited cleanly after a failed load")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the fake kept serving after a failed load")
	}
}
