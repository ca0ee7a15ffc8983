// Command fake-firecracker stands in for the firecracker binary where the
// real one cannot run (no /dev/kvm, CI): it takes the same --api-sock and
// --id flags, serves the Firecracker v1.16.1 API with internal/vmm/fcfake and
// writes the "guest" console to stdout. It boots nothing. Snapshots write
// real files, and like Firecracker it exits with status 1 after a snapshot
// load that failed.
//
// Test hooks (environment): FAKE_FC_FAIL="PUT /boot-source" answers that
// call with 400; FAKE_FC_HANG_STOP=1 ignores SendCtrlAltDel;
// FAKE_FC_RECORD=FILE appends every request as a JSON line to FILE.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/vmm/fcfake"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program; stdout is the guest console.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fake-firecracker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiSock := fs.String("api-sock", "/run/firecracker.socket", "path of the API Unix socket")
	id := fs.String("id", "anonymous-instance", "microVM id")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintf(stdout, "Firecracker v%s (fake-firecracker)\n", fcfake.VMMVersion)
		return 0
	}
	// Like Firecracker: refuse an existing path instead of replacing it.
	if _, err := os.Lstat(*apiSock); err == nil {
		fmt.Fprintf(stderr, "fake-firecracker: Failed to open the API socket at %s: address in use (remove the stale socket first)\n", *apiSock)
		return 1
	}
	l, err := net.Listen("unix", *apiSock)
	if err != nil {
		fmt.Fprintf(stderr, "fake-firecracker: Failed to open the API socket at %s: %v\n", *apiSock, err)
		return 1
	}
	// Firecracker never deletes its socket.
	l.(*net.UnixListener).SetUnlinkOnClose(false)

	opts := fcfake.OptionsFromEnv()
	opts.ID = *id
	opts.Console = stdout
	if path := envknob.FakeFCRecord.Value(); path != "" {
		rec, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "fake-firecracker: FAKE_FC_RECORD: %v\n", err)
			return 1
		}
		defer rec.Close()
		var mu sync.Mutex
		opts.Record = func(method, path string, body []byte) {
			line, _ := json.Marshal(struct {
				Method string          `json:"method"`
				Path   string          `json:"path"`
				Body   json.RawMessage `json:"body,omitempty"`
			}{method, path, rawOrNil(body)})
			mu.Lock()
			rec.Write(append(line, '\n'))
			mu.Unlock()
		}
	}
	fmt.Fprintf(stderr, "fake-firecracker %s: instance %s listening on %s\n", fcfake.VMMVersion, *id, *apiSock)
	if err := fcfake.Serve(context.Background(), l, opts); err != nil {
		fmt.Fprintf(stderr, "fake-firecracker: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "fake-firecracker: instance %s exiting\n", *id)
	return 0
}

// rawOrNil keeps a recorded body as JSON when it is JSON, else as a string.
func rawOrNil(body []byte) json.RawMessage {
	if len(body) == 0 {
		return nil
	}
	if json.Valid(body) {
		return body
	}
	s, _ := json.Marshal(string(body))
	return s
}
