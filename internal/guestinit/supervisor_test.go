package guestinit

import (
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// reaperRole makes the test binary play a part in TestReaperAndExec.
const reaperRole = "BANGER_GUESTINIT_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(reaperRole) {
	case "init":
		os.Exit(playInit())
	case "exec":
		os.Exit(playExecServer())
	}
	os.Exit(m.Run())
}

// TestReaperAndExec runs the supervisor as the reaper of a process tree
// (a child subreaper stands in for PID 1): an exec-server child (as the
// agent is) runs commands with os/exec and gets every exit status right
// while the commands' orphans land on the reaper and are reaped; a
// service that keeps exiting is restarted; no zombie is left.
func TestReaperAndExec(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = roleEnv("init")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the init role failed: %v\n%s", err, out)
	}
}

const orphansPerRun = 20

// roleEnv is this environment with the role replaced (not added: the
// first of two entries would win).
func roleEnv(role string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, reaperRole+"=") {
			env = append(env, e)
		}
	}
	return append(env, reaperRole+"="+role)
}

func playInit() int {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Println("PR_SET_CHILD_SUBREAPER:", err)
		return 1
	}
	logs := &lockedLog{}
	logger := log.New(io.MultiWriter(os.Stderr, logs), "init: ", 0)
	sup := NewSupervisor(logger, os.Stderr)
	stop := make(chan struct{})
	defer close(stop)
	go sup.Reap(stop)
	execDone := make(chan syscall.WaitStatus, 1)
	err := sup.Start(Service{Name: "exec-server", Argv: []string{os.Args[0], "-test.run=^$"}, Env: roleEnv("exec"),
		Dir: "/", Once: true, Done: func(ws syscall.WaitStatus) { execDone <- ws }})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	if err := sup.Start(Service{Name: "flaky", Argv: []string{"/bin/sh", "-c", "exit 1"}, Dir: "/"}); err != nil {
		fmt.Println(err)
		return 1
	}
	select {
	case ws := <-execDone:
		if ws.ExitStatus() != 0 {
			fmt.Println("the exec server saw wrong exit statuses:", ws)
			return 1
		}
	case <-time.After(2 * time.Minute):
		fmt.Println("the exec server did not finish")
		return 1
	}
	// Bounds, not timing assertions: the orphans sleep 0.1 s; the flaky
	// service is restarted after 1 s then 2 s.
	deadline := time.Now().Add(time.Minute)
	for (sup.Orphans() < orphansPerRun || sup.Starts("flaky") < 3) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := sup.Orphans(); n < orphansPerRun {
		fmt.Printf("reaped %d orphans, want %d\n", n, orphansPerRun)
		return 1
	}
	if n := sup.Starts("flaky"); n < 3 {
		fmt.Printf("the exiting service was started %d times, want restarts\n", n)
		return 1
	}
	sup.StopRestarts()
	sup.ReapNow()
	if z := zombies(); len(z) > 0 {
		fmt.Println("zombies left:", z)
		return 1
	}
	// The console names each start by its real pid (the one its exit is
	// logged with).
	text := logs.String()
	m := regexp.MustCompile(`exec-server: started \(pid (\d+)\)`).FindStringSubmatch(text)
	if m == nil || !strings.Contains(text, "exec-server: pid "+m[1]+" exited with status 0") {
		fmt.Printf("the log does not name the exec server's pid on start and exit:\n%s", text)
		return 1
	}
	return 0
}

// lockedLog collects log output written from several goroutines.
type lockedLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// playExecServer does what the agent's exec does: os/exec, whose Wait
// needs the child's exit status, with commands that leave orphans.
func playExecServer() int {
	for i := range orphansPerRun {
		want := i%5 + 1
		c := exec.Command("/bin/sh", "-c", "sleep 0.1 </dev/null >/dev/null 2>&1 & exit "+strconv.Itoa(want))
		err := c.Run()
		if c.ProcessState == nil || c.ProcessState.ExitCode() != want {
			fmt.Fprintf(os.Stderr, "run %d: %v (state %v), want exit %d\n", i, err, c.ProcessState, want)
			return 1
		}
	}
	return 0
}

// zombies lists this process's children that exited and were not reaped.
func zombies() []string {
	var out []string
	self := strconv.Itoa(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == self {
			out = append(out, e.Name())
		}
	}
	return out
}
