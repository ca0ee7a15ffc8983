package privhelper

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/sysexec"
)

// Helper is what the daemon calls for privileged host work.
type Helper interface {
	BridgeEnsure(ctx context.Context, name string, cidr netip.Prefix) error
	BridgeDelete(ctx context.Context, name string) error
	TapAdd(ctx context.Context, name, bridge string, uid int) error
	TapDel(ctx context.Context, name string) error
	NATEnsure(ctx context.Context, cidr netip.Prefix, bridge string) error
	NATRemove(ctx context.Context) error
	SocketReclaim(ctx context.Context, path string, uid int) error
	DNSRegister(ctx context.Context, bridge string, addr netip.Addr, domain string) error
	DNSUnregister(ctx context.Context, bridge string) error
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

// New returns the helper the daemon uses: in process (same validation, no
// sudo) when the daemon runs as root, else `sudo -n helperArgv... VERB ARGS`
// (helperArgv is typically {"/usr/local/bin/bangerd", "helper"}).
func New(helperArgv []string) Helper {
	if os.Geteuid() == 0 {
		return &caller{call: localCall(&env{run: sysexec.Exec{}, tmpRoot: "/tmp", callerUID: -1})}
	}
	return &caller{call: sudoCall(sysexec.Exec{}, helperArgv)}
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

func sudoCall(run sysexec.Runner, helperArgv []string) callFunc {
	return func(ctx context.Context, verb string, args ...string) error {
		if len(helperArgv) == 0 {
			return &Error{Verb: verb, Args: args, Err: errors.New("no helper command configured")}
		}
		if _, err := sysexec.LookPath("sudo"); err != nil {
			return &Error{Verb: verb, Args: args, Err: fmt.Errorf("bangerd is not root and sudo is not installed: install sudo and add this line with visudo -f /etc/sudoers.d/banger: %s", sudoersHint(helperArgv))}
		}
		argv := append(append([]string{"sudo", "-n"}, helperArgv...), append([]string{verb}, args...)...)
		_, err := run.Run(ctx, sysexec.Cmd{Argv: argv})
		if err == nil {
			return nil
		}
		var se *sysexec.Error
		if errors.As(err, &se) {
			switch {
			case se.ExitCode == exitSkipped:
				return &Error{Verb: verb, Args: args, Err: hostnet.ErrResolvedAbsent}
			case strings.Contains(se.Stderr, "password is required") || strings.Contains(se.Stderr, "not allowed to execute") || strings.Contains(se.Stderr, "may not run sudo"):
				err = fmt.Errorf("%w\nfix: allow the helper without a password (visudo -f /etc/sudoers.d/banger): %s", err, sudoersHint(helperArgv))
			}
		}
		return &Error{Verb: verb, Args: args, Err: err}
	}
}

func sudoersHint(helperArgv []string) string {
	name := "USER"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return SudoersLine(name, helperArgv[0])
}

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
func (c *caller) NATRemove(ctx context.Context) error { return c.call(ctx, "nat-remove") }
func (c *caller) SocketReclaim(ctx context.Context, path string, uid int) error {
	return c.call(ctx, "socket-reclaim", path, strconv.Itoa(uid))
}
func (c *caller) DNSRegister(ctx context.Context, bridge string, addr netip.Addr, domain string) error {
	return c.call(ctx, "dns-register", bridge, addr.String(), domain)
}
func (c *caller) DNSUnregister(ctx context.Context, bridge string) error {
	return c.call(ctx, "dns-unregister", bridge)
}

// SudoersLine is the sudoers entry that lets user run exactly the helper
// verbs of bangerdPath as root without a password, and nothing else.
// Characters special to sudoers in the path are escaped.
func SudoersLine(user, bangerdPath string) string {
	esc := func(s string) string {
		r := strings.NewReplacer(`\`, `\\`, ",", `\,`, ":", `\:`, "=", `\=`, " ", `\ `, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`)
		return r.Replace(s)
	}
	var cmds []string
	for _, v := range Verbs() {
		if len(verbs[v].args) == 0 {
			cmds = append(cmds, fmt.Sprintf(`%s helper %s ""`, esc(bangerdPath), v))
		} else {
			cmds = append(cmds, fmt.Sprintf("%s helper %s *", esc(bangerdPath), v))
		}
	}
	return fmt.Sprintf("%s ALL=(root) NOPASSWD: %s", esc(user), strings.Join(cmds, ", "))
}
