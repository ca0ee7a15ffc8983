package agentclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

// hangGuard bounds one fuzz call: every case ends by itself (the fake guest
// closes its end), so reaching it means the client hung, a bug.
const hangGuard = time.Minute

// countingConn counts the bytes the client read from the guest.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// FuzzAgentReply answers GET /healthz with whatever a guest may send (reply,
// then pad bytes of 'x', so sizes around the 64 KiB limit are reachable).
// Invariants: the client never accepts a body over 64 KiB, never reads much
// more than the limits allow, and accepts a reply only when it is a 200 whose
// body (read here without any limit) is the JSON health it returned, status
// "ok".
func FuzzAgentReply(f *testing.F) {
	ok := `{"status":"ok","version":"1","hostname":"devbox","uptime_seconds":1,"boot_id":"b","work_disk_mounted":true}`
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(ok))+"\r\n\r\n"+ok), uint32(0))
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\n"+ok), uint32(0))
	f.Add([]byte(`HTTP/1.1 200 OK`+"\r\n\r\n"+`{"status":"ok","x":"`), uint32(70<<10))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"sta\r\n0\r\n\r\n"), uint32(0))
	f.Add([]byte("HTTP/1.1 503 Service Unavailable\r\n\r\n"+`{"code":"unavailable","message":"booting"}`), uint32(0))
	f.Add([]byte("HTTP/1.1 200 OK\r\nX-Pad: "), uint32(200<<10))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"+ok), uint32(0))
	f.Add([]byte("garbage"), uint32(3))
	f.Fuzz(func(t *testing.T, reply []byte, pad uint32) {
		full := append(append([]byte(nil), reply...), bytes.Repeat([]byte{'x'}, int(pad%(256<<10)))...)
		var read atomic.Int64
		c := Client{Dial: func(ctx context.Context) (net.Conn, error) {
			host, guest := net.Pipe()
			go func() {
				defer guest.Close()
				// The request first; then the reply, until the client hangs up.
				if _, err := http.ReadRequest(bufio.NewReader(guest)); err != nil {
					return
				}
				guest.Write(full)
			}()
			return countingConn{host, &read}, nil
		}}
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		h, _, err := c.Health(ctx)
		if ctx.Err() != nil {
			t.Fatalf("Health did not return before the guard (%v): the client hung", err)
		}

		// What the reply really is, read with no limit.
		req, _ := http.NewRequest(http.MethodGet, "http://agent/healthz", nil)
		var status, bodyLen int
		var body []byte
		chunked := false
		br := bufio.NewReader(bytes.NewReader(full))
		resp, perr := http.ReadResponse(br, req)
		// Informational replies come before the real one, five at most.
		for n := 0; perr == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols; n++ {
			if n == 5 {
				perr = errors.New("too many 1xx replies")
				break
			}
			resp, perr = http.ReadResponse(br, req)
		}
		if perr == nil {
			status = resp.StatusCode
			chunked = len(resp.TransferEncoding) > 0
			body, perr = io.ReadAll(resp.Body)
			if perr != nil {
				status = 0
			}
			bodyLen = len(body)
		}
		if err == nil {
			if status != http.StatusOK {
				t.Fatalf("accepted a reply that is not a readable 200 (status %d): %q", status, trunc(full))
			}
			if bodyLen > maxResponseBytes {
				t.Fatalf("accepted a %d-byte body: over the %d-byte limit", bodyLen, maxResponseBytes)
			}
			var want api.AgentHealth
			if json.Unmarshal(body, &want) != nil || !reflect.DeepEqual(want, h) || h.Status != "ok" {
				t.Fatalf("accepted health %+v from body %q", h, trunc(body))
			}
		}
		if status == http.StatusOK && bodyLen > maxResponseBytes && err == nil {
			t.Fatal("a body over the limit was accepted")
		}
		// Header allowance: the final header and up to five 1xx ones, each
		// bounded by maxResponseHeaderBytes; plus a read buffer of slack.
		limit := int64(6*maxResponseHeaderBytes + maxResponseBytes + 1 + 8<<10)
		if chunked {
			limit += 16 * (maxResponseBytes + 1) // net/http bounds chunk framing per body byte
		}
		if n := read.Load(); n > limit {
			t.Fatalf("the client read %d bytes from the guest, more than the limits allow (%d)", n, limit)
		}
	})
}

func trunc(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// okLine is what Firecracker answers to CONNECT: "OK <host port>".
var okLine = regexp.MustCompile(`^OK ([0-9]+)$`)

// FuzzHybridHandshake answers CONNECT on a real Unix socket with whatever
// the other end sends. Invariants: the handshake succeeds exactly when the
// first line (within 32 bytes) is "OK <port>" with a 32-bit port; after
// success every byte behind that line is the guest's stream, none lost or
// read ahead; a non-empty reply that is not OK fails as a protocol error
// (never retried), an empty one (nothing listening yet) as a retryable one.
func FuzzHybridHandshake(f *testing.F) {
	ln, err := net.Listen("unix", filepath.Join(shortDir(f), "v.sock"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	replies := make(chan []byte)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			reply := <-replies
			br := bufio.NewReader(conn)
			if line, err := br.ReadString('\n'); err == nil && line == "CONNECT 1024\n" {
				conn.Write(reply)
			}
			conn.(*net.UnixConn).CloseWrite()
			io.Copy(io.Discard, br) // until the client closes
			conn.Close()
		}
	}()
	for _, s := range []string{"OK 1073741824\n", "OK 1\nHTTP/1.1 200 OK\r\n\r\n", "OK 4294967296\n", "OK -1\n", "OK \n",
		"OK 12", "", "\n", "HTTP/1.1 400 Bad Request\n", strings.Repeat("A", 40) + "\n", "OK 0001\nrest", "ok 1\n", "OK  1\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		go func() { replies <- reply }()
		conn, err := hybridHandshake(ctx, ln.Addr().String(), 1024)
		if ctx.Err() != nil {
			t.Fatalf("the handshake did not return before the guard (%v)", err)
		}
		nl := bytes.IndexByte(reply, '\n')
		want := false
		if nl >= 0 && nl < maxHandshakeLine {
			if m := okLine.FindSubmatch(reply[:nl]); m != nil {
				_, perr := strconv.ParseUint(string(m[1]), 10, 32)
				want = perr == nil
			}
		}
		if (err == nil) != want {
			t.Fatalf("reply %q: handshake err = %v, want success %v", reply, err, want)
		}
		if err == nil {
			defer conn.Close()
			rest, rerr := io.ReadAll(conn)
			if rerr != nil || !bytes.Equal(rest, reply[nl+1:]) {
				t.Fatalf("reply %q: the stream after the OK line is %q (%v), want %q", reply, rest, rerr, reply[nl+1:])
			}
			return
		}
		if len(reply) == 0 {
			if errors.Is(err, errProtocol) {
				t.Fatalf("an empty reply (nothing listening yet) is a protocol error, so it would not be retried: %v", err)
			}
			return
		}
		if !errors.Is(err, errProtocol) {
			t.Fatalf("reply %q is not Firecracker's, but the error would be retried: %v", reply, err)
		}
		if len(err.Error()) > 300 {
			t.Fatalf("the error quotes %d bytes of the reply: %q", len(err.Error()), err)
		}
	})
}

// pingAck0 is the yamux frame answering the host's first ping (id 0):
// version 0, type ping, flag ACK, stream 0, opaque 0.
var pingAck0 = []byte{0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}

// hasPingAck0 reports whether data holds a frame yamux takes as the answer
// to ping 0: version 0, type ping, without the SYN flag (a ping that is not
// a request is a reply, whatever its other flags and stream id), opaque 0.
func hasPingAck0(data []byte) bool {
	for i := 0; i+12 <= len(data); i++ {
		if data[i] == 0 && data[i+1] == 2 && data[i+3]&1 == 0 && bytes.Equal(data[i+8:i+12], []byte{0, 0, 0, 0}) {
			return true
		}
	}
	return false
}

// FuzzSerialSession has the guest end of the virtio-serial chardev send
// arbitrary bytes, then close. Invariants: Dial's attempt returns; it hands
// out a stream only when the guest answered the host's ping (the ping ACK is
// in what it sent), never to garbage (a first byte that is not yamux
// version 0 ends the session); a failed attempt drops the session, so the
// next Dial reconnects instead of reusing a dead one; after Close, Dial
// refuses at once.
func FuzzSerialSession(f *testing.F) {
	ln, err := net.Listen("unix", filepath.Join(shortDir(f), "agent.sock"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	guests := make(chan []byte)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			data := <-guests
			conn.Write(data)
			conn.Close()
		}
	}()
	f.Add(pingAck0)
	f.Add(append(append([]byte{}, pingAck0...), 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'))
	f.Add([]byte{1, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff}) // data frame, huge length
	f.Add([]byte{0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})             // go away
	f.Add([]byte{0, 1, 0, 1, 0, 0, 0, 2, 0, 0x10, 0, 0})          // window update opening a stream
	f.Add([]byte{0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7})             // the guest pings the host
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		go func() { guests <- data }()
		s := NewSerialSession(ln.Addr().String())
		stream, err := s.tryDial(ctx, hangGuard)
		if ctx.Err() != nil {
			t.Fatalf("the attempt did not return before the guard (%v)", err)
		}
		if err == nil {
			stream.Close()
			if !hasPingAck0(data) {
				t.Fatalf("a stream was handed out though the guest never answered the ping: %q", data)
			}
			if len(data) > 0 && data[0] != 0 {
				t.Fatalf("a stream was handed out over a session whose first frame is not yamux: %q", data)
			}
		} else {
			s.mu.Lock()
			live := s.sess
			s.mu.Unlock()
			if live != nil {
				t.Fatalf("after a failed attempt (%v) the session is kept: the next Dial would reuse it", err)
			}
		}
		s.Close()
		if _, err := s.Dial(ctx); !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("Dial after Close: %v, want ErrSessionClosed", err)
		}
	})
}
