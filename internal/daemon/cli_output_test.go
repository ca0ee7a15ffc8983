package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/client"
	"github.com/banger-dev/banger/internal/sysexec"
)

// doctor's daemon checks, run by a real bangerd, describe that daemon: its
// pid and the socket it answers on (the socket was once left empty).
func TestDoctorDaemonChecksDescribeThisDaemon(t *testing.T) {
	l := testLayout(t)
	c, info := startDaemon(t, l, bins.daemonA, buildA)
	var res api.DoctorResult
	if err := c.Call(context.Background(), api.MethodDoctorRun, api.DoctorParams{Scopes: []string{"daemon"}}, &res, nil); err != nil {
		t.Fatal(err)
	}
	by := map[string]api.CheckResult{}
	for _, r := range res.Checks {
		by[r.Name] = r
	}
	sock := by["daemon-socket"]
	want := fmt.Sprintf("bangerd pid %d answers on %s", info.PID, l.DaemonSocket())
	if sock.Status != api.CheckOK || sock.Detail != want {
		t.Errorf("daemon-socket = %+v, want ok %q", sock, want)
	}
	if v := by["daemon-version"]; v.Status != api.CheckOK || !strings.Contains(v.Detail, buildA) {
		t.Errorf("daemon-version = %+v, want ok naming build %s", v, buildA)
	}
}

// The daemon subcommands print whole lines (the issue saw `daemon stop`'s
// line end without a newline).
func TestDaemonCommandsPrintWholeLines(t *testing.T) {
	l := testLayout(t)
	t.Setenv("BANGER_DAEMON_BIN", bins.daemonA)
	banger := func(args ...string) (string, string) {
		res, err := sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{Argv: append([]string{bins.cli}, args...)})
		if err != nil {
			t.Fatalf("banger %v: %v\n%s", args, err, res.Stderr)
		}
		return string(res.Stdout), string(res.Stderr)
	}
	t.Cleanup(func() { banger("daemon", "stop") })
	for _, c := range []struct {
		args []string
		want string // stdout, with %d for the daemon's pid
	}{
		{[]string{"daemon", "start"}, "bangerd is running\n"},
		{[]string{"daemon", "stop"}, "stopped bangerd (pid %d)\n"},
		{[]string{"daemon", "stop"}, "bangerd is not running\n"},
		{[]string{"daemon", "status"}, "bangerd is not running (socket " + l.DaemonSocket() + ")\n"},
	} {
		var pid int
		if info, err := client.New(l.DaemonSocket()).Info(context.Background()); err == nil {
			pid = info.PID
		}
		out, errOut := banger(c.args...)
		want := c.want
		if strings.Contains(want, "%d") {
			want = fmt.Sprintf(want, pid)
		}
		if out != want {
			t.Errorf("banger %v printed %q, want %q", c.args, out, want)
		}
		if errOut != "" && !strings.HasSuffix(errOut, "\n") {
			t.Errorf("banger %v: stderr %q does not end its line", c.args, errOut)
		}
	}
}
