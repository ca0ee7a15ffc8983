// Package privhelper is banger's one door for privileged host work: a closed
// set of verbs (bridge, tap, NAT, socket ownership, resolved registration),
// each validating every argument strictly. bangerd runs the verbs in process
// when it is root and otherwise as `sudo -n bangerd helper VERB ARGS...`, so a
// single sudoers line grants exactly these verbs and a compromised user
// daemon gains no general root.
package privhelper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/sysexec"
)

// Exit codes of the helper command.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitSkipped = 3 // dns-register/unregister: systemd-resolved absent
)

// verb describes one helper verb: its argument names (the usage) and what it
// does once its arguments have been parsed and checked.
type verb struct {
	args    []string // argument names; optional trailing ones are in brackets
	minArgs int
	run     func(ctx context.Context, e *env, args []string) error
}

// env is what a verb may use: the program runner and the trusted caller uid.
type env struct {
	run     sysexec.Runner
	tmpRoot string // "/tmp"; tests point it elsewhere
	// callerUID is the uid sudo reports (SUDO_UID) when the helper runs
	// through sudo, -1 otherwise. A uid argument must then equal it, so one
	// user cannot chown sockets or taps to another.
	callerUID int
}

func (e *env) uid(s string) (int, error) {
	uid, err := parseUID(s)
	if err != nil {
		return 0, err
	}
	if e.callerUID >= 0 && uid != e.callerUID {
		return 0, fmt.Errorf("uid %d refused: the helper was invoked through sudo by uid %d and may only act for it", uid, e.callerUID)
	}
	return uid, nil
}

func (e *env) firewall() hostnet.Firewall { return hostnet.Firewall{Run: e.run} }

var verbs = map[string]verb{
	"bridge-ensure": {args: []string{"NAME", "CIDR"}, minArgs: 2, run: func(_ context.Context, _ *env, a []string) error {
		if err := hostnet.CheckBridgeName(a[0]); err != nil {
			return err
		}
		p, err := hostnet.ParseSubnet(a[1])
		if err != nil {
			return err
		}
		return hostnet.EnsureBridge(a[0], p)
	}},
	"bridge-delete": {args: []string{"NAME"}, minArgs: 1, run: func(_ context.Context, _ *env, a []string) error {
		return hostnet.DeleteBridge(a[0])
	}},
	"tap-add": {args: []string{"NAME", "BRIDGE", "UID"}, minArgs: 3, run: func(_ context.Context, e *env, a []string) error {
		if err := hostnet.CheckTapName(a[0]); err != nil {
			return err
		}
		if err := hostnet.CheckBridgeName(a[1]); err != nil {
			return err
		}
		uid, err := e.uid(a[2])
		if err != nil {
			return err
		}
		return hostnet.AddTap(a[0], a[1], uid)
	}},
	"tap-del": {args: []string{"NAME"}, minArgs: 1, run: func(_ context.Context, _ *env, a []string) error {
		return hostnet.DeleteTap(a[0])
	}},
	"nat-ensure": {args: []string{"CIDR", "BRIDGE", "[UPLINK]"}, minArgs: 2, run: func(ctx context.Context, e *env, a []string) error {
		p, err := hostnet.ParseSubnet(a[0])
		if err != nil {
			return err
		}
		r := hostnet.NATRule{Subnet: p, Bridge: a[1]}
		if len(a) == 3 {
			r.Uplink = a[2]
		}
		return e.firewall().EnsureNAT(ctx, r)
	}},
	"nat-remove": {run: func(ctx context.Context, e *env, _ []string) error {
		return e.firewall().RemoveNAT(ctx)
	}},
	"socket-reclaim": {args: []string{"PATH", "UID"}, minArgs: 2, run: func(_ context.Context, e *env, a []string) error {
		uid, err := e.uid(a[1])
		if err != nil {
			return err
		}
		resolved, err := checkSocketPath(a[0], uid, e.tmpRoot)
		if err != nil {
			return err
		}
		return chownSocket(resolved, uid)
	}},
	"dns-register": {args: []string{"BRIDGE", "ADDR", "DOMAIN"}, minArgs: 3, run: func(ctx context.Context, e *env, a []string) error {
		if err := hostnet.CheckBridgeName(a[0]); err != nil {
			return err
		}
		addr, err := parseAddr(a[1])
		if err != nil {
			return err
		}
		return hostnet.ApplyResolved(ctx, e.run, a[0], addr, a[2])
	}},
	"dns-unregister": {args: []string{"BRIDGE"}, minArgs: 1, run: func(ctx context.Context, e *env, a []string) error {
		return hostnet.RevertResolved(ctx, e.run, a[0])
	}},
}

// Verbs lists the helper's verbs in a stable order (for sudoers and usage).
func Verbs() []string {
	return []string{"bridge-ensure", "bridge-delete", "tap-add", "tap-del", "nat-ensure", "nat-remove", "socket-reclaim", "dns-register", "dns-unregister"}
}

// UsageError is a refused verb or argument count.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

// dispatch checks the verb and argument count, then runs the verb, which
// validates each argument before acting.
func dispatch(ctx context.Context, e *env, name string, args []string) error {
	v, ok := verbs[name]
	if !ok {
		return &UsageError{fmt.Sprintf("unknown helper verb %q: the verbs are %s", name, strings.Join(Verbs(), ", "))}
	}
	if len(args) < v.minArgs || len(args) > len(v.args) {
		return &UsageError{fmt.Sprintf("usage: helper %s %s (got %d arguments)", name, strings.Join(v.args, " "), len(args))}
	}
	for _, a := range args {
		if len(a) > 4096 {
			return &UsageError{fmt.Sprintf("helper %s: argument of %d bytes refused", name, len(a))}
		}
	}
	return v.run(ctx, e, args)
}

// Main runs one helper verb: args are VERB ARGS... (what follows
// `bangerd helper`). It returns the process exit code: 0 done, 1 failed,
// 2 refused (usage), 3 skipped (systemd-resolved absent; the message says so).
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "usage: bangerd helper VERB ARGS...\nverbs: %s\n", strings.Join(Verbs(), ", "))
		return exitUsage
	}
	if _, ok := verbs[args[0]]; !ok {
		return report(dispatch(context.Background(), &env{}, args[0], nil), args, stdout, stderr)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "banger helper %s: must run as root (bangerd calls it through sudo -n; see `banger doctor` for the sudoers line)\n", args[0])
		return exitFailed
	}
	e := &env{run: sysexec.Exec{}, tmpRoot: "/tmp", callerUID: -1}
	if s := os.Getenv("SUDO_UID"); s != "" {
		uid, err := strconv.Atoi(s)
		if err != nil {
			fmt.Fprintf(stderr, "banger helper: SUDO_UID %q is not numeric\n", s)
			return exitFailed
		}
		e.callerUID = uid
	}
	return report(dispatch(context.Background(), e, args[0], args[1:]), args, stdout, stderr)
}

func report(err error, args []string, stdout, stderr io.Writer) int {
	var ue *UsageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, hostnet.ErrResolvedAbsent):
		fmt.Fprintf(stdout, "banger helper %s: %v\n", args[0], err)
		return exitSkipped
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "banger helper: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "banger helper %s: %v\n", sysexec.Quote(args), err)
		return exitFailed
	}
}
