package agentclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/agentclient/hvsocktest"
	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/tarstream"
)

// transports runs f against the real agent handler over both channels:
// Firecracker's hybrid vsock (the wire-level muxer) and QEMU's yamux over
// virtio-serial (the fake chardev and the agent's real serial loop).
func transports(t *testing.T, f func(t *testing.T, c Client)) {
	t.Run("hybrid-vsock", func(t *testing.T) {
		m := hvsocktest.NewMuxer(t, filepath.Join(shortDir(t), "v.sock"), agentHandler(t))
		f(t, hybridClient(m.Path(), 1024))
	})
	t.Run("virtio-serial", func(t *testing.T) {
		fc := newFakeChardev(t)
		startGuestAgent(t, fc)
		s := NewSerialSession(fc.path())
		t.Cleanup(func() { s.Close() })
		f(t, Client{Dial: s.Dial})
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type execResult struct {
	exit           agentproto.Exit
	stdout, stderr string
	pid            int
}

func runExec(t *testing.T, c Client, req agentproto.ExecRequest, stdin io.Reader) (execResult, error) {
	t.Helper()
	conn, err := c.Exec(testCtx(t), req)
	if err != nil {
		return execResult{}, err
	}
	var out, errOut bytes.Buffer
	var res execResult
	res.exit, err = RunExec(conn, ExecIO{Stdin: stdin, Stdout: &out, Stderr: &errOut, OnStarted: func(pid int) { res.pid = pid }})
	res.stdout, res.stderr = out.String(), errOut.String()
	return res, err
}

func TestExec(t *testing.T) {
	transports(t, func(t *testing.T, c Client) {
		for _, tc := range []struct {
			argv     []string
			stdin    string
			code     int
			signal   int
			out, err string
		}{
			{argv: []string{"true"}},
			{argv: []string{"sh", "-c", "exit 7"}, code: 7},
			{argv: []string{"sh", "-c", "echo out; echo err >&2; exit 1"}, code: 1, out: "out\n", err: "err\n"},
			{argv: []string{"sh", "-c", "kill -KILL $$"}, code: 137, signal: 9},
			// stdin reaches the process and its end closes the pipe.
			{argv: []string{"sh", "-c", "wc -c; cat"}, stdin: "12345", out: "5\n"},
			{argv: []string{"printf", "\\000\\377\\n"}, out: "\x00\xff\n"},
		} {
			res, err := runExec(t, c, agentproto.ExecRequest{Argv: tc.argv}, strings.NewReader(tc.stdin))
			if err != nil {
				t.Fatalf("%v: %v", tc.argv, err)
			}
			if res.exit.Code != tc.code || res.exit.Signal != tc.signal || strings.TrimLeft(res.stdout, " ") != tc.out || res.stderr != tc.err || res.pid <= 0 {
				t.Errorf("%v: exit %+v, stdout %q, stderr %q, pid %d; want code %d signal %d, %q, %q",
					tc.argv, res.exit, res.stdout, res.stderr, res.pid, tc.code, tc.signal, tc.out, tc.err)
			}
		}
	})
}

func TestExecEnvironmentAndWorkdir(t *testing.T) {
	transports(t, func(t *testing.T, c Client) {
		dir := t.TempDir()
		res, err := runExec(t, c, agentproto.ExecRequest{
			Argv: []string{"sh", "-c", `echo "$A|$B|$(pwd)|$PATH"`}, Env: []string{"A=1", "B=x=y"}, WorkDir: dir,
		}, nil)
		want := "1|x=y|" + dir + "|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
		if err != nil || res.stdout != want {
			t.Errorf("stdout %q, %v; want %q", res.stdout, err, want)
		}
	})
}

func TestExecRefusals(t *testing.T) {
	transports(t, func(t *testing.T, c Client) {
		notExec := filepath.Join(t.TempDir(), "script")
		if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			req  agentproto.ExecRequest
			code api.ErrorCode
		}{
			{agentproto.ExecRequest{Argv: []string{"no-such-command-anywhere"}}, agentproto.CodeCommandNotFound},
			{agentproto.ExecRequest{Argv: []string{"/no/such/file"}}, agentproto.CodeCommandNotFound},
			{agentproto.ExecRequest{Argv: []string{notExec}}, agentproto.CodeCommandNotExecutable},
			{agentproto.ExecRequest{Argv: []string{"true"}, WorkDir: "/no/such/dir"}, api.CodeInvalidArgument},
			{agentproto.ExecRequest{Argv: []string{"true"}, User: "no-such-user-here"}, api.CodeInvalidArgument},
			{agentproto.ExecRequest{Argv: []string{"true"}, Env: []string{"NOEQUALS"}}, api.CodeInvalidArgument},
			{agentproto.ExecRequest{}, api.CodeInvalidArgument},
		} {
			_, err := c.Exec(testCtx(t), tc.req)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != tc.code {
				t.Errorf("exec %+v: %v, want an error with code %s", tc.req, err, tc.code)
			}
		}
	})
}

func TestExecTimeoutKillsTheGroup(t *testing.T) {
	transports(t, func(t *testing.T, c Client) {
		// The child sleep would hold stdout open if only sh were killed.
		res, err := runExec(t, c, agentproto.ExecRequest{Argv: []string{"sh", "-c", "sleep 600; echo never"}, TimeoutMillis: 200}, nil)
		if err != nil || res.exit.Code != 124 || !res.exit.TimedOut || res.stdout != "" {
			t.Errorf("exit %+v stdout %q err %v; want 124, timed out, no output", res.exit, res.stdout, err)
		}
	})
}

func TestExecForwardsSignals(t *testing.T) {
	transports(t, func(t *testing.T, c Client) {
		conn, err := c.Exec(testCtx(t), agentproto.ExecRequest{
			Argv: []string{"sh", "-c", `trap 'echo got-int; exit 42' INT; echo ready; while :; do sleep 1; done`}})
		if err != nil {
			t.Fatal(err)
		}
		sigs := make(chan int, 1)
		pr, pw := io.Pipe()
		done := make(chan struct{})
		var exit agentproto.Exit
		go func() {
			defer close(done)
			exit, err = RunExec(conn, ExecIO{Stdout: pw, Signals: sigs, Stdin: blockingReader{}})
			pw.Close()
		}()
		sc := bufio.NewScanner(pr)
		if !sc.Scan() || sc.Text() != "ready" {
			t.Fatalf("first line %q, want ready", sc.Text())
		}
		sigs <- 2
		if !sc.Scan() || sc.Text() != "got-int" {
			t.Errorf("after SIGINT: %q, want got-int", sc.Text())
		}
		go io.Copy(io.Discard, pr)
		<-done
		if err != nil || exit.Code != 42 {
			t.Errorf("exit %+v, %v; want 42 from the trap", exit, err)
		}
	})
}

// blockingReader is a stdin that never ends (a terminal nobody types in).
type blockingReader struct{}

func (blockingReader) Read([]byte) (int, error) { select {} }

func TestExecTTY(t *testing.T) {
	transports(t, func(t *testing.T, c Client) {
		res, err := runExec(t, c, agentproto.ExecRequest{Argv: []string{"sh", "-c", "stty size; test -t 0 && echo tty; echo $TERM"},
			TTY: true, Rows: 33, Cols: 99, Term: "vt100"}, blockingReader{})
		if err != nil || res.exit.Code != 0 || res.stdout != "33 99\r\ntty\r\nvt100\r\n" {
			t.Errorf("tty exec: %+v stdout %q err %v; want size 33 99 on a tty with TERM=vt100", res.exit, res.stdout, err)
		}
	})
}

func TestFilesRoundTrip(t *testing.T) {
	transports(t, func(t *testing.T, c Client) {
		ctx := testCtx(t)
		src := filepath.Join(t.TempDir(), "tree")
		mustWrite(t, filepath.Join(src, "a.txt"), "alpha", 0o640)
		mustWrite(t, filepath.Join(src, "sub", "run.sh"), "#!/bin/sh\n", 0o755)
		if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
			t.Fatal(err)
		}
		mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := os.Chtimes(filepath.Join(src, "a.txt"), mtime, mtime); err != nil {
			t.Fatal(err)
		}
		guest := t.TempDir()
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tarstream.Pack(pw, src, "", true)) }()
		res, err := c.Put(ctx, guest, "copied", pr)
		if err != nil || res.Files != 5 || res.Bytes != int64(len("alpha")+len("#!/bin/sh\n")) {
			t.Fatalf("Put: %+v, %v; want 5 entries", res, err)
		}
		st, err := c.Stat(ctx, filepath.Join(guest, "copied"))
		if err != nil || !st.Exists || !st.IsDir {
			t.Errorf("Stat of the copied tree: %+v, %v", st, err)
		}
		// And back: a tar of the guest tree unpacked on the "host".
		back := t.TempDir()
		pr, pw = io.Pipe()
		go func() { pw.CloseWithError(c.Get(ctx, filepath.Join(guest, "copied"), true, pw)) }()
		if _, err := tarstream.Unpack(pr, back, ""); err != nil {
			t.Fatalf("Get and unpack: %v", err)
		}
		fi, err := os.Stat(filepath.Join(back, "copied", "a.txt"))
		if err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
			t.Errorf("a.txt after the round trip: %v, %v; want mode 0640 and mtime %v", fi, err, mtime)
		}
		if fi, err := os.Stat(filepath.Join(back, "copied", "sub", "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("run.sh: %v, %v; want mode 0755", fi, err)
		}
		if l, err := os.Readlink(filepath.Join(back, "copied", "link")); err != nil || l != "a.txt" {
			t.Errorf("link: %q, %v; want a symlink to a.txt", l, err)
		}
		// A directory without recursive, and a missing path, are refused.
		if err := c.Get(ctx, guest, false, io.Discard); err == nil || !strings.Contains(err.Error(), "-r") {
			t.Errorf("Get of a directory without recursive: %v, want a hint to use -r", err)
		}
		var ae *api.Error
		if err := c.Get(ctx, "/no/such/path", false, io.Discard); !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
			t.Errorf("Get of a missing path: %v, want not_found", err)
		}
	})
}

func mustWrite(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestConnect(t *testing.T) {
	transports(t, func(t *testing.T, c Client) {
		// The in-process "guest" shares this host's loopback.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			defer s.Close()
			data, _ := io.ReadAll(s) // until the host half-closes
			s.Write(append([]byte("echo:"), data...))
		}()
		conn, err := c.Connect(testCtx(t), ln.Addr().(*net.TCPAddr).Port)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte("ping"))
		if err := conn.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(conn)
		if err != nil || string(got) != "echo:ping" {
			t.Errorf("through the forward: %q, %v; want echo:ping", got, err)
		}

		// A port nobody listens on is a clear error.
		closed, _ := net.Listen("tcp", "127.0.0.1:0")
		port := closed.Addr().(*net.TCPAddr).Port
		closed.Close()
		if _, err := c.Connect(testCtx(t), port); err == nil || !strings.Contains(err.Error(), "nothing accepts connections") {
			t.Errorf("Connect to a closed port: %v", err)
		}
	})
}

// An agent from before protocol 2 answers 404 for the new paths: the
// host says it is too old and how to fix it.
func TestOldAgentIsTooOld(t *testing.T) {
	old := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"code":"not_found","message":"no agent endpoint at \"`+r.URL.Path+`\"","hint":"the agent serves GET /healthz and GET /v1/info"}`)
	})
	m := hvsocktest.NewMuxer(t, filepath.Join(shortDir(t), "v.sock"), old)
	c := hybridClient(m.Path(), 1024)
	check := func(what string, err error) {
		var ae *api.Error
		if !errors.As(err, &ae) || !strings.Contains(ae.Message, "too old") || !strings.Contains(ae.Hint, "image build") {
			t.Errorf("%s against an old agent: %v; want 'too old' with a rebuild hint", what, err)
		}
	}
	_, err := c.Exec(testCtx(t), agentproto.ExecRequest{Argv: []string{"true"}})
	check("exec", err)
	_, err = c.Stat(testCtx(t), "/")
	check("stat", err)
	_, err = c.Connect(testCtx(t), 80)
	check("connect", err)
	_, err = c.ReadDir(testCtx(t), "/", 10)
	check("dir", err)
	if !IsTooOld(err) {
		t.Errorf("IsTooOld(%v) = false", err)
	}
	if IsTooOld(api.NewError(api.CodeFailedPrecondition, "the disk is full", "")) {
		t.Error("IsTooOld is true for another failed precondition")
	}
}

// A hostile agent's error text reaches the terminal without escapes and
// bounded.
func TestAgentErrorSanitised(t *testing.T) {
	evil := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"code":"x","message":"\u001b]0;pwned\u0007boom`+strings.Repeat("A", 5000)+`"}`)
	})
	m := hvsocktest.NewMuxer(t, filepath.Join(shortDir(t), "v.sock"), evil)
	_, err := hybridClient(m.Path(), 1024).Exec(testCtx(t), agentproto.ExecRequest{Argv: []string{"true"}})
	var ae *api.Error
	if !errors.As(err, &ae) || strings.ContainsRune(ae.Message, 0x1b) || len(ae.Message) > maxMessage+3 || !strings.HasPrefix(ae.Message, "boom") {
		t.Errorf("error %q: want the escape removed and the text bounded", err)
	}
}

// --user runs as that user, in its home, or / when the home does not
// exist (nobody's /nonexistent). Switching users needs root.
func TestExecAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	transports(t, func(t *testing.T, c Client) {
		res, err := runExec(t, c, agentproto.ExecRequest{Argv: []string{"sh", "-c", "id -un; pwd"}, User: "nobody"}, nil)
		if err != nil || res.exit.Code != 0 || res.stdout != "nobody\n/\n" {
			t.Errorf("exec as nobody: %+v %q %q %v; want nobody in /", res.exit, res.stdout, res.stderr, err)
		}
	})
}

// A child left behind holding stdout (a background job ignores SIGINT in
// a non-interactive shell) does not keep the exec open: the exit status
// comes once the shell exits, with everything it wrote.
func TestExecDoesNotWaitForLeftoverChildren(t *testing.T) {
	transports(t, func(t *testing.T, c Client) {
		res, err := runExec(t, c, agentproto.ExecRequest{Argv: []string{"sh", "-c", "sleep 5 & echo started; exit 3"}}, nil)
		if err != nil || res.exit.Code != 3 || res.stdout != "started\n" {
			t.Errorf("exit %+v stdout %q err %v; want 3 and the shell's output", res.exit, res.stdout, err)
		}
	})
}
