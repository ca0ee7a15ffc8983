package hostnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"

	"github.com/banger-dev/banger/internal/sysexec"
)

// ErrResolvedAbsent is returned (wrapped) when systemd-resolved does not run,
// so there is nothing to register `<name>.vm` with. Callers treat it as "DNS
// registration skipped", not as a failure.
var ErrResolvedAbsent = errors.New("systemd-resolved is not running: per-link DNS registration skipped (point your resolver at the bridge address for the vm domain)")

// ResolvedRunning reports whether systemd-resolved is running: its runtime
// directory holds the stub resolv.conf.
func ResolvedRunning() bool {
	_, err := os.Stat("/run/systemd/resolve/stub-resolv.conf")
	return err == nil
}

var domainRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// CheckDomain accepts a plain DNS domain such as "vm".
func CheckDomain(d string) error {
	if len(d) > 253 || !domainRE.MatchString(d) {
		return fmt.Errorf("domain %q refused: use lowercase DNS labels such as %q", d, DNSDomain)
	}
	return nil
}

// ResolvedRegisterArgv returns the commands (resolvectl is the program's
// absolute path) that route DOMAIN queries to addr through the bridge link.
func ResolvedRegisterArgv(resolvectl, bridge string, addr netip.Addr, domain string) [][]string {
	return [][]string{
		{resolvectl, "dns", bridge, addr.String()},
		{resolvectl, "domain", bridge, "~" + domain},
	}
}

// ApplyResolved registers the bridge's DNS server and routing domain with
// systemd-resolved (root only), running resolvectl found by look. It returns
// ErrResolvedAbsent when resolved does not run, and reverts the link when the
// second step fails.
func ApplyResolved(ctx context.Context, run sysexec.Runner, look func(string) (string, error), bridge string, addr netip.Addr, domain string) error {
	if err := CheckBridgeName(bridge); err != nil {
		return err
	}
	if !addr.Is4() {
		return fmt.Errorf("DNS address %s refused: use the bridge's IPv4 address", addr)
	}
	if err := CheckDomain(domain); err != nil {
		return err
	}
	resolvectl, err := resolvectlPath(look)
	if err != nil {
		return err
	}
	for _, argv := range ResolvedRegisterArgv(resolvectl, bridge, addr, domain) {
		if _, err := run.Run(ctx, sysexec.Cmd{Argv: argv}); err != nil {
			_, _ = run.Run(ctx, sysexec.Cmd{Argv: []string{resolvectl, "revert", bridge}})
			return fmt.Errorf("register %s DNS with systemd-resolved: %w", bridge, err)
		}
	}
	return nil
}

// RevertResolved drops the bridge's per-link DNS settings.
func RevertResolved(ctx context.Context, run sysexec.Runner, look func(string) (string, error), bridge string) error {
	if err := CheckBridgeName(bridge); err != nil {
		return err
	}
	resolvectl, err := resolvectlPath(look)
	if err != nil {
		return err
	}
	if _, err := run.Run(ctx, sysexec.Cmd{Argv: []string{resolvectl, "revert", bridge}}); err != nil {
		return fmt.Errorf("revert %s DNS in systemd-resolved: %w", bridge, err)
	}
	return nil
}

// resolvectlPath finds resolvectl, or says resolved is absent.
func resolvectlPath(look func(string) (string, error)) (string, error) {
	if !ResolvedRunning() {
		return "", ErrResolvedAbsent
	}
	p, err := look("resolvectl")
	if err != nil {
		return "", fmt.Errorf("%w (%v)", ErrResolvedAbsent, err)
	}
	return p, nil
}
