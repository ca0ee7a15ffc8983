package agentclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
)

// ExecIO is what RunExec connects to a started exec.
type ExecIO struct {
	// Stdin feeds the process; its EOF closes the guest's stdin. nil is
	// an empty stdin.
	Stdin io.Reader
	// Stdout and Stderr get the process's output as it comes, byte-exact.
	Stdout, Stderr io.Writer
	// OnStarted, when set, gets the guest pid.
	OnStarted func(pid int)
	// Signals and Resize, when set, are forwarded until RunExec returns.
	Signals <-chan int
	Resize  <-chan agentproto.Resize
}

// RunExec drives an exec connection (from Client.Exec) until the guest's
// exit frame and returns it. The connection is closed on return. The
// guest's frames are untrusted: each is bounded by the frame reader and
// checked by its decoder.
func RunExec(conn io.ReadWriteCloser, x ExecIO) (agentproto.Exit, error) {
	defer conn.Close()
	var wmu sync.Mutex
	send := func(t agentproto.Type, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return agentproto.WriteFrame(conn, t, p)
	}
	done := make(chan struct{})
	defer close(done)

	go func() {
		if x.Stdin != nil {
			buf := make([]byte, 32<<10)
			for {
				n, err := x.Stdin.Read(buf)
				if n > 0 && send(agentproto.TypeStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					break
				}
			}
		}
		_ = send(agentproto.TypeStdinEOF, nil)
	}()
	go func() {
		for {
			select {
			case <-done:
				return
			case sig, ok := <-x.Signals:
				if !ok {
					x.Signals = nil
					continue
				}
				_ = send(agentproto.TypeSignal, []byte{byte(sig)})
			case sz, ok := <-x.Resize:
				if !ok {
					x.Resize = nil
					continue
				}
				_ = send(agentproto.TypeResize, sz.Encode())
			}
		}
	}()

	fr := agentproto.NewReader(conn)
	for {
		t, p, err := fr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return agentproto.Exit{}, errors.New("the connection to the guest agent ended before the command's exit status (VM stopped or agent restarted?)")
			}
			return agentproto.Exit{}, fmt.Errorf("exec stream from the guest: %w", err)
		}
		switch t {
		case agentproto.TypeStarted:
			st, err := agentproto.DecodeStarted(p)
			if err != nil {
				return agentproto.Exit{}, fmt.Errorf("guest agent: %w", err)
			}
			if x.OnStarted != nil {
				x.OnStarted(st.PID)
			}
		case agentproto.TypeStdout, agentproto.TypeStderr:
			w := x.Stdout
			if t == agentproto.TypeStderr {
				w = x.Stderr
			}
			if w == nil {
				continue
			}
			if _, err := w.Write(p); err != nil {
				return agentproto.Exit{}, fmt.Errorf("write the command's output: %w", err)
			}
		case agentproto.TypeExit:
			return agentproto.DecodeExit(p)
		case agentproto.TypeError:
			var ae api.Error
			if json.Unmarshal(p, &ae) != nil || ae.Message == "" {
				return agentproto.Exit{}, fmt.Errorf("guest agent sent a malformed error frame")
			}
			return agentproto.Exit{}, sanitize(&ae)
		default:
			// A frame a newer agent sends that this host does not know.
		}
	}
}
