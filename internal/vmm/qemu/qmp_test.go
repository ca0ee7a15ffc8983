package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeQMP serves one connection with script: for each command it receives
// (by name), it sends the listed lines, with "$ID" replaced by the request id.
type fakeQMP struct {
	t        *testing.T
	socket   string
	greeting []string // lines sent before any command
	replies  map[string][]string
	got      chan string // commands received, in order
}

func newFakeQMP(t *testing.T) *fakeQMP {
	return &fakeQMP{
		t:        t,
		socket:   filepath.Join(t.TempDir(), "qmp.sock"),
		greeting: []string{`{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"]}}`},
		replies: map[string][]string{
			"qmp_capabilities": {`{"return": {}, "id": $ID}`},
		},
		got: make(chan string, 16),
	}
}

func (f *fakeQMP) serve() {
	l, err := net.Listen("unix", f.socket)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { l.Close() })
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		for _, line := range f.greeting {
			conn.Write([]byte(line + "\n"))
		}
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			var req struct {
				Execute string          `json:"execute"`
				ID      json.RawMessage `json:"id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
				conn.Write([]byte(`{"error": {"class": "GenericError", "desc": "JSON parse error"}}` + "\n"))
				continue
			}
			f.got <- req.Execute
			lines, ok := f.replies[req.Execute]
			if !ok {
				lines = []string{`{"error": {"class": "CommandNotFound", "desc": "The command ` + req.Execute + ` has not been found"}, "id": $ID}`}
			}
			for _, line := range lines {
				if line == "CLOSE" {
					return
				}
				conn.Write([]byte(strings.ReplaceAll(line, "$ID", string(req.ID)) + "\n"))
			}
		}
	}()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestQMPHandshakeAndStatus(t *testing.T) {
	f := newFakeQMP(t)
	f.replies["query-status"] = []string{
		`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}`,
		`{"timestamp": {"seconds": 1, "microseconds": 3}, "event": "NIC_RX_FILTER_CHANGED", "data": {"path": "/machine"}}`,
		`{"return": {"status": "running", "singlestep": false, "running": true}, "id": $ID}`,
	}
	f.serve()
	c, err := DialQMP(ctxT(t), f.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v := c.Greeting.QMP.Version.QEMU; v.Major != 7 || v.Minor != 2 || v.Micro != 22 {
		t.Errorf("greeting version = %+v", v)
	}
	if got := <-f.got; got != "qmp_capabilities" {
		t.Fatalf("first command = %q, want qmp_capabilities", got)
	}
	st, err := c.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running || st.Status != "running" {
		t.Errorf("status = %+v", st)
	}
	if len(c.Events) != 2 || c.Events[0].Event != "RESUME" || c.Events[1].Event != "NIC_RX_FILTER_CHANGED" {
		t.Errorf("events = %+v", c.Events)
	}
}

func TestQMPEventBeforeGreetingAndStaleID(t *testing.T) {
	f := newFakeQMP(t)
	f.greeting = append([]string{`{"event": "STOP"}`}, f.greeting...)
	f.replies["query-status"] = []string{
		`{"return": {"status": "paused", "running": false}, "id": "someone-else"}`,
		`{"return": {"status": "paused", "running": false}, "id": $ID}`,
	}
	f.serve()
	c, err := DialQMP(ctxT(t), f.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Running || st.Status != "paused" {
		t.Errorf("status = %+v", st)
	}
	if len(c.Events) != 1 || c.Events[0].Event != "STOP" {
		t.Errorf("events = %+v", c.Events)
	}
}

func TestQMPErrorReply(t *testing.T) {
	f := newFakeQMP(t)
	f.serve()
	c, err := DialQMP(ctxT(t), f.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Execute(ctxT(t), "no-such-command", map[string]any{"x": 1}, nil)
	var qe *QMPError
	if !errors.As(err, &qe) {
		t.Fatalf("err = %v, want *QMPError", err)
	}
	if qe.Class != "CommandNotFound" || qe.Command != "no-such-command" || !strings.Contains(err.Error(), "has not been found") {
		t.Errorf("QMPError = %+v", qe)
	}
}

func TestQMPCapabilitiesRefused(t *testing.T) {
	f := newFakeQMP(t)
	f.replies["qmp_capabilities"] = []string{`{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete"}, "id": $ID}`}
	f.serve()
	if c, err := DialQMP(ctxT(t), f.socket); err == nil {
		c.Close()
		t.Fatal("DialQMP succeeded after a refused qmp_capabilities")
	}
}

func TestQMPQuitConnectionClosed(t *testing.T) {
	f := newFakeQMP(t)
	f.replies["quit"] = []string{"CLOSE"}
	f.serve()
	c, err := DialQMP(ctxT(t), f.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Quit(ctxT(t)); err != nil {
		t.Fatalf("Quit with the connection closed by QEMU: %v", err)
	}
}

func TestQMPDeadline(t *testing.T) {
	f := newFakeQMP(t)
	f.replies["query-status"] = nil // never answers
	f.serve()
	c, err := DialQMP(ctxT(t), f.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Status(ctx); err == nil {
		t.Fatal("Status returned without a reply")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("deadline not honoured: took %v", d)
	}
}

func TestQMPGarbage(t *testing.T) {
	f := newFakeQMP(t)
	f.greeting = []string{`this is not json`}
	f.serve()
	if c, err := DialQMP(ctxT(t), f.socket); err == nil {
		c.Close()
		t.Fatal("DialQMP accepted a garbage greeting")
	}
}
