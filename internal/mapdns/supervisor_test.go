package mapdns

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/hostnet/nettest"
	"github.com/banger-dev/banger/internal/mapdns/mapdnstest"
	"github.com/banger-dev/banger/internal/sysexec"
)

// patience tells "noticed" from "waited": every wait below ends as soon as
// its condition holds, and fails only after this long.
const patience = 20 * time.Second

// standIn copies the test binary to a directory of its own as "mapdns" and
// makes the processes this test starts play mapdns in ns.
func standIn(t *testing.T, ns nettest.NS) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "mapdns")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(mapdnstest.EnvRun, "1")
	t.Setenv(mapdnstest.EnvNetns, ns.Name)
	return bin
}

// eventually waits until cond holds, failing with its last word after
// patience.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s (last: %s)", what, patience, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// answers waits until dig gets exactly want (no address: an empty NOERROR,
// which is what mapdns answers for a name it does not have).
func answers(t *testing.T, ns nettest.NS, name string, want ...string) {
	t.Helper()
	eventually(t, fmt.Sprintf("mapdns answers %s with %v", name, want), func() (bool, string) {
		status, addrs := mapdnstest.Dig(ns, "127.0.0.1:53", name)
		return status == "NOERROR" && slices.Equal(addrs, want), fmt.Sprintf("%s %v", status, addrs)
	})
}

func requireDig(t *testing.T) {
	t.Helper()
	if _, err := sysexec.LookPath("dig"); err != nil {
		t.Skip("needs dig (apt-get install dnsutils)")
	}
}

// The supervisor runs mapdns as users run it (in the data file's
// directory, no arguments), restarts it to load a changed file, starts it
// again after a crash, keeps one instance, and Stop leaves none.
func TestSupervisorRunsMapdns(t *testing.T) {
	requireDig(t)
	ns := nettest.New(t)
	bin := standIn(t, ns)
	dir := t.TempDir()
	data := filepath.Join(dir, FileName)
	foreign := `{"printer.lan.": {"A": "192.168.1.9", "TTL": 60}}`
	if err := os.WriteFile(data, []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(data, "vm", map[string]netip.Addr{"dev": addr("172.30.0.2")}); err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{Bin: bin, DataFile: data, LogFile: filepath.Join(dir, "mapdns.log"), Logf: t.Logf,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	answers(t, ns, "dev.vm.", "172.30.0.2")
	answers(t, ns, "printer.lan.", "192.168.1.9")
	first := s.Status().PID

	// A changed file: a new instance serves it.
	if err := Write(data, "vm", map[string]netip.Addr{"dev": addr("172.30.0.5"), "web": addr("172.30.0.6")}); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	answers(t, ns, "web.vm.", "172.30.0.6")
	answers(t, ns, "dev.vm.", "172.30.0.5")
	second := s.Status().PID
	if second == first || second == 0 {
		t.Errorf("pid %d after the restart, was %d", second, first)
	}
	if pids, _ := findProcesses("/proc", bin); !slices.Equal(pids, []int{second}) {
		t.Errorf("processes running mapdns: %v, want only %d", pids, second)
	}

	// A crash: started again.
	if err := syscall.Kill(second, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a new mapdns after the crash", func() (bool, string) {
		st := s.Status()
		return st.PID != 0 && st.PID != second, fmt.Sprintf("%+v", st)
	})
	if st := s.Status(); st.Starts != 3 || !strings.Contains(st.LastExit, "killed") {
		t.Errorf("status %+v, want 3 starts and the kill as the last exit", st)
	}
	answers(t, ns, "dev.vm.", "172.30.0.5")

	// Deleted names: gone, foreign entries stay.
	if err := Write(data, "vm", nil); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	answers(t, ns, "web.vm.")
	answers(t, ns, "printer.lan.", "192.168.1.9")

	last := s.Status().PID
	s.Stop()
	if pids, _ := findProcesses("/proc", bin); len(pids) != 0 {
		t.Errorf("mapdns still runs after Stop: %v", pids)
	}
	if err := syscall.Kill(last, 0); err == nil {
		t.Errorf("pid %d still exists after Stop", last)
	}
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return !(i >= 0 && i+2 < len(b) && b[i+2] == 'Z')
}

// A mapdns banger did not start is never signalled, and banger starts no
// second one beside it.
func TestSupervisorLeavesForeignMapdnsAlone(t *testing.T) {
	requireDig(t)
	ns := nettest.New(t)
	bin := standIn(t, ns)
	dir := t.TempDir()
	data := filepath.Join(dir, FileName)
	if err := Write(data, "vm", map[string]netip.Addr{"dev": addr("172.30.0.2")}); err != nil {
		t.Fatal(err)
	}
	theirs, err := sysexec.Start(sysexec.Cmd{Argv: []string{bin}, Dir: dir}, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = theirs.Process.Kill(); _ = theirs.Wait() })
	answers(t, ns, "dev.vm.", "172.30.0.2")

	s := &Supervisor{Bin: bin, DataFile: data, Logf: t.Logf, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the other mapdns reported", func() (bool, string) {
		st := s.Status()
		return slices.Equal(st.Foreign, []int{theirs.Process.Pid}), fmt.Sprintf("%+v", st)
	})
	s.Restart()
	s.Stop()
	if st := s.Status(); st.Starts != 0 {
		t.Errorf("banger started %d mapdns beside the user's", st.Starts)
	}
	if !alive(theirs.Process.Pid) {
		t.Fatal("banger ended a mapdns it did not start")
	}
	answers(t, ns, "dev.vm.", "172.30.0.2")
}

var envSupervise = string(envknob.MapDNSSupervise) // "BIN DATAFILE": this process supervises

// superviseMain runs a supervisor and prints its mapdns's pid, until killed.
func superviseMain() {
	bin, data, _ := strings.Cut(envknob.MapDNSSupervise.Value(), " ")
	os.Unsetenv(envSupervise) // mapdns plays mapdns, not this
	s := &Supervisor{Bin: bin, DataFile: data}
	if err := s.Start(); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	for s.Status().PID == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println(s.Status().PID)
	select {}
}

// A daemon that dies without stopping (SIGKILL) takes its mapdns along.
func TestSupervisedMapdnsDiesWithTheDaemon(t *testing.T) {
	requireDig(t)
	ns := nettest.New(t)
	bin := standIn(t, ns)
	data := filepath.Join(t.TempDir(), FileName)
	if err := Write(data, "vm", map[string]netip.Addr{"dev": addr("172.30.0.2")}); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	t.Setenv(envSupervise, bin+" "+data)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	daemon, err := sysexec.Start(sysexec.Cmd{Argv: []string{self}, Stdout: w}, false)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = daemon.Process.Kill(); _ = daemon.Wait() })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
	}()
	var pid int
	select {
	case s := <-line:
		if pid, err = strconv.Atoi(strings.TrimSpace(s)); err != nil {
			t.Fatalf("supervising process said %q", s)
		}
	case <-time.After(patience):
		t.Fatal("the supervising process never reported its mapdns")
	}
	answers(t, ns, "dev.vm.", "172.30.0.2")
	if err := daemon.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = daemon.Wait()
	eventually(t, "mapdns ended with its daemon", func() (bool, string) {
		return !alive(pid), fmt.Sprintf("pid %d alive", pid)
	})
}

// A mapdns that keeps dying (here: a broken data file, which it reports
// and exits 0 on) is started again after a backoff that doubles up to the
// cap; what is asserted is the sequence of waits, not how long they took.
func TestSupervisorBacksOff(t *testing.T) {
	ns := nettest.New(t)
	bin := standIn(t, ns)
	dir := t.TempDir()
	data := filepath.Join(dir, FileName)
	if err := os.WriteFile(data, []byte("{broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var waits []string
	s := &Supervisor{Bin: bin, DataFile: data, LogFile: filepath.Join(dir, "mapdns.log"),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 320 * time.Millisecond,
		Logf: func(format string, args ...any) {
			line := fmt.Sprintf(format, args...)
			if _, after, ok := strings.Cut(line, "starting it again in "); ok {
				mu.Lock()
				waits = append(waits, strings.Fields(after)[0])
				mu.Unlock()
			}
		}}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "seven restarts", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(waits) >= 7, fmt.Sprint(waits)
	})
	s.Stop()
	mu.Lock()
	defer mu.Unlock()
	// (An instance that ran longer than the cap, 320ms, would reset it.)
	want := []string{"10ms", "20ms", "40ms", "80ms", "160ms", "320ms", "320ms"}
	if !slices.Equal(waits[:7], want) {
		t.Errorf("backoffs %v, want %v", waits, want)
	}
	log, _ := os.ReadFile(s.LogFile)
	if !strings.Contains(string(log), "Failed to read config") {
		t.Errorf("mapdns's own output is not in its log:\n%s", log)
	}
}
