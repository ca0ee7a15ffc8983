package privhelper

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/hostnet/nettest"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/vishvananda/netlink"
)

// TestMain lets the test binary act as `bangerd helper` for the sudo tests:
// `<test binary> banger-helper VERB ARGS...`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "banger-helper" {
		os.Exit(Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// inSandbox runs fn inside a fresh network namespace when root, so a
// validation bug can never touch the host's interfaces; without root the
// verbs cannot change anything anyway.
func inSandbox(t *testing.T, fn func(e *env) error) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := fn(&env{run: sysexec.Exec{}, tmpRoot: t.TempDir(), callerUID: -1}); err != nil {
			t.Fatal(err)
		}
		return
	}
	ns := nettest.New(t)
	e := &env{run: ns.Runner(), tmpRoot: t.TempDir(), callerUID: -1}
	ns.Do(t, func() error { return fn(e) })
	if links := ns.Exec(t, "ip", "-o", "link", "show"); strings.Count(links, "\n") != 0 {
		t.Errorf("refused verbs changed the namespace:\n%s", links)
	}
	if rules := ns.Exec(t, "nft", "list", "ruleset"); rules != "" {
		t.Errorf("refused verbs added rules:\n%s", rules)
	}
}

func TestVerbsRefuseHostileArguments(t *testing.T) {
	long := strings.Repeat("a", 40)
	cases := []struct {
		verb string
		args []string
		want string
	}{
		{"rm", []string{"-rf", "/"}, "unknown helper verb"},
		{"bridge-ensure", []string{"banger0"}, "usage: helper bridge-ensure NAME CIDR"},
		{"bridge-ensure", []string{"banger0", "172.30.0.0/24", "x"}, "usage"},
		{"bridge-ensure", []string{"eth0", "172.30.0.0/24"}, "bridge name \"eth0\" refused"},
		{"bridge-ensure", []string{"docker0", "172.30.0.0/24"}, "refused"},
		{"bridge-ensure", []string{"banger0 x", "172.30.0.0/24"}, "refused"},
		{"bridge-ensure", []string{long, "172.30.0.0/24"}, "refused"},
		{"bridge-ensure", []string{"../banger0", "172.30.0.0/24"}, "refused"},
		{"bridge-ensure", []string{"banger0", "8.8.8.0/24"}, "not a private range"},
		{"bridge-ensure", []string{"banger0", "10.0.0.0/8"}, "between /16 and /29"},
		{"bridge-ensure", []string{"banger0", "fd00::/64"}, "private IPv4"},
		{"bridge-ensure", []string{"banger0", "172.30.0.0/24; reboot"}, "not a CIDR"},
		{"bridge-delete", []string{"eth0"}, "refused"},
		{"bridge-delete", []string{"docker0"}, "refused"},
		{"tap-add", []string{"eth0", "banger0", "1000"}, "tap name \"eth0\" refused"},
		{"tap-add", []string{"bg-" + long, "banger0", "1000"}, "refused"},
		{"tap-add", []string{"bg-1a2b3c4d", "docker0", "1000"}, "refused"},
		{"tap-add", []string{"bg-1a2b3c4d", "banger0", "abc"}, "numeric user id"},
		{"tap-add", []string{"bg-1a2b3c4d", "banger0", "-1"}, "numeric user id"},
		{"tap-add", []string{"bg-1a2b3c4d", "banger0", "1000 "}, "numeric user id"},
		{"tap-add", []string{"bg-1a2b3c4d", "banger0", "99999999999"}, "numeric user id"},
		{"tap-add", []string{"bg-1a2b3c4d", "banger0", "4294967295"}, "out of range"},
		{"tap-del", []string{"../bg-1a2b3c4d"}, "refused"},
		{"tap-del", []string{"eth0"}, "refused"},
		{"nat-ensure", []string{"8.8.8.0/24", "banger0"}, "not a private range"},
		{"nat-ensure", []string{"172.30.0.0/24", "docker0"}, "refused"},
		{"nat-ensure", []string{"172.30.0.0/24", "banger0", "eth0;reboot"}, "uplink"},
		{"nat-remove", []string{"all"}, "usage"},
		{"socket-reclaim", []string{"run/banger/x.sock", "1000"}, "absolute, clean"},
		{"socket-reclaim", []string{"/run/user/1000/banger/../../../../etc/shadow", "1000"}, "absolute, clean"},
		{"socket-reclaim", []string{"/etc/shadow", "1000"}, "outside banger's directories"},
		{"socket-reclaim", []string{"/etc/shadow", "root"}, "numeric user id"},
		{"dns-register", []string{"eth0", "172.30.0.1", "vm"}, "refused"},
		{"dns-register", []string{"banger0", "::1", "vm"}, "IPv4"},
		{"dns-register", []string{"banger0", "172.30.0.1", "~vm"}, "domain"},
		{"dns-unregister", []string{"wlan0"}, "refused"},
	}
	inSandbox(t, func(e *env) error {
		for _, c := range cases {
			err := dispatch(context.Background(), e, c.verb, c.args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s %q: got %v, want an error containing %q", c.verb, c.args, err, c.want)
			}
		}
		return nil
	})
}

func TestSudoCallerMayOnlyActForItself(t *testing.T) {
	inSandbox(t, func(e *env) error {
		e.callerUID = 1000
		for _, c := range [][]string{
			{"tap-add", "bg-1a2b3c4d", "banger0", "0"},
			{"socket-reclaim", "/run/user/1001/banger/api.sock", "1001"},
		} {
			err := dispatch(context.Background(), e, c[0], c[1:])
			if err == nil || !strings.Contains(err.Error(), "may only act for it") {
				t.Errorf("%q as uid 1000: %v", c, err)
			}
		}
		return nil
	})
}

func listenUnix(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
}

func TestSocketReclaim(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("socket-reclaim test needs root to chown")
	}
	const uid = 12345
	tmp := t.TempDir()
	base := filepath.Join(tmp, "banger-12345")
	for _, d := range []string{filepath.Join(base, "1a2b3c4d"), filepath.Join(tmp, "outside"), filepath.Join(tmp, "rootdir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(base, uid, uid); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(base, "1a2b3c4d", "api.sock")
	listenUnix(t, sock)
	outside := filepath.Join(tmp, "outside", "o.sock")
	listenUnix(t, outside)
	must(t, os.Symlink(outside, filepath.Join(base, "escape.sock")))
	must(t, os.WriteFile(filepath.Join(base, "plain"), nil, 0o600))
	// banger-777 is a symlink to a root-owned directory holding a socket.
	listenUnix(t, filepath.Join(tmp, "rootdir", "r.sock"))
	must(t, os.Symlink(filepath.Join(tmp, "rootdir"), filepath.Join(tmp, "banger-777")))

	e := &env{run: sysexec.Exec{}, tmpRoot: tmp, callerUID: -1}
	ctx := context.Background()
	if err := dispatch(ctx, e, "socket-reclaim", []string{sock, "12345"}); err != nil {
		t.Fatalf("reclaim: %v", err)
	}
	if st, _ := os.Stat(sock); st == nil || ownerOf(st) != uid {
		t.Errorf("socket owner after reclaim = %v, want %d", st, uid)
	}
	for path, want := range map[string]string{
		filepath.Join(base, "escape.sock"):         "outside banger's directories",
		filepath.Join(base, "plain"):               "not a Unix socket",
		filepath.Join(tmp, "banger-777", "r.sock"): "not a directory owned by uid 777",
		filepath.Join(base, "missing.sock"):        "no such file",
		base + "/../outside/o.sock":                "absolute, clean",
	} {
		u := "12345"
		if strings.Contains(path, "banger-777") {
			u = "777"
		}
		err := dispatch(ctx, e, "socket-reclaim", []string{path, u})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("socket-reclaim %s: %v, want %q", path, err, want)
		}
	}
	for _, p := range []string{outside, filepath.Join(tmp, "rootdir", "r.sock")} {
		if st, _ := os.Stat(p); ownerOf(st) != 0 {
			t.Errorf("%s was chowned through an escape", p)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSudoersLine(t *testing.T) {
	got := SudoersLine("alice", "/usr/local/bin/bangerd")
	want := "alice ALL=(root) NOPASSWD: " +
		"/usr/local/bin/bangerd helper bridge-ensure *, /usr/local/bin/bangerd helper bridge-delete *, " +
		"/usr/local/bin/bangerd helper tap-add *, /usr/local/bin/bangerd helper tap-del *, " +
		"/usr/local/bin/bangerd helper nat-ensure *, /usr/local/bin/bangerd helper nat-remove \"\", " +
		"/usr/local/bin/bangerd helper socket-reclaim *, /usr/local/bin/bangerd helper dns-register *, " +
		"/usr/local/bin/bangerd helper dns-unregister *"
	if got != want {
		t.Errorf("SudoersLine =\n%s\nwant\n%s", got, want)
	}
	if got := SudoersLine("bob", "/opt/my apps/bangerd"); !strings.HasPrefix(got, `bob ALL=(root) NOPASSWD: /opt/my\ apps/bangerd helper bridge-ensure *,`) {
		t.Errorf("special characters not escaped: %s", got)
	}
}

func TestMainExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	if c := Main(nil, &out, &errb); c != exitUsage || !strings.Contains(errb.String(), "usage") {
		t.Errorf("no args: %d %q", c, errb.String())
	}
	errb.Reset()
	if c := Main([]string{"shell"}, &out, &errb); c != exitUsage || !strings.Contains(errb.String(), "unknown helper verb") {
		t.Errorf("unknown verb: %d %q", c, errb.String())
	}
	if os.Geteuid() != 0 {
		if c := Main([]string{"nat-remove"}, &out, &errb); c != exitFailed || !strings.Contains(errb.String(), "must run as root") {
			t.Errorf("non-root: %d %q", c, errb.String())
		}
		return
	}
	errb.Reset()
	if c := Main([]string{"tap-del", "eth0"}, &out, &errb); c != exitFailed || !strings.Contains(errb.String(), "tap-del eth0") {
		t.Errorf("refused tap-del: %d %q", c, errb.String())
	}
	if !hostnet.ResolvedRunning() {
		out.Reset()
		if c := Main([]string{"dns-register", "banger0", "172.30.0.1", "vm"}, &out, &errb); c != exitSkipped || !strings.Contains(out.String(), "systemd-resolved is not running") {
			t.Errorf("dns-register without resolved: %d %q", c, out.String())
		}
	}
}

// TestSudoClientEndToEnd runs the real sudo -n path: the test binary is the
// helper, run by sudo inside a test namespace.
func TestSudoClientEndToEnd(t *testing.T) {
	nettest.RequireRoot(t)
	if _, err := sysexec.LookPath("sudo"); err != nil {
		t.Skip("needs sudo (apt-get install sudo)")
	}
	ns := nettest.New(t)
	self, _ := os.Executable()
	h := &caller{call: sudoCall(sysexec.Exec{}, []string{"ip", "netns", "exec", ns.Name, self, "banger-helper"})}
	ctx := context.Background()
	subnet := netip.MustParsePrefix("172.30.0.0/24")
	must(t, h.BridgeEnsure(ctx, "banger0", subnet))
	must(t, h.TapAdd(ctx, "bg-1a2b3c4d", "banger0", 0))
	if links := ns.Exec(t, "ip", "-o", "link", "show", "master", "banger0"); !strings.Contains(links, "bg-1a2b3c4d") {
		t.Errorf("tap not on the bridge: %s", links)
	}
	err := h.TapAdd(ctx, "bg-1a2b3c4d", "banger0", 12345) // sudo says the caller is uid 0
	var he *Error
	if !errors.As(err, &he) || he.Verb != "tap-add" || !strings.Contains(err.Error(), "may only act for it") {
		t.Errorf("tap-add for another uid through sudo: %v", err)
	}
	err = h.TapDel(ctx, "eth0")
	var se *sysexec.Error
	if !errors.As(err, &se) || se.ExitCode != exitFailed || !strings.Contains(se.Stderr, `tap name "eth0" refused`) {
		t.Errorf("refused verb through sudo: %v", err)
	}
	if !hostnet.ResolvedRunning() {
		if err := h.DNSRegister(ctx, "banger0", netip.MustParseAddr("172.30.0.1"), "vm"); !errors.Is(err, hostnet.ErrResolvedAbsent) {
			t.Errorf("dns-register without resolved: %v", err)
		}
	}
	must(t, h.TapDel(ctx, "bg-1a2b3c4d"))
	must(t, h.BridgeDelete(ctx, "banger0"))
	if links := ns.Exec(t, "ip", "-o", "link", "show"); strings.Count(links, "\n") != 0 {
		t.Errorf("left behind:\n%s", links)
	}
}

func TestTeardownRemovesEverything(t *testing.T) {
	ns := nettest.New(t)
	h := &caller{call: localCall(&env{run: ns.Runner(), tmpRoot: t.TempDir(), callerUID: -1})}
	ctx := context.Background()
	subnet := netip.MustParsePrefix("172.30.0.0/24")
	taps := []string{"bg-00000001", "bg-00000002"}
	ns.Do(t, func() error {
		if err := h.BridgeEnsure(ctx, "banger0", subnet); err != nil {
			return err
		}
		for _, tap := range taps {
			if err := h.TapAdd(ctx, tap, "banger0", 1000); err != nil {
				return err
			}
		}
		if err := h.NATEnsure(ctx, subnet, "banger0"); err != nil {
			return err
		}
		stray, err := hostnet.StrayTaps("banger0", map[string]bool{"bg-00000001": true})
		if err != nil || !slices.Equal(stray, []string{"bg-00000002"}) {
			t.Errorf("StrayTaps = %v, %v", stray, err)
		}
		removed, err := hostnet.Teardown(ctx, h, "banger0", taps)
		if err != nil {
			return err
		}
		want := []string{"tap bg-00000001", "tap bg-00000002", "nat", "bridge banger0"}
		if hostnet.ResolvedRunning() {
			want = []string{"tap bg-00000001", "tap bg-00000002", "nat", "dns banger0", "bridge banger0"}
		}
		if !slices.Equal(removed, want) {
			t.Errorf("Teardown removed %v, want %v", removed, want)
		}
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		if len(links) != 1 {
			t.Errorf("%d interfaces left, want only lo", len(links))
		}
		return nil
	})
	if rules := ns.Exec(t, "nft", "list", "ruleset"); rules != "" {
		t.Errorf("rules left after teardown:\n%s", rules)
	}
}
