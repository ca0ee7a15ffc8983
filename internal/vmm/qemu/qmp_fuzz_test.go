package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzQMPReader answers one command (query-status) with whatever QEMU's
// socket may carry, then hangs up. Invariants: Execute returns; at most
// maxEvents events are kept, each named; it succeeds only on a line that is
// a reply ("return") to its own id (or to none), having consumed whole lines
// only, every one of them JSON (garbage is an error, never skipped), and the
// bytes after that reply stay unread for the next command; an error reply is
// a *QMPError naming the command.
func FuzzQMPReader(f *testing.F) {
	for _, s := range []string{
		`{"return": {"running": true, "status": "running"}, "id": "banger-1"}` + "\n",
		`{"event": "STOP", "data": {}}` + "\n" + `{"return": {"running": false, "status": "paused"}}` + "\n" + `{"event": "RESUME"}` + "\n",
		`{"return": {}, "id": "banger-2"}` + "\n" + `{"return": {"status": "running"}, "id": "banger-1"}` + "\n",
		`{"error": {"class": "GenericError", "desc": "no"}, "id": "banger-1"}` + "\n",
		`{"QMP": {"version": {}}}` + "\n",
		`not json` + "\n" + `{"return": {}}` + "\n",
		`{"return": {}}`,
		strings.Repeat(`{"event": "X"}`+"\n", 40) + `{"return": {}}` + "\n",
		`{"event": 7}` + "\n",
		`{"RETURN": {"running": true}}` + "\n",
		`{"return": null}` + "\n",
		"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		host, qemu := net.Pipe()
		defer host.Close()
		go func() {
			defer qemu.Close()
			if _, err := bufio.NewReader(qemu).ReadString('\n'); err != nil {
				return
			}
			qemu.Write(data)
		}()
		c := &QMPClient{conn: host, r: bufio.NewReader(host)}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var st QMPStatus
		err := c.Execute(ctx, "query-status", nil, &st)
		if ctx.Err() != nil {
			t.Fatalf("Execute did not return before the guard: %v", err)
		}
		if len(c.Events) > maxEvents {
			t.Fatalf("%d events kept, more than %d", len(c.Events), maxEvents)
		}
		for _, e := range c.Events {
			if e.Event == "" {
				t.Fatalf("an unnamed event was kept: %+v", c.Events)
			}
		}
		var qe *QMPError
		if errors.As(err, &qe) && qe.Command != "query-status" {
			t.Fatalf("error reply names command %q", qe.Command)
		}
		if err != nil {
			return
		}
		_ = c.watch(context.Background()) // no deadline for reading the rest
		rest, rerr := io.ReadAll(c.r)
		if rerr != nil {
			t.Fatal(rerr)
		}
		consumed := data[:len(data)-len(rest)]
		if !bytes.Equal(data[len(consumed):], rest) || !bytes.HasSuffix(consumed, []byte("\n")) {
			t.Fatalf("after a reply the reader stands mid-line or lost bytes: consumed %q, left %q", consumed, rest)
		}
		lines := strings.SplitAfter(string(consumed), "\n")
		lines = lines[:len(lines)-1] // the empty string after the last newline
		for _, l := range lines {
			if !json.Valid([]byte(l)) {
				t.Fatalf("a line that is not JSON was skipped: %q", l)
			}
		}
		var reply map[string]json.RawMessage
		if json.Unmarshal([]byte(lines[len(lines)-1]), &reply) != nil {
			t.Fatalf("the reply accepted is not a JSON object: %q", lines[len(lines)-1])
		}
		var ret, id []json.RawMessage
		for k, v := range reply {
			switch {
			case strings.EqualFold(k, "return"):
				ret = append(ret, v)
			case strings.EqualFold(k, "id"):
				id = append(id, v)
			}
		}
		if len(ret) == 0 {
			t.Fatalf("accepted a line with no return: %q", lines[len(lines)-1])
		}
		if len(id) == 1 && string(id[0]) != "null" {
			var s string
			if json.Unmarshal(id[0], &s) != nil || s != "banger-1" {
				t.Fatalf("accepted a reply to another id %s: %q", id[0], lines[len(lines)-1])
			}
		}
	})
}
