package fcfake

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/splice"
	"github.com/banger-dev/banger/internal/sysexec"
)

// defaultAgentPort is banger's guest agent port when the boot args carry no
// banger.agent_port.
const defaultAgentPort = 1024

// hostPorts numbers host-initiated connections the way Firecracker's muxer
// answers "OK <port>" (ephemeral local ports from 2^30 up).
var hostPorts atomic.Uint32

func init() { hostPorts.Store(1 << 30) }

// serveVsock is the host side of Firecracker's hybrid vsock: a client writes
// "CONNECT <port>\n" and, when a guest listener exists on that port, reads
// "OK <host port>\n" and then talks to it. Otherwise the connection is
// closed, as Firecracker does.
func (f *fake) serveVsock(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go f.handleVsock(conn)
	}
}

func (f *fake) handleVsock(conn net.Conn) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	port, err := strconv.ParseUint(arg, 10, 32)
	if cmd != "CONNECT" || err != nil {
		return
	}
	f.mu.Lock()
	listening := f.started && !f.paused && !f.opts.NoAgent && int(port) == f.agentPort()
	agent := f.agent
	f.mu.Unlock()
	if !listening {
		return
	}
	var guest net.Conn
	if agent != nil {
		// Like a guest whose agent is not listening yet, a failed dial
		// closes the connection and the client retries.
		if guest, err = net.Dial("unix", agent.sock); err != nil {
			return
		}
		defer guest.Close()
	}
	conn.SetReadDeadline(time.Time{})
	if _, err := fmt.Fprintf(conn, "OK %d\n", hostPorts.Add(1)); err != nil {
		return
	}
	if guest != nil {
		splice.Join(&bufConn{Conn: conn, r: r}, guest)
		return
	}
	f.serveAgent(conn, r)
}

// bufConn reads what the handshake buffered, then the connection.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufConn) CloseWrite() error { return c.Conn.(*net.UnixConn).CloseWrite() }

// runningAgent is a real banger-agent playing the guest's.
type runningAgent struct {
	cmd  *exec.Cmd
	sock string
	dir  string
}

// startAgent runs Options.Agent on a Unix socket; the caller holds f.mu.
func (f *fake) startAgent(console io.Writer) error {
	dir, err := os.MkdirTemp("", "fakefc-agent")
	if err != nil {
		return err
	}
	sock := filepath.Join(dir, "agent.sock")
	cmd, err := sysexec.Start(sysexec.Cmd{
		Argv:   []string{f.opts.Agent, "--listen-unix", sock},
		Stdout: console, Stderr: console,
	}, false)
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	f.agent = &runningAgent{cmd: cmd, sock: sock, dir: dir}
	return nil
}

// stopAgent ends the real agent; the caller holds f.mu.
func (f *fake) stopAgent() {
	if f.agent == nil {
		return
	}
	_ = f.agent.cmd.Process.Signal(syscall.SIGTERM)
	_ = f.agent.cmd.Wait()
	os.RemoveAll(f.agent.dir)
	f.agent = nil
}

// serveAgent answers HTTP/1.1 requests on one connection, playing
// banger-agent.
func (f *fake) serveAgent(conn net.Conn, r *bufio.Reader) {
	for {
		req, err := http.ReadRequest(r)
		if err != nil {
			return
		}
		req.Body.Close()
		status, body := f.agentAnswer(req.Method, req.URL.Path)
		resp := &http.Response{
			StatusCode:    status,
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        http.Header{"Content-Type": {"application/json"}},
			ContentLength: int64(len(body)),
			Body:          http.NoBody,
		}
		if len(body) > 0 {
			resp.Body = readCloser{strings.NewReader(string(body))}
		}
		if err := resp.Write(conn); err != nil || req.Close {
			return
		}
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

func (f *fake) agentAnswer(method, path string) (int, []byte) {
	if method != http.MethodGet {
		return http.StatusMethodNotAllowed, []byte(`{"error":"method not allowed"}`)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var v any
	switch path {
	case "/healthz":
		v = api.AgentHealth{
			Status:          "ok",
			Version:         AgentVersion,
			Hostname:        f.hostname(),
			UptimeSeconds:   time.Since(f.startedAt).Seconds(),
			BootID:          f.bootID,
			WorkDiskMounted: true,
		}
	case "/v1/info":
		mem := int64(*f.machine.MemSizeMib) << 20
		v = api.AgentInfo{MemTotalBytes: mem, MemAvailBytes: mem / 2}
	default:
		return http.StatusNotFound, []byte(`{"error":"not found"}`)
	}
	data, _ := json.Marshal(v)
	return http.StatusOK, data
}

// bootArg returns the value of key=value in the boot args.
func (f *fake) bootArg(key string) string {
	if f.boot == nil {
		return ""
	}
	for _, field := range strings.Fields(f.boot.BootArgs) {
		if v, ok := strings.CutPrefix(field, key+"="); ok {
			return v
		}
	}
	return ""
}

// hostname is the hostname field of ip=<client>:<server>:<gw>:<mask>:<host>:...
func (f *fake) hostname() string {
	parts := strings.Split(f.bootArg("ip"), ":")
	if len(parts) > 4 && parts[4] != "" {
		return parts[4]
	}
	return "localhost"
}

func (f *fake) agentPort() int {
	if p, err := strconv.Atoi(f.bootArg("banger.agent_port")); err == nil && p > 0 {
		return p
	}
	return defaultAgentPort
}

func newBootID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
