// Package privhelper is banger's one door for privileged host work: a closed
// set of verbs (bridge, tap, NAT, socket ownership, resolved registration,
// the guests' DNS redirect),
// each validating every argument strictly and acting only on objects the
// calling user owns. It runs as its own root-owned binary, banger-helper,
// which bangerd calls through `sudo -n` when it is not root (one sudoers
// drop-in pins each verb's argument shapes); a root daemon runs the same
// verbs in process. docs/security.md is the threat model.
package privhelper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/rootsafe"
	"github.com/banger-dev/banger/internal/sysexec"
)

// Exit codes of the helper command.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitSkipped = 3 // dns-register/unregister: systemd-resolved absent
)

// verb describes one helper verb: its argument names (the usage), the shape
// of each argument as a regular expression (for the sudoers line; the verb
// parses each one strictly again) and what it does.
type verb struct {
	args   []string
	shapes []string
	run    func(ctx context.Context, e *env, st *locked, args []string) error
	// long verbs (image-build) run without the registry: its lock would
	// hold every other user's network verbs for the whole build.
	long func(ctx context.Context, e *env, args []string) error
}

// env is what a verb may use.
type env struct {
	run  sysexec.Runner
	look func(string) (string, error) // absolute program paths
	// caller is the uid the helper acts for: SUDO_UID through sudo, 0 when
	// root runs it directly. Root may act on any object; anyone else only
	// on their own.
	caller    int
	tmpRoot   string // "/tmp"; tests point it elsewhere
	policy    Policy
	policyErr error // the policy file could not be read: every verb fails with it
	stateDir  string
	checkDir  func(string) error // nil in unit tests
	// The caller's streams, for image-build (its inputs and progress).
	stdin          io.Reader
	stdout, stderr io.Writer
	imageBuild     ImageBuildFunc // nil: image builds refused
}

func (e *env) owns(uid int) bool { return e.caller == 0 || uid == e.caller }

func (e *env) uid(s string) (int, error) {
	uid, err := parseUID(s)
	if err != nil {
		return 0, err
	}
	if e.caller != 0 && uid != e.caller {
		return 0, fmt.Errorf("uid %d refused: the helper was invoked through sudo by uid %d and may only act for it", uid, e.caller)
	}
	return uid, nil
}

func (e *env) firewall() hostnet.Firewall { return hostnet.Firewall{Run: e.run, LookPath: e.look} }

// Shapes of arguments, as POSIX extended regular expressions without spaces.
const (
	shapeBridge = `banger[a-z0-9]{0,9}`
	shapeTap    = `bg-[0-9a-f]{8}`
	shapeUID    = `[0-9]{1,10}`
	shapeCIDR   = `[0-9]{1,3}([.][0-9]{1,3}){3}/[0-9]{1,2}`
	shapeAddr   = `[0-9]{1,3}([.][0-9]{1,3}){3}`
	shapeDomain = `[a-z0-9.-]{1,253}`
	shapePath   = `/[A-Za-z0-9._/-]{1,107}` // a Unix socket path fits sun_path (108 bytes)
	shapePort   = `[0-9]{4,5}`
)

var verbs = map[string]verb{
	"bridge-ensure":       {args: []string{"NAME", "CIDR"}, shapes: []string{shapeBridge, shapeCIDR}, run: bridgeEnsure},
	"bridge-delete":       {args: []string{"NAME"}, shapes: []string{shapeBridge}, run: bridgeDelete},
	"tap-add":             {args: []string{"NAME", "BRIDGE", "UID"}, shapes: []string{shapeTap, shapeBridge, shapeUID}, run: tapAdd},
	"tap-del":             {args: []string{"NAME"}, shapes: []string{shapeTap}, run: tapDel},
	"nat-ensure":          {args: []string{"CIDR", "BRIDGE"}, shapes: []string{shapeCIDR, shapeBridge}, run: natEnsure},
	"nat-remove":          {args: []string{"BRIDGE"}, shapes: []string{shapeBridge}, run: natRemove},
	"socket-reclaim":      {args: []string{"PATH", "UID"}, shapes: []string{shapePath, shapeUID}, run: socketReclaim},
	"dns-register":        {args: []string{"BRIDGE", "ADDR", "DOMAIN"}, shapes: []string{shapeBridge, shapeAddr, shapeDomain}, run: dnsRegister},
	"dns-unregister":      {args: []string{"BRIDGE"}, shapes: []string{shapeBridge}, run: dnsUnregister},
	"dns-redirect":        {args: []string{"BRIDGE", "PORT"}, shapes: []string{shapeBridge, shapePort}, run: dnsRedirect},
	"dns-redirect-remove": {args: []string{"BRIDGE"}, shapes: []string{shapeBridge}, run: dnsRedirectRemove},
	verbImageBuild: {args: []string{"SUITE", "MIRROR", "SIZE_MIB", "EXTRA_PACKAGES", "OUTPUT"},
		shapes: []string{shapeSuite, shapeMirror, shapeSizeMiB, shapeExtra, shapeOutput}, long: imageBuild},
}

// Verbs lists the helper's verbs in a stable order (for sudoers and usage).
func Verbs() []string {
	return []string{"bridge-ensure", "bridge-delete", "tap-add", "tap-del", "nat-ensure", "nat-remove", "socket-reclaim", "dns-register", "dns-unregister",
		"dns-redirect", "dns-redirect-remove", verbImageBuild}
}

// UsageError is a refused verb or argument count.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

// dispatch checks the verb and argument count, takes the registry lock, runs
// the verb (which validates each argument before acting) and saves the
// registry.
func dispatch(ctx context.Context, e *env, name string, args []string) error {
	v, ok := verbs[name]
	if !ok {
		return &UsageError{fmt.Sprintf("unknown helper verb %q: the verbs are %s", name, strings.Join(Verbs(), ", "))}
	}
	if len(args) != len(v.args) {
		return &UsageError{fmt.Sprintf("usage: banger-helper %s %s (got %d arguments)", name, strings.Join(v.args, " "), len(args))}
	}
	for _, a := range args {
		if len(a) > 4096 {
			return &UsageError{fmt.Sprintf("banger-helper %s: argument of %d bytes refused", name, len(a))}
		}
	}
	if e.policyErr != nil {
		return e.policyErr
	}
	if v.long != nil {
		return v.long(ctx, e, args)
	}
	st, err := openRegistry(e.stateDir, e.checkDir)
	if err != nil {
		return err
	}
	defer st.close()
	if err := st.prune(); err != nil {
		return err
	}
	runErr := v.run(ctx, e, st, args)
	if err := st.save(); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}

// prune forgets bridges and taps that no longer exist (deleted by hand), so
// their names can be claimed again.
func (l *locked) prune() error {
	names, err := hostnet.LinkNames()
	if err != nil {
		return err
	}
	for n := range l.reg.Bridges {
		if !names[n] {
			delete(l.reg.Bridges, n)
			delete(l.reg.NAT, n)
			delete(l.reg.DNS, n)
			delete(l.reg.Redirect, n)
		}
	}
	for n := range l.reg.Taps {
		if !names[n] {
			delete(l.reg.Taps, n)
		}
	}
	return nil
}

// notYours is the refusal for another user's object.
func notYours(kind, name string, owner int) error {
	return fmt.Errorf("%s %s refused: it belongs to uid %d; banger only touches the calling user's own bridges, taps, NAT and DNS registrations", kind, name, owner)
}

// claimBridge checks that caller may act on bridge: it is registered to them,
// or it is not registered and either absent or (an existing bridge) only
// carries taps the caller owns, as one made by an earlier banger does.
func (e *env) claimBridge(st *locked, name string) (registered bool, err error) {
	if b, ok := st.reg.Bridges[name]; ok {
		if !e.owns(b.UID) {
			return true, notYours("bridge", name, b.UID)
		}
		return true, nil
	}
	l, err := hostnet.LookupLink(name)
	if err != nil || !l.Exists {
		return false, err
	}
	if l.Type != "bridge" {
		return false, fmt.Errorf("interface %s exists but is a %s, not a bridge: delete it (ip link del %s) or choose another bridge name", name, l.Type, name)
	}
	if e.caller == 0 {
		return false, nil
	}
	ports, err := hostnet.BridgePorts(name)
	if err != nil {
		return false, err
	}
	for _, p := range ports {
		if p.TapOwner != e.caller {
			return false, fmt.Errorf("bridge %s refused: it is not registered to you and carries %s, which is not a tap of yours; choose another bridge name in config.toml (bridge = \"banger1\")", name, p.Name)
		}
	}
	return false, nil
}

func bridgeEnsure(_ context.Context, e *env, st *locked, a []string) error {
	name := a[0]
	if err := hostnet.CheckBridgeName(name); err != nil {
		return err
	}
	subnet, err := hostnet.ParseSubnet(a[1])
	if err != nil {
		return err
	}
	if err := e.policy.allowsSubnet(subnet); err != nil {
		return err
	}
	registered, err := e.claimBridge(st, name)
	if err != nil {
		return err
	}
	if !registered && e.caller != 0 {
		if mine := st.reg.bridgesOf(e.caller); len(mine) >= e.policy.MaxBridgesPerUser {
			return fmt.Errorf("bridge %s refused: uid %d already has %d bridges (%s), the most the administrator allows (%s, key max_bridges_per_user)", name, e.caller, len(mine), strings.Join(mine, ", "), PolicyFile)
		}
	}
	for other, b := range st.reg.Bridges {
		if other != name && b.Subnet.Overlaps(subnet) {
			return fmt.Errorf("subnet %s refused: it overlaps %s of bridge %s (uid %d); choose another subnet in config.toml", subnet, b.Subnet, other, b.UID)
		}
	}
	if err := hostnet.CheckSubnet(subnet, name); err != nil {
		return err
	}
	if err := hostnet.EnsureBridge(name, subnet); err != nil {
		return err
	}
	st.reg.Bridges[name] = bridgeEntry{UID: e.caller, Subnet: subnet}
	return nil
}

func bridgeDelete(_ context.Context, e *env, st *locked, a []string) error {
	name := a[0]
	if err := hostnet.CheckBridgeName(name); err != nil {
		return err
	}
	if _, err := e.claimBridge(st, name); err != nil {
		return err
	}
	if err := hostnet.DeleteBridge(name); err != nil {
		return err
	}
	delete(st.reg.Bridges, name)
	return nil
}

// ownedBridge returns the registered bridge name when caller owns it.
func (e *env) ownedBridge(st *locked, name string) (bridgeEntry, error) {
	if err := hostnet.CheckBridgeName(name); err != nil {
		return bridgeEntry{}, err
	}
	b, ok := st.reg.Bridges[name]
	if !ok {
		return bridgeEntry{}, fmt.Errorf("bridge %s is not set up: bridge-ensure it first (bangerd does when a VM starts or NAT is turned on)", name)
	}
	if !e.owns(b.UID) {
		return bridgeEntry{}, notYours("bridge", name, b.UID)
	}
	return b, nil
}

// claimTap checks that caller may act on tap: registered to them, or not
// registered and absent or a tap they own.
func (e *env) claimTap(st *locked, name string) error {
	if t, ok := st.reg.Taps[name]; ok {
		if !e.owns(t.UID) {
			return notYours("tap", name, t.UID)
		}
		return nil
	}
	l, err := hostnet.LookupLink(name)
	if err != nil || !l.Exists {
		return err
	}
	if l.Type != "tuntap" {
		return fmt.Errorf("interface %s exists but is a %s, not a tap: refusing to touch it", name, l.Type)
	}
	if !e.owns(l.TapOwner) {
		return notYours("tap", name, l.TapOwner)
	}
	return nil
}

func tapAdd(_ context.Context, e *env, st *locked, a []string) error {
	name, bridge := a[0], a[1]
	if err := hostnet.CheckTapName(name); err != nil {
		return err
	}
	uid, err := e.uid(a[2])
	if err != nil {
		return err
	}
	if _, err := e.ownedBridge(st, bridge); err != nil {
		return err
	}
	if err := e.claimTap(st, name); err != nil {
		return err
	}
	if _, ok := st.reg.Taps[name]; !ok && e.caller != 0 && st.reg.tapsOf(e.caller) >= e.policy.MaxTapsPerUser {
		return fmt.Errorf("tap %s refused: uid %d already has %d taps, the most the administrator allows (%s, key max_taps_per_user)", name, e.caller, st.reg.tapsOf(e.caller), PolicyFile)
	}
	if err := hostnet.AddTap(name, bridge, uid); err != nil {
		return err
	}
	st.reg.Taps[name] = tapEntry{UID: uid, Bridge: bridge}
	return nil
}

func tapDel(_ context.Context, e *env, st *locked, a []string) error {
	name := a[0]
	if err := hostnet.CheckTapName(name); err != nil {
		return err
	}
	if err := e.claimTap(st, name); err != nil {
		return err
	}
	if err := hostnet.DeleteTap(name); err != nil {
		return err
	}
	delete(st.reg.Taps, name)
	return nil
}

func natEnsure(ctx context.Context, e *env, st *locked, a []string) error {
	subnet, err := hostnet.ParseSubnet(a[0])
	if err != nil {
		return err
	}
	b, err := e.ownedBridge(st, a[1])
	if err != nil {
		return err
	}
	if b.Subnet != subnet {
		return fmt.Errorf("NAT for %s refused: bridge %s serves %s", subnet, a[1], b.Subnet)
	}
	uplinks, err := hostnet.Uplinks()
	if err != nil {
		return err
	}
	if err := e.firewall().EnsureNAT(ctx, hostnet.NATRule{Subnet: subnet, Bridge: a[1], Uplinks: uplinks}); err != nil {
		return err
	}
	st.reg.NAT[a[1]] = e.caller
	return nil
}

// claimBridgeService checks caller may remove a per-bridge service (NAT, DNS)
// recorded in owners: theirs there, or not recorded and the bridge is theirs
// to claim.
func (e *env) claimBridgeService(st *locked, owners map[string]int, kind, bridge string) error {
	if err := hostnet.CheckBridgeName(bridge); err != nil {
		return err
	}
	if uid, ok := owners[bridge]; ok {
		if !e.owns(uid) {
			return notYours(kind+" of bridge", bridge, uid)
		}
		return nil
	}
	_, err := e.claimBridge(st, bridge)
	return err
}

func natRemove(ctx context.Context, e *env, st *locked, a []string) error {
	if err := e.claimBridgeService(st, st.reg.NAT, "NAT", a[0]); err != nil {
		return err
	}
	if err := e.firewall().RemoveNAT(ctx, a[0]); err != nil {
		return err
	}
	delete(st.reg.NAT, a[0])
	return nil
}

func socketReclaim(_ context.Context, e *env, _ *locked, a []string) error {
	uid, err := e.uid(a[1])
	if err != nil {
		return err
	}
	resolved, err := checkSocketPath(a[0], uid, e.tmpRoot)
	if err != nil {
		return err
	}
	return chownSocket(resolved, uid)
}

func dnsRegister(ctx context.Context, e *env, st *locked, a []string) error {
	if err := hostnet.CheckBridgeName(a[0]); err != nil {
		return err
	}
	addr, err := parseAddr(a[1])
	if err != nil {
		return err
	}
	if err := hostnet.CheckDomain(a[2]); err != nil {
		return err
	}
	if err := e.policy.allowsDomain(a[2]); err != nil {
		return err
	}
	b, err := e.ownedBridge(st, a[0])
	if err != nil {
		return err
	}
	if gw := hostnet.Gateway(b.Subnet); addr != gw {
		return fmt.Errorf("DNS server %s refused: bridge %s's own address is %s", addr, a[0], gw)
	}
	if ok, err := hostnet.BridgeHasAddress(a[0], addr); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("DNS server %s refused: it is not assigned to bridge %s", addr, a[0])
	}
	if err := hostnet.ApplyResolved(ctx, e.run, e.look, a[0], addr, a[2]); err != nil {
		return err
	}
	st.reg.DNS[a[0]] = e.caller
	return nil
}

func dnsUnregister(ctx context.Context, e *env, st *locked, a []string) error {
	if err := e.claimBridgeService(st, st.reg.DNS, "DNS registration", a[0]); err != nil {
		return err
	}
	if err := hostnet.RevertResolved(ctx, e.run, e.look, a[0]); err != nil {
		return err
	}
	delete(st.reg.DNS, a[0])
	return nil
}

// dnsRedirect sends the guests' DNS on the caller's bridge (to its address,
// port 53) to PORT on that address, where their bangerd serves.
func dnsRedirect(ctx context.Context, e *env, st *locked, a []string) error {
	port, err := parsePort(a[1])
	if err != nil {
		return err
	}
	b, err := e.ownedBridge(st, a[0])
	if err != nil {
		return err
	}
	r := hostnet.DNSRedirect{Bridge: a[0], Gateway: hostnet.Gateway(b.Subnet), Port: port}
	if err := e.firewall().EnsureDNSRedirect(ctx, r); err != nil {
		return err
	}
	st.reg.Redirect[a[0]] = e.caller
	return nil
}

func dnsRedirectRemove(ctx context.Context, e *env, st *locked, a []string) error {
	if err := e.claimBridgeService(st, st.reg.Redirect, "DNS redirect", a[0]); err != nil {
		return err
	}
	if err := e.firewall().RemoveDNSRedirect(ctx, a[0]); err != nil {
		return err
	}
	delete(st.reg.Redirect, a[0])
	return nil
}

// Main runs the banger-helper command: args are what follows the program
// name. It returns the exit code: 0 done, 1 failed, 2 refused (usage), 3
// skipped (systemd-resolved absent; the message says so).
func Main(args []string, stdout, stderr io.Writer) int {
	return MainWith(args, os.Stdin, stdout, stderr, Hooks{})
}

// MainWith is Main with the verbs' parts that live above this package
// (cmd/banger-helper passes the image builder).
func MainWith(args []string, stdin io.Reader, stdout, stderr io.Writer, hooks Hooks) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "version") {
		fmt.Fprintln(stdout, versionLine())
		return exitOK
	}
	if len(args) >= 1 && args[0] == "install" {
		return installMain(args[1:], stdout, stderr)
	}
	if len(args) == 0 {
		fmt.Fprintf(stderr, "usage: banger-helper VERB ARGS...\nverbs: %s\n       banger-helper install --user NAME   (run once with sudo; see docs/security.md)\n", strings.Join(Verbs(), ", "))
		return exitUsage
	}
	if args[0] == verbImageBuildNS {
		return imageBuildNSMain(args, stdin, stdout, stderr, hooks)
	}
	if _, ok := verbs[args[0]]; !ok {
		return report(&UsageError{fmt.Sprintf("unknown helper verb %q: the verbs are %s", args[0], strings.Join(Verbs(), ", "))}, args, stdout, stderr)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "banger-helper %s: must run as root (bangerd calls it through sudo -n; `banger doctor` says how to install it)\n", args[0])
		return exitFailed
	}
	e, err := rootEnv()
	if err != nil {
		fmt.Fprintf(stderr, "banger-helper: %v\n", err)
		return exitFailed
	}
	e.stdin, e.stdout, e.stderr, e.imageBuild = stdin, stdout, stderr, hooks.ImageBuild
	return report(dispatch(context.Background(), e, args[0], args[1:]), args, stdout, stderr)
}

// trustedPATH is the only PATH the helper's children see.
const trustedPATH = "/usr/sbin:/usr/bin:/sbin:/bin"

// rootEnv is the environment of a real root run. It reads SUDO_UID, then
// clears the environment: nothing the caller set reaches a program root runs.
func rootEnv() (*env, error) {
	caller := 0
	if s, ok := os.LookupEnv("SUDO_UID"); ok {
		uid, err := parseUID(s)
		if err != nil {
			return nil, fmt.Errorf("SUDO_UID %q is not a user id", s)
		}
		caller = uid
	}
	os.Clearenv()
	os.Setenv("PATH", trustedPATH)
	os.Setenv("LC_ALL", "C")
	policy, err := LoadPolicy(PolicyFile)
	if err != nil {
		return nil, err
	}
	return &env{
		run: sysexec.Exec{}, look: rootsafe.LookProgram, caller: caller, tmpRoot: "/tmp",
		policy: policy, stateDir: StateDir,
		checkDir: func(d string) error { return rootsafe.Check(d, rootsafe.Strict) },
	}, nil
}

func report(err error, args []string, stdout, stderr io.Writer) int {
	var ue *UsageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, hostnet.ErrResolvedAbsent):
		fmt.Fprintf(stdout, "banger-helper %s: %v\n", args[0], err)
		return exitSkipped
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "banger-helper: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "banger-helper %s: %v\n", sysexec.Quote(args), err)
		return exitFailed
	}
}

// parseUID accepts a decimal user id and nothing else.
func parseUID(s string) (int, error) {
	if s == "" || len(s) > 10 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("uid %q refused: give a numeric user id (e.g. 1000)", s)
	}
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, fmt.Errorf("uid %q refused: out of range", s)
	}
	return int(n), nil
}

// parsePort accepts a decimal port a DNS redirect may target.
func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || strconv.Itoa(p) != s || p < hostnet.MinRedirectPort || p > 65535 {
		return 0, fmt.Errorf("port %q refused: use a decimal port from %d to 65535", s, hostnet.MinRedirectPort)
	}
	return p, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("address %q refused: give an IPv4 address such as 172.30.0.1", s)
	}
	return a, nil
}
