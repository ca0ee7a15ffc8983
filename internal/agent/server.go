package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
)

// DefaultPort is the agent's vsock port when neither --port nor the kernel
// command line names one.
const DefaultPort uint32 = 1024

// SerialPortName is the name QEMU gives the agent's virtserialport.
const SerialPortName = "banger.agent"

// CmdlinePortKey is the kernel command-line key carrying the vsock port.
const CmdlinePortKey = "banger.agent_port"

// NewServer wraps h in an http.Server with the agent's timeouts and limits.
// One server serves every channel (vsock listener, each serial session).
func NewServer(h http.Handler, logger *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          logger,
	}
}

// PortFromCmdline finds banger.agent_port=N in a kernel command line.
// found is false when the key is absent; err is set when it is malformed.
func PortFromCmdline(cmdline string) (port uint32, found bool, err error) {
	for _, field := range strings.Fields(cmdline) {
		value, ok := strings.CutPrefix(field, CmdlinePortKey+"=")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil || n == 0 {
			return 0, true, fmt.Errorf("kernel command line has %s=%q: want a port number 1-4294967295", CmdlinePortKey, value)
		}
		port, found = uint32(n), true
	}
	return port, found, nil
}

// FindSerialPort returns the device node of the virtio-serial port called
// name, looking in sysDir (normally /sys/class/virtio-ports) for a */name
// file holding it and mapping vportNpM to devDir/vportNpM.
func FindSerialPort(sysDir, devDir, name string) (string, error) {
	entries, err := os.ReadDir(sysDir)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no virtio-serial ports: %s does not exist (is the virtio_console module loaded, and was the VM started with a virtserialport named %s?)", sysDir, name)
	}
	if err != nil {
		return "", fmt.Errorf("list virtio-serial ports: %w", err)
	}
	var seen []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(sysDir, e.Name(), "name"))
		if err != nil {
			continue // a port without a name file is not one QEMU named
		}
		got := strings.TrimSpace(string(data))
		if got == name {
			return filepath.Join(devDir, e.Name()), nil
		}
		seen = append(seen, e.Name()+"="+strconv.Quote(got))
	}
	sort.Strings(seen)
	found := "none"
	if len(seen) > 0 {
		found = strings.Join(seen, ", ")
	}
	return "", fmt.Errorf("no virtio-serial port named %s under %s (ports found: %s)", name, sysDir, found)
}

// SerialConfig describes how ServeSerial reaches the port.
type SerialConfig struct {
	// Open opens the guest end of the port read-write. It is called again
	// after every session, because a host disconnect ends the stream.
	Open func() (io.ReadWriteCloser, error)
	// Name labels the port in logs, e.g. "/dev/vport1p1".
	Name   string
	Logger *log.Logger // default log.Default()
	// MinBackoff and MaxBackoff bound the wait between attempts while no
	// host is connected (defaults 100ms and 1s): with no host, the port
	// reads EOF at once, so waiting is what keeps this from spinning.
	MinBackoff, MaxBackoff time.Duration
}

// ServeSerial serves srv's handler over a virtio-serial port, one yamux
// session (guest = yamux server) per host connection. It never gives up on
// its own: cancel ctx to stop it (shutting srv down alone is noticed only at
// the next host connection). It returns nil once stopped.
func ServeSerial(ctx context.Context, srv *http.Server, cfg SerialConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = log.Default()
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(time.Second, cfg.MinBackoff)
	}
	logf := cfg.Logger.Printf
	backoff := cfg.MinBackoff
	lastProblem := ""
	// note logs a problem once, not on every retry.
	note := func(msg string) {
		if msg != lastProblem {
			logf("serial %s: %s", cfg.Name, msg)
			lastProblem = msg
		}
	}
	wait := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(backoff*2, cfg.MaxBackoff)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}

	for ctx.Err() == nil {
		port, err := cfg.Open()
		if err != nil {
			note(fmt.Sprintf("open failed: %v; retrying", err))
			if !wait() {
				break
			}
			continue
		}
		first, err := readFirstByte(ctx, port)
		if err != nil {
			port.Close()
			if errors.Is(err, io.EOF) {
				note(fmt.Sprintf("no host connected yet; checking every %s at most", cfg.MaxBackoff))
			} else if ctx.Err() == nil {
				note(fmt.Sprintf("read failed: %v; reopening", err))
			}
			if !wait() {
				break
			}
			continue
		}

		logf("serial %s: host connected; serving the agent API over yamux", cfg.Name)
		lastProblem = ""
		started := time.Now()
		err = serveSession(ctx, srv, &portConn{
			r: io.MultiReader(bytes.NewReader([]byte{first}), port),
			f: port,
		}, cfg.Logger)
		port.Close()
		if errors.Is(err, http.ErrServerClosed) || ctx.Err() != nil {
			break
		}
		logf("serial %s: session ended after %s (%v); waiting for the host to reconnect",
			cfg.Name, time.Since(started).Round(time.Millisecond), err)
		backoff = cfg.MinBackoff
		if !wait() {
			break
		}
	}
	return nil
}

// serveSession runs one yamux server session over conn until it breaks.
func serveSession(ctx context.Context, srv *http.Server, conn io.ReadWriteCloser, logger *log.Logger) error {
	ycfg := yamux.DefaultConfig()
	ycfg.LogOutput = nil
	ycfg.Logger = logger
	sess, err := yamux.Server(conn, ycfg)
	if err != nil {
		return fmt.Errorf("start yamux session: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	defer sess.Close()
	// The session is a net.Listener whose Accept fails with the reason the
	// session ended (io.EOF when the host hung up).
	return srv.Serve(sess)
}

// readFirstByte blocks until the host sends something. A virtio-serial port
// with no host connected reads EOF immediately, which is how we tell.
func readFirstByte(ctx context.Context, port io.ReadWriteCloser) (byte, error) {
	stop := context.AfterFunc(ctx, func() { port.Close() })
	defer stop()
	var b [1]byte
	n, err := port.Read(b[:])
	if n == 1 {
		return b[0], nil
	}
	if err == nil {
		// A (0, nil) read is how a device file says end of stream.
		err = io.EOF
	}
	return 0, err
}

// portConn replays the byte readFirstByte consumed, then reads the port.
type portConn struct {
	r io.Reader
	f io.ReadWriteCloser
}

func (c *portConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *portConn) Write(p []byte) (int, error) { return c.f.Write(p) }
func (c *portConn) Close() error                { return c.f.Close() }
