package privhelper

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/rootsafe"
	"github.com/banger-dev/banger/internal/sysexec"
)

// Helper is what the daemon calls for privileged host work.
type Helper interface {
	BridgeEnsure(ctx context.Context, name string, cidr netip.Prefix) error
	BridgeDelete(ctx context.Context, name string) error
	TapAdd(ctx context.Context, name, bridge string, uid int) error
	// TapDel removes a tap; a tap that is already gone is not an error.
	TapDel(ctx context.Context, name string) error
	NATEnsure(ctx context.Context, cidr netip.Prefix, bridge string) error
	NATRemove(ctx context.Context, bridge string) error
	SocketReclaim(ctx context.Context, path string, uid int) error
	DNSRegister(ctx context.Context, bridge string, addr netip.Addr, domain string) error
	DNSUnregister(ctx context.Context, bridge string) error
	// DNSRedirect sends the guests' DNS (to the bridge address, port 53)
	// to port on the bridge address; DNSRedirectRemove undoes it (nothing
	// to undo is not an error).
	DNSRedirect(ctx context.Context, bridge string, port int) error
	DNSRedirectRemove(ctx context.Context, bridge string) error
}

// Error is a failed helper call: what was attempted and why it failed.
type Error struct {
	Verb string
	Args []string
	Err  error // the verb's error, or the *sysexec.Error of the sudo run
}

func (e *Error) Error() string {
	return fmt.Sprintf("privileged helper %s: %v", sysexec.Quote(append([]string{e.Verb}, e.Args...)), e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns the helper the daemon uses: in process (same validation and
// registry, no sudo) when the daemon runs as root, else
// `sudo -n helperPath VERB ARGS` (helperPath is normally DefaultPath).
func New(helperPath string) Helper {
	if os.Geteuid() == 0 {
		policy, err := LoadPolicy(PolicyFile)
		return &caller{call: localCall(&env{
			run: sysexec.Exec{}, look: rootsafe.LookProgram, caller: 0, tmpRoot: "/tmp",
			policy: policy, policyErr: err, stateDir: StateDir,
			checkDir: func(d string) error { return rootsafe.Check(d, rootsafe.Strict) },
		})}
	}
	return &caller{call: sudoCall(sysexec.Exec{}, helperPath)}
}

// callFunc runs one verb with string arguments.
type callFunc func(ctx context.Context, verb string, args ...string) error

func localCall(e *env) callFunc {
	return func(ctx context.Context, verb string, args ...string) error {
		if err := dispatch(ctx, e, verb, args); err != nil {
			return &Error{Verb: verb, Args: args, Err: err}
		}
		return nil
	}
}

func sudoCall(run sysexec.Runner, helperPath string) callFunc {
	return func(ctx context.Context, verb string, args ...string) error {
		if _, err := sysexec.LookPath("sudo"); err != nil {
			return &Error{Verb: verb, Args: args, Err: fmt.Errorf("bangerd is not root and sudo is not installed: install sudo, then the helper (%s)", InstallHint)}
		}
		argv := append([]string{"sudo", "-n", helperPath, verb}, args...)
		_, err := run.Run(ctx, sysexec.Cmd{Argv: argv})
		if err == nil {
			return nil
		}
		var se *sysexec.Error
		if errors.As(err, &se) {
			switch {
			case se.ExitCode == exitSkipped:
				return &Error{Verb: verb, Args: args, Err: hostnet.ErrResolvedAbsent}
			case strings.Contains(se.Stderr, "password is required") || strings.Contains(se.Stderr, "not allowed to execute") || strings.Contains(se.Stderr, "may not run sudo") || strings.Contains(se.Stderr, "command not found"):
				err = fmt.Errorf("%w\nfix: install the privileged helper and its sudoers grant: %s", err, InstallHint)
			}
		}
		return &Error{Verb: verb, Args: args, Err: err}
	}
}

// InstallHint says how a user installs the helper and its grant.
const InstallHint = "from banger's source tree, make install-helper (it asks sudo once)"

// caller turns typed calls into verb strings, so in-process and sudo calls
// pass through exactly the same parsing and validation.
type caller struct{ call callFunc }

func (c *caller) BridgeEnsure(ctx context.Context, name string, cidr netip.Prefix) error {
	return c.call(ctx, "bridge-ensure", name, cidr.String())
}
func (c *caller) BridgeDelete(ctx context.Context, name string) error {
	return c.call(ctx, "bridge-delete", name)
}
func (c *caller) TapAdd(ctx context.Context, name, bridge string, uid int) error {
	return c.call(ctx, "tap-add", name, bridge, strconv.Itoa(uid))
}
func (c *caller) TapDel(ctx context.Context, name string) error {
	return c.call(ctx, "tap-del", name)
}
func (c *caller) NATEnsure(ctx context.Context, cidr netip.Prefix, bridge string) error {
	return c.call(ctx, "nat-ensure", cidr.String(), bridge)
}
func (c *caller) NATRemove(ctx context.Context, bridge string) error {
	return c.call(ctx, "nat-remove", bridge)
}
func (c *caller) SocketReclaim(ctx context.Context, path string, uid int) error {
	return c.call(ctx, "socket-reclaim", path, strconv.Itoa(uid))
}
func (c *caller) DNSRegister(ctx context.Context, bridge string, addr netip.Addr, domain string) error {
	return c.call(ctx, "dns-register", bridge, addr.String(), domain)
}
func (c *caller) DNSRedirect(ctx context.Context, bridge string, port int) error {
	return c.call(ctx, "dns-redirect", bridge, strconv.Itoa(port))
}
func (c *caller) DNSRedirectRemove(ctx context.Context, bridge string) error {
	return c.call(ctx, "dns-redirect-remove", bridge)
}
func (c *caller) DNSUnregister(ctx context.Context, bridge string) error {
	return c.call(ctx, "dns-unregister", bridge)
}
