// Package agentproto is the versioned protocol of the work the guest agent
// does for the host beyond health: exec with separate streams, exit status,
// a pty and signals (framed, below), file transfer as tar streams and TCP
// port connections (raw byte streams after an HTTP upgrade).
//
// Every exchange starts as an HTTP/1.1 request on one agent connection
// (hybrid vsock on Firecracker, a yamux stream over virtio-serial on QEMU).
// Exec and connect answer "101 Switching Protocols" and the connection then
// carries exec frames or the TCP bytes; files are plain HTTP bodies. An agent
// older than a feature answers 404 for its path, which the host turns into
// "agent too old: rebuild the image".
//
// Exec frames are a 1-byte type, a 4-byte big-endian payload length and the
// payload. Payloads are at most MaxPayload bytes: a reader refuses longer
// frames before reading them, so a confused or hostile peer cannot make the
// other side allocate.
package agentproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the agent protocol this build speaks. 1 was health and info
// only; 2 adds exec, files, connect and listeners.
const Version = 2

// Features a version-2 agent lists in /healthz.
var Features = []string{"exec", "files", "connect", "listeners", "dir"}

// Paths of the agent's work endpoints.
const (
	ExecPath      = "/v1/exec"      // POST ExecRequest, upgrades to exec frames
	FilesPath     = "/v1/files"     // GET ?path= a tar; PUT ?dir=&name= extracts one
	StatPath      = "/v1/stat"      // GET ?path= a Stat
	ConnectPath   = "/v1/connect"   // POST ?port= upgrades to a TCP stream to 127.0.0.1:port
	ListenersPath = "/v1/listeners" // GET the guest's listening TCP ports
	DirPath       = "/v1/dir"       // GET ?path=&max= a DirResult
)

// Upgrade protocol names (the Upgrade header).
const (
	ExecUpgrade    = "banger-exec/2"
	ConnectUpgrade = "banger-connect/2"
)

// MaxExecRequestBytes bounds an ExecRequest body.
const MaxExecRequestBytes = 256 << 10

// ExecRequest is the body of POST /v1/exec.
type ExecRequest struct {
	Argv    []string `json:"argv"`
	Env     []string `json:"env,omitempty"`     // K=V, added to the agent's base environment
	WorkDir string   `json:"workdir,omitempty"` // default /root
	User    string   `json:"user,omitempty"`    // default root
	// TimeoutMillis, when positive, kills the process group after that long;
	// the exit frame then says TimedOut and code 124.
	TimeoutMillis int64  `json:"timeout_ms,omitempty"`
	TTY           bool   `json:"tty,omitempty"`
	Rows          int    `json:"rows,omitempty"` // initial pty size
	Cols          int    `json:"cols,omitempty"`
	Term          string `json:"term,omitempty"` // TERM for a pty, default xterm-256color
}

// Stat is GET /v1/stat's answer.
type Stat struct {
	Exists bool   `json:"exists"`
	IsDir  bool   `json:"is_dir"`
	Mode   uint32 `json:"mode"`
	Size   int64  `json:"size"`
}

// PutResult is PUT /v1/files' answer.
type PutResult struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// Listener is one listening TCP socket in the guest.
type Listener struct {
	Addr string `json:"addr"` // "0.0.0.0", "127.0.0.1", "::"
	Port int    `json:"port"`
}

// MaxDirEntries bounds GET /v1/dir's max.
const MaxDirEntries = 10000

// DirResult is GET /v1/dir's answer: a directory's entries by name, the
// first max of them.
type DirResult struct {
	Entries   []DirEntry `json:"entries"`
	Truncated bool       `json:"truncated"` // more entries than max
}

// DirEntry is one entry of a directory, not followed when a symlink.
type DirEntry struct {
	Name string `json:"name"`
	Type string `json:"type"` // file, dir, symlink or other
	Mode uint32 `json:"mode"` // permission bits with setuid, setgid and sticky, as chmod takes them
	Size int64  `json:"size"`
}

// ListenersResult is GET /v1/listeners' answer.
type ListenersResult struct {
	Listeners []Listener `json:"listeners"`
}

// Error codes the agent's exec answers with, beyond api's.
const (
	CodeCommandNotFound      = "command_not_found"      // exit 127, as a shell
	CodeCommandNotExecutable = "command_not_executable" // exit 126
)

// Type is an exec frame's type.
type Type byte

// Host to guest.
const (
	TypeStdin    Type = 1 // bytes for the process's stdin (or the pty)
	TypeStdinEOF Type = 2 // no more stdin: the guest closes the pipe
	TypeResize   Type = 3 // Resize: the pty's new size
	TypeSignal   Type = 4 // one byte: a signal number for the process group
)

// Guest to host.
const (
	TypeStarted Type = 16 // Started
	TypeStdout  Type = 17 // bytes of stdout (or the pty's output)
	TypeStderr  Type = 18 // bytes of stderr
	TypeExit    Type = 19 // Exit: the last frame
	TypeError   Type = 20 // JSON api.Error: the exec failed after starting
)

// MaxPayload bounds one frame's payload.
const MaxPayload = 64 << 10

// HeaderLen is a frame header's size.
const HeaderLen = 5

// ErrTooLarge is wrapped by Reader.Next for a frame over MaxPayload.
var ErrTooLarge = errors.New("frame too large")

// WriteFrame writes one frame. Callers sharing w serialise their calls.
func WriteFrame(w io.Writer, t Type, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), MaxPayload)
	}
	buf := make([]byte, HeaderLen+len(payload))
	buf[0] = byte(t)
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	copy(buf[HeaderLen:], payload)
	_, err := w.Write(buf)
	return err
}

// Reader reads frames from a stream.
type Reader struct {
	r   io.Reader
	buf []byte
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Next reads the next frame. The payload is valid until the next call. At
// a clean end of stream it returns io.EOF; a stream cut inside a frame is
// io.ErrUnexpectedEOF.
func (r *Reader) Next() (Type, []byte, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxPayload {
		return 0, nil, fmt.Errorf("%w: header says %d bytes, limit %d", ErrTooLarge, n, MaxPayload)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n, max(int(n), 4<<10))
	}
	p := r.buf[:n]
	if _, err := io.ReadFull(r.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return Type(hdr[0]), p, nil
}

// Started is TypeStarted's payload: 4 bytes, the guest pid.
type Started struct{ PID int }

func (s Started) Encode() []byte { return binary.BigEndian.AppendUint32(nil, uint32(s.PID)) }

// DecodeStarted checks and decodes a started payload.
func DecodeStarted(p []byte) (Started, error) {
	if len(p) != 4 {
		return Started{}, fmt.Errorf("started frame of %d bytes, want 4", len(p))
	}
	pid := binary.BigEndian.Uint32(p)
	if pid == 0 || pid > 1<<22 {
		return Started{}, fmt.Errorf("started frame with pid %d, want 1-%d", pid, 1<<22)
	}
	return Started{PID: int(pid)}, nil
}

// Exit is TypeExit's payload: the status a shell would report (0-255,
// 128+N for signal N, 124 after a timeout), the signal when one killed the
// process, and whether the timeout fired. 3 bytes.
type Exit struct {
	Code     int
	Signal   int
	TimedOut bool
}

func (e Exit) Encode() []byte {
	var flags byte
	if e.TimedOut {
		flags = 1
	}
	return []byte{byte(e.Code), byte(e.Signal), flags}
}

// DecodeExit checks and decodes an exit payload.
func DecodeExit(p []byte) (Exit, error) {
	if len(p) != 3 {
		return Exit{}, fmt.Errorf("exit frame of %d bytes, want 3", len(p))
	}
	if p[1] > 64 || p[2] > 1 {
		return Exit{}, fmt.Errorf("exit frame with signal %d, flags %d: want a signal 0-64 and flags 0-1", p[1], p[2])
	}
	return Exit{Code: int(p[0]), Signal: int(p[1]), TimedOut: p[2] == 1}, nil
}

// Resize is TypeResize's payload: rows and columns, 2 bytes each.
type Resize struct{ Rows, Cols int }

func (r Resize) Encode() []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(r.Rows))
	return binary.BigEndian.AppendUint16(b, uint16(r.Cols))
}

// DecodeResize checks and decodes a resize payload.
func DecodeResize(p []byte) (Resize, error) {
	if len(p) != 4 {
		return Resize{}, fmt.Errorf("resize frame of %d bytes, want 4", len(p))
	}
	r := Resize{Rows: int(binary.BigEndian.Uint16(p)), Cols: int(binary.BigEndian.Uint16(p[2:]))}
	if r.Rows == 0 || r.Cols == 0 {
		return Resize{}, fmt.Errorf("resize to %dx%d: want both at least 1", r.Rows, r.Cols)
	}
	return r, nil
}

// DecodeSignal checks a signal payload: one byte, 1-64.
func DecodeSignal(p []byte) (int, error) {
	if len(p) != 1 || p[0] == 0 || p[0] > 64 {
		return 0, fmt.Errorf("signal frame %v: want one byte 1-64", p)
	}
	return int(p[0]), nil
}
