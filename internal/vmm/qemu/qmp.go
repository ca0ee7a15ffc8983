package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// QMPClient speaks the QEMU Machine Protocol: one JSON object per line over
// a Unix socket. QEMU sends a greeting, the client must negotiate with
// qmp_capabilities, then each command gets one reply; asynchronous events may
// arrive between them and are kept aside.
type QMPClient struct {
	conn   net.Conn
	r      *bufio.Reader
	nextID int
	// Greeting is QEMU's version banner from the handshake.
	Greeting QMPGreeting
	// Events holds asynchronous events seen while waiting for replies (the
	// most recent maxEvents).
	Events []QMPEvent
	// pendingFD, when set, sends the next command line with a file
	// descriptor attached (ExecuteWithFD).
	pendingFD func(line []byte) error
}

// QMPGreeting is the first message QEMU sends.
type QMPGreeting struct {
	QMP struct {
		Version struct {
			QEMU struct {
				Major int `json:"major"`
				Minor int `json:"minor"`
				Micro int `json:"micro"`
			} `json:"qemu"`
			Package string `json:"package"`
		} `json:"version"`
		Capabilities []string `json:"capabilities"`
	} `json:"QMP"`
}

// QMPEvent is an asynchronous notification such as SHUTDOWN or STOP.
type QMPEvent struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// QMPError is an error reply from QEMU.
type QMPError struct {
	Command string
	Class   string `json:"class"`
	Desc    string `json:"desc"`
}

func (e *QMPError) Error() string {
	return fmt.Sprintf("qmp %s: %s: %s", e.Command, e.Class, e.Desc)
}

// QMPStatus is the reply to query-status.
type QMPStatus struct {
	Running bool   `json:"running"`
	Status  string `json:"status"`
}

const maxEvents = 32

// message is any line QEMU sends; which field is set says what it is.
type message struct {
	QMP    json.RawMessage `json:"QMP"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Return json.RawMessage `json:"return"`
	Error  *QMPError       `json:"error"`
	ID     json.RawMessage `json:"id"`
}

// DialQMP connects to a QMP socket, reads the greeting and leaves command
// mode negotiated. ctx bounds the whole handshake.
func DialQMP(ctx context.Context, socket string) (*QMPClient, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, err
	}
	c := &QMPClient{conn: conn, r: bufio.NewReader(conn)}
	if err := c.handshake(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *QMPClient) handshake(ctx context.Context) error {
	defer c.watch(ctx)()
	for {
		m, raw, err := c.read()
		if err != nil {
			return fmt.Errorf("qmp greeting: %w", err)
		}
		if m.QMP != nil {
			if err := json.Unmarshal(raw, &c.Greeting); err != nil {
				return fmt.Errorf("qmp greeting: %w", err)
			}
			break
		}
		if m.Event != "" {
			c.addEvent(m)
			continue
		}
		return fmt.Errorf("qmp greeting: unexpected message %s", raw)
	}
	return c.Execute(ctx, "qmp_capabilities", nil, nil)
}

// Execute runs one command. args may be nil; result (a pointer) receives the
// "return" value and may be nil. An error reply comes back as *QMPError.
func (c *QMPClient) Execute(ctx context.Context, command string, args, result any) error {
	defer c.watch(ctx)()
	c.nextID++
	id := fmt.Sprintf("banger-%d", c.nextID)
	req := map[string]any{"execute": command, "id": id}
	if args != nil {
		req["arguments"] = args
	}
	line, err := json.Marshal(req)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if c.pendingFD != nil {
		err = c.pendingFD(line)
	} else {
		_, err = c.conn.Write(line)
	}
	if err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	wantID, _ := json.Marshal(id)
	for {
		m, raw, err := c.read()
		if err != nil {
			return fmt.Errorf("qmp %s: %w", command, err)
		}
		if m.Event != "" {
			c.addEvent(m)
			continue
		}
		// Replies to other ids cannot happen on our own connection, but a
		// reply without our id would be a protocol error worth skipping
		// rather than misreading.
		if m.ID != nil && string(m.ID) != string(wantID) {
			continue
		}
		if m.Error != nil {
			m.Error.Command = command
			return m.Error
		}
		if m.Return == nil {
			return fmt.Errorf("qmp %s: unexpected message %s", command, raw)
		}
		if result != nil {
			if err := json.Unmarshal(m.Return, result); err != nil {
				return fmt.Errorf("qmp %s: decode reply: %w", command, err)
			}
		}
		return nil
	}
}

// Status runs query-status.
func (c *QMPClient) Status(ctx context.Context) (QMPStatus, error) {
	var st QMPStatus
	err := c.Execute(ctx, "query-status", nil, &st)
	return st, err
}

// Quit asks QEMU to exit at once. QEMU may close the connection before or
// after replying; both mean the command was taken.
func (c *QMPClient) Quit(ctx context.Context) error {
	err := c.Execute(ctx, "quit", nil, nil)
	if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isConnReset(err)) {
		return nil
	}
	return err
}

// Close closes the connection.
func (c *QMPClient) Close() error { return c.conn.Close() }

func (c *QMPClient) read() (message, []byte, error) {
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return message{}, nil, err
	}
	var m message
	if err := json.Unmarshal(line, &m); err != nil {
		return message{}, nil, fmt.Errorf("bad QMP message %q: %w", line, err)
	}
	return m, line, nil
}

func (c *QMPClient) addEvent(m message) {
	c.Events = append(c.Events, QMPEvent{Event: m.Event, Data: m.Data})
	if len(c.Events) > maxEvents {
		c.Events = c.Events[len(c.Events)-maxEvents:]
	}
}

// watch applies ctx's deadline to the connection and unblocks reads when
// ctx is cancelled; call the returned func when done.
func (c *QMPClient) watch(ctx context.Context) (stop func()) {
	dl, _ := ctx.Deadline() // zero = no limit
	c.conn.SetDeadline(dl)
	unhook := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	return func() { unhook() }
}

func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// ExecuteWithFD runs one command while passing f to QEMU as SCM_RIGHTS
// ancillary data on the same message, as getfd requires.
func (c *QMPClient) ExecuteWithFD(ctx context.Context, command string, args any, f *os.File) error {
	uc, ok := c.conn.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("qmp %s: passing a file needs a Unix socket", command)
	}
	c.pendingFD = func(line []byte) error {
		_, _, err := uc.WriteMsgUnix(line, syscall.UnixRights(int(f.Fd())), nil)
		return err
	}
	defer func() { c.pendingFD = nil }()
	return c.Execute(ctx, command, args, nil)
}
