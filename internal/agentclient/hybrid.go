// Package agentclient is the host side of banger's channel to the guest
// agent: dialers for Firecracker's hybrid vsock and QEMU's yamux-multiplexed
// virtio-serial chardev, and an HTTP client for the agent's API.
package agentclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// maxHandshakeLine bounds Firecracker's "OK <port>\n" reply.
const maxHandshakeLine = 32

// errProtocol marks a reply that is not Firecracker's: retrying cannot help.
var errProtocol = errors.New("protocol error")

// DialHybridVsock connects to a guest's vsock port through Firecracker's
// hybrid vsock Unix socket: connect, send "CONNECT <port>\n", expect
// "OK <host_port>\n"; after that the connection is the guest's stream.
//
// Firecracker closes the connection when nothing in the guest listens on the
// port (the agent is still booting), so EOF, a refused connection and a
// missing socket are retried with a short backoff until ctx ends. A reply
// other than OK fails at once.
func DialHybridVsock(ctx context.Context, udsPath string, port uint32) (net.Conn, error) {
	backoff := 20 * time.Millisecond
	const maxBackoff = 500 * time.Millisecond
	attempts := 0
	var lastErr error
	for {
		attempts++
		conn, err := hybridHandshake(ctx, udsPath, port)
		if err == nil {
			return conn, nil
		}
		if errors.Is(err, errProtocol) {
			return nil, fmt.Errorf("vsock %s port %d: %w", udsPath, port, err)
		}
		if ctx.Err() == nil || lastErr == nil {
			lastErr = err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("vsock %s port %d: no guest listener after %d attempts (%w); last failure: %v",
				udsPath, port, attempts, ctx.Err(), lastErr)
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

func hybridHandshake(ctx context.Context, udsPath string, port uint32) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", udsPath)
	if err != nil {
		return nil, err
	}
	// Bound the handshake by ctx; the deadline is cleared once it succeeds.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := io.WriteString(conn, "CONNECT "+strconv.FormatUint(uint64(port), 10)+"\n"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	line, err := readLine(conn)
	if err != nil {
		conn.Close()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("connection closed before OK (is the agent listening on vsock port %d yet?): %w", port, err)
		}
		return nil, fmt.Errorf("read CONNECT reply: %w", err)
	}
	hostPort, ok := strings.CutPrefix(line, "OK ")
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("%w: want \"OK <port>\" in reply to CONNECT, got %q (is %s a Firecracker vsock socket?)", errProtocol, line, udsPath)
	}
	if _, err := strconv.ParseUint(hostPort, 10, 32); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: malformed port in reply %q", errProtocol, line)
	}
	if !stop() {
		conn.Close()
		return nil, ctx.Err()
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// readLine reads up to '\n' one byte at a time: whatever follows belongs to
// the guest's stream and must stay unread.
func readLine(r io.Reader) (string, error) {
	var buf []byte
	var b [1]byte
	for len(buf) < maxHandshakeLine {
		n, err := r.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				return string(buf), nil
			}
			buf = append(buf, b[0])
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				return "", fmt.Errorf("%w: reply %q cut short", errProtocol, buf)
			}
			return "", err
		}
	}
	return "", fmt.Errorf("%w: reply longer than %d bytes without a newline: %q", errProtocol, maxHandshakeLine, buf)
}
