package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
)

// recorder captures the calls a command makes instead of sending them.
type recorder struct {
	method string
	params json.RawMessage
	reply  any
	err    error
}

func (r *recorder) Call(_ context.Context, method string, params, result any, _ func(api.Progress)) error {
	r.method = method
	r.params, _ = json.Marshal(params)
	if r.reply != nil && result != nil {
		b, _ := json.Marshal(r.reply)
		json.Unmarshal(b, result)
	}
	return r.err
}

func run(t *testing.T, rec *recorder, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &App{Layout: paths.UnderRoot(t.TempDir()), Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		IsTTY:   func(any) bool { return false },
		Connect: func(context.Context) (Caller, error) { return rec, nil }}
	code = Main(a, args)
	return out.String(), errb.String(), code
}

func TestCreatePointerSemantics(t *testing.T) {
	rec := &recorder{reply: api.VM{Name: "dev", IP: "172.30.0.2", State: api.VMStopped}}
	_, stderr, code := run(t, rec, "vm", "create", "--name", "dev", "--no-start")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var p map[string]any
	json.Unmarshal(rec.params, &p)
	for _, k := range []string{"vcpus", "memory_mib", "disk_bytes", "image"} {
		if _, ok := p[k]; ok {
			t.Errorf("omitted flag sent %s=%v; must stay nil", k, p[k])
		}
	}
	if p["no_start"] != true || rec.method != api.MethodVMCreate {
		t.Fatalf("%s %s", rec.method, rec.params)
	}

	rec = &recorder{reply: api.VM{}}
	_, stderr, code = run(t, rec, "vm", "create", "--name", "dev", "--vcpus", "4", "--memory", "1024", "--disk", "20G", "--image", "void")
	if code != 0 {
		t.Fatal(stderr)
	}
	var cp api.VMCreateParams
	json.Unmarshal(rec.params, &cp)
	if *cp.VCPUs != 4 || *cp.MemoryMiB != 1024 || *cp.DiskBytes != 20<<30 || *cp.Image != "void" {
		t.Fatalf("%s", rec.params)
	}
	for in, want := range map[string]int{"1G": 1024, "512M": 512, "2GiB": 2048, "768": 768} {
		rec = &recorder{reply: api.VM{}}
		if _, stderr, code := run(t, rec, "vm", "create", "--name", "dev", "--memory", in); code != 0 {
			t.Fatalf("--memory %s: %s", in, stderr)
		}
		json.Unmarshal(rec.params, &cp)
		if *cp.MemoryMiB != want {
			t.Errorf("--memory %s sent %d MiB, want %d", in, *cp.MemoryMiB, want)
		}
	}
}

func TestCreateRejectsBeforeRequest(t *testing.T) {
	cases := map[string][]string{
		"between 1 and":   {"--vcpus", "0"},
		"between 1 and ":  {"--vcpus", "-1"},
		"greater than":    {"--memory", "0"},
		"at least 128":    {"--memory", "64"},
		"accepted forms":  {"--disk", "lots"},
		"at least 1G":     {"--disk", "100M"},
		"lower-case":      {"--image", "Bad"},
		"greater than ":   {"--disk", "-1G"},
		"invalid VM name": {"--name", "Dev_1"},
	}
	for want, extra := range cases {
		rec := &recorder{}
		args := append([]string{"vm", "create", "--name", "dev"}, extra...)
		_, stderr, code := run(t, rec, args...)
		if code == 0 || rec.method != "" {
			t.Errorf("%v: exit %d, sent %q; want rejection before any request", extra, code, rec.method)
		}
		if !strings.HasPrefix(stderr, "banger: ") || !strings.Contains(stderr, strings.TrimSpace(want)) {
			t.Errorf("%v: stderr %q lacks %q", extra, stderr, want)
		}
	}
	rec := &recorder{}
	if _, _, code := run(t, rec, "vm", "create"); code == 0 || rec.method != "" {
		t.Error("create without --name accepted")
	}
}

func TestSetPointerSemantics(t *testing.T) {
	rec := &recorder{reply: api.VMSetResult{VM: api.VM{Name: "dev"}, PendingRestart: true, Note: "applies at next start"}}
	_, stderr, code := run(t, rec, "vm", "set", "dev", "--memory", "2G")
	if code != 0 {
		t.Fatal(stderr)
	}
	var p map[string]any
	json.Unmarshal(rec.params, &p)
	if _, ok := p["vcpus"]; ok || p["memory_mib"] != float64(2048) {
		t.Fatalf("params %s", rec.params)
	}
	if !strings.Contains(stderr, "applies at next start") {
		t.Fatalf("note not shown: %q", stderr)
	}
	rec = &recorder{}
	if _, _, code := run(t, rec, "vm", "set", "dev"); code == 0 || rec.method != "" {
		t.Fatal("set with nothing to change accepted")
	}
}

func TestErrorRendering(t *testing.T) {
	rec := &recorder{err: api.NewError(api.CodeNotFound, `VM "x": not found`, "list VMs with `banger vm list`")}
	_, stderr, code := run(t, rec, "vm", "show", "x")
	if code != 1 || stderr != "banger: VM \"x\": not found\n  hint: list VMs with `banger vm list`\n" {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
}

func TestDeleteNeedsConfirmationWithoutTTY(t *testing.T) {
	rec := &recorder{}
	_, stderr, code := run(t, rec, "vm", "delete", "dev")
	if code == 0 || rec.method != "" || !strings.Contains(stderr, "--yes") {
		t.Fatalf("exit %d method %q stderr %q", code, rec.method, stderr)
	}
	stdout, _, code := run(t, rec, "vm", "delete", "dev", "-y")
	if code != 0 || rec.method != api.MethodVMDelete || !strings.Contains(stdout, "deleted VM dev") {
		t.Fatalf("exit %d %q", code, stdout)
	}
	run(t, rec, "vm", "delete", "dev", "--force")
	var p api.VMDeleteParams
	json.Unmarshal(rec.params, &p)
	if !p.Force {
		t.Fatal("--force not sent")
	}
}

func TestListTableAndJSON(t *testing.T) {
	vms := []api.VM{{Name: "dev", State: api.VMRunning, IP: "172.30.0.2", VCPUs: 2, MemoryMiB: 1024, DiskBytes: 8 << 30, Image: "debian"}}
	rec := &recorder{reply: api.VMListResult{VMs: vms}}
	stdout, _, code := run(t, rec, "vm", "list")
	if code != 0 || rec.method != api.MethodVMSummaries {
		t.Fatalf("exit %d, called %s: the table needs only vm.summaries", code, rec.method)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[1], "172.30.0.2") || strings.Contains(stdout, "\x1b[") {
		t.Fatalf("table:\n%s", stdout)
	}
	if strings.Index(lines[0], "STATE") != strings.Index(lines[1], "running") {
		t.Fatalf("columns not aligned:\n%s", stdout)
	}
	stdout, _, _ = run(t, rec, "vm", "list", "--output", "json")
	if rec.method != api.MethodVMList {
		t.Errorf("--output json called %s, want the full records of vm.list", rec.method)
	}
	var got []api.VM
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || len(got) != 1 || got[0].Name != "dev" {
		t.Fatalf("json %q: %v", stdout, err)
	}
	if _, stderr, code := run(t, rec, "vm", "list", "-o", "yaml"); code == 0 || !strings.Contains(stderr, "table or --output json") {
		t.Fatalf("bad output accepted: %q", stderr)
	}
}

func TestDoctorExitStatus(t *testing.T) {
	rec := &recorder{reply: api.DoctorResult{Checks: []api.CheckResult{
		{Name: "kvm", Status: api.CheckOK}, {Name: "firecracker", Status: api.CheckFail, Detail: "not found", Fix: "install it"}}}}
	stdout, _, code := run(t, rec, "doctor", "--scope", "vmm")
	if code != 1 || !strings.Contains(stdout, "firecracker") || !strings.Contains(stdout, "install it") {
		t.Fatalf("exit %d\n%s", code, stdout)
	}
	var p api.DoctorParams
	json.Unmarshal(rec.params, &p)
	if len(p.Scopes) != 1 || p.Scopes[0] != "vmm" {
		t.Fatalf("scopes %s", rec.params)
	}
}

func TestSSHArgv(t *testing.T) {
	info := api.VMSSHInfo{User: "root", Host: "172.30.0.2", Port: 22, KeyPath: "/k", KnownHostsPath: "/kh", HostKeyAlias: "banger-1a2b3c4d"}
	got := strings.Join(sshArgv(info, []string{"uname", "-a"}), " ")
	want := "ssh -i /k -o UserKnownHostsFile=/kh -o StrictHostKeyChecking=accept-new -o HostKeyAlias=banger-1a2b3c4d -o IdentitiesOnly=yes -o LogLevel=ERROR root@172.30.0.2 -- uname -a"
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

func TestSSHRemoteCommandKeepsArguments(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{"uname", "-a"}, "uname -a"},
		{[]string{"sh", "-c", "exit 7"}, "sh -c 'exit 7'"},
		{[]string{"echo", "it's"}, `echo 'it'\''s'`},
		{[]string{"ls | wc -l"}, "ls | wc -l"}, // one argument: a shell command line
	} {
		if got := remoteCommand(c.in); got != c.want {
			t.Errorf("remoteCommand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestLastLines(t *testing.T) {
	if got := lastLines("a\nb\nc\n", 2); got != "b\nc\n" {
		t.Fatalf("%q", got)
	}
	if got := lastLines("a\nb", 5); got != "a\nb" {
		t.Fatalf("%q", got)
	}
}

// TestVMLogsSanitisesOnATerminal: guest escape sequences reach a terminal
// only with --raw; a pipe gets the bytes as they are.
func TestVMLogsSanitisesOnATerminal(t *testing.T) {
	const hostile = "boot ok\r\n\x1b]0;owned\x07\x1b[2J$ fake prompt\n"
	logs := func(tty bool, args ...string) string {
		var out, errb bytes.Buffer
		rec := &recorder{reply: api.VMLogsResult{Data: hostile, Offset: int64(len(hostile))}}
		a := &App{Layout: paths.UnderRoot(t.TempDir()), Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
			IsTTY:   func(any) bool { return tty },
			Connect: func(context.Context) (Caller, error) { return rec, nil }}
		if code := Main(a, append([]string{"vm", "logs", "dev"}, args...)); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		return out.String()
	}
	if got := logs(true); got != "boot ok\n$ fake prompt\n" {
		t.Errorf("terminal got %q", got)
	}
	if got := logs(true, "--raw"); got != hostile {
		t.Errorf("--raw on a terminal got %q", got)
	}
	if got := logs(false); got != hostile {
		t.Errorf("a pipe got %q", got)
	}
}

// writeCounter counts Write calls on stdout.
type writeCounter struct {
	bytes.Buffer
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) { w.writes++; return w.Buffer.Write(p) }

// A long table reaches stdout in a few large writes: tabwriter alone writes
// every cell and pad separately (16,000 syscalls for 1,000 VMs).
func TestListTableWritesInBulk(t *testing.T) {
	vms := make([]api.VM, 1000)
	for i := range vms {
		vms[i] = api.VM{Name: fmt.Sprintf("vm-%04d", i), State: api.VMStopped, VCPUs: 2, MemoryMiB: 1024, DiskBytes: 8 << 30, Image: "debian"}
	}
	out := &writeCounter{}
	a := &App{Layout: paths.UnderRoot(t.TempDir()), Stdin: strings.NewReader(""), Stdout: out, Stderr: io.Discard,
		IsTTY:   func(any) bool { return false },
		Connect: func(context.Context) (Caller, error) { return &recorder{reply: api.VMListResult{VMs: vms}}, nil }}
	if code := Main(a, []string{"vm", "list"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if n := strings.Count(out.String(), "\n"); n != 1001 {
		t.Fatalf("%d lines", n)
	}
	if out.writes > 10 {
		t.Errorf("%d writes to stdout for a 1,000-row table, want a few", out.writes)
	}
}

// On a terminal the state is coloured; the escapes take no columns, so the
// columns after it still line up.
func TestListTableAlignedWithColour(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	os.Unsetenv("NO_COLOR")
	vms := []api.VM{{Name: "web", State: api.VMRunning, IP: "172.30.0.2", VCPUs: 2, MemoryMiB: 1024, DiskBytes: 8 << 30, Image: "debian"},
		{Name: "db", State: api.VMStopped, IP: "172.30.0.3", VCPUs: 2, MemoryMiB: 1024, DiskBytes: 8 << 30, Image: "debian"}}
	var out bytes.Buffer
	a := &App{Layout: paths.UnderRoot(t.TempDir()), Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard,
		IsTTY:   func(any) bool { return true },
		Connect: func(context.Context) (Caller, error) { return &recorder{reply: api.VMListResult{VMs: vms}}, nil }}
	if code := Main(a, []string{"vm", "list"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "\x1b[32mrunning\x1b[0m") {
		t.Fatalf("running not coloured:\n%q", out.String())
	}
	lines := strings.Split(strings.TrimSpace(regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(out.String(), "")), "\n")
	for _, l := range lines[1:] {
		if strings.Index(l, "172.30.0.") != strings.Index(lines[0], "IP") {
			t.Errorf("IP column not aligned:\n%s", strings.Join(lines, "\n"))
		}
	}
}

// banger mcp and banger tui run programs of their own; without them, they
// say so and how to fix it.
func TestProgramCommandsWithoutTheirProgram(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for cmd, program := range map[string]string{"mcp": "banger-mcp", "tui": "banger-tui"} {
		rec := &recorder{}
		_, stderr, code := run(t, rec, cmd, "--read-only")
		if code == 0 || !strings.Contains(stderr, program+" is not installed next to banger nor in PATH") || !strings.Contains(stderr, "make install") || rec.method != "" {
			t.Errorf("banger %s without %s: exit %d, sent %q, stderr %q", cmd, program, code, rec.method, stderr)
		}
	}
}

// Columns line up whatever a cell's width, past the pad's own length too.
func TestTablePadsWideCells(t *testing.T) {
	var out bytes.Buffer
	tb := newTable(&out, "A", "B")
	wide := strings.Repeat("w", 150)
	tb.row(wide, "x")
	tb.row("s", "y")
	tb.flush()
	want := "A" + strings.Repeat(" ", 151) + "B\n" + wide + "  x\n" + "s" + strings.Repeat(" ", 151) + "y\n"
	if out.String() != want {
		t.Errorf("table:\n%q\nwant\n%q", out.String(), want)
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second: "45s", 59 * time.Second: "59s", time.Minute: "1m", 3*time.Minute + 59*time.Second: "3m",
		time.Hour: "1h", 47 * time.Hour: "47h", 48 * time.Hour: "2d", 5*24*time.Hour + time.Hour: "5d",
	} {
		if got := age(d); got != want {
			t.Errorf("age(%s) = %q, want %q", d, got, want)
		}
	}
}
