package e2etest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/store"
	"github.com/banger-dev/banger/internal/sysexec"
)

// Helpers for tests that boot real guests: VM records, ssh, what exists in
// the namespace, an "internet" namespace behind the env's uplink, and DNS
// queries from inside the namespace.

// Layout is the environment's banger directories (as bangerd sees them).
func (e *Env) Layout() paths.Layout {
	return paths.Layout{
		ConfigDir: filepath.Join(e.Root, "config"), StateDir: filepath.Join(e.Root, "state"),
		DataDir: e.DataDir, CacheDir: filepath.Join(CacheDir(), "cache"), RuntimeDir: filepath.Join(e.Root, "run"),
	}
}

// Gateway is the bridge address: the first host of the subnet.
func (e *Env) Gateway() netip.Addr {
	return netip.MustParsePrefix(e.Subnet).Masked().Addr().Next()
}

// VM returns one VM's record (`banger vm show NAME --output json`).
func (e *Env) VM(name string) api.VM {
	e.t.Helper()
	var vm api.VM
	e.JSON(&vm, "vm", "show", name)
	return vm
}

// VMs lists every VM (`banger vm list --output json`).
func (e *Env) VMs() []api.VM {
	e.t.Helper()
	var vms []api.VM
	e.JSON(&vms, "vm", "list")
	return vms
}

// SSH runs a command in a VM through `banger vm ssh NAME -- COMMAND...` and
// returns stdout, stderr and the exit status.
func (e *Env) SSH(name string, command ...string) (string, string, int) {
	return e.Banger(append([]string{"vm", "ssh", name, "--"}, command...)...)
}

// MustSSH is SSH failing the test on a non-zero exit.
func (e *Env) MustSSH(name string, command ...string) string {
	e.t.Helper()
	out, errOut, code := e.SSH(name, command...)
	if code != 0 {
		e.t.Fatalf("vm ssh %s -- %s: exit %d\nstdout:\n%s\nstderr:\n%s", name, strings.Join(command, " "), code, out, errOut)
	}
	return out
}

// Links lists the network interface names in the namespace.
func (e *Env) Links() []string {
	e.t.Helper()
	out, err := e.InNS("ip", "-o", "link", "show")
	if err != nil {
		e.t.Fatalf("ip -o link in %s: %v", e.NS, err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		// "3: bg-1a2b3c4d@if2: <...>" or "3: bangere2e: <...>"
		f := strings.SplitN(line, ": ", 3)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(f[1], "@")
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// HasLink reports whether an interface exists in the namespace.
func (e *Env) HasLink(name string) bool {
	for _, l := range e.Links() {
		if l == name {
			return true
		}
	}
	return false
}

// NFTRuleset is `nft list ruleset` inside the namespace ("" when nft is
// absent).
func (e *Env) NFTRuleset() string {
	e.t.Helper()
	if _, err := sysexec.LookPath("nft"); err != nil {
		return ""
	}
	out, err := e.InNS("nft", "list", "ruleset")
	if err != nil {
		e.t.Fatalf("nft list ruleset in %s: %v", e.NS, err)
	}
	return out
}

// FilesMentioning lists paths under the environment root whose name
// contains s (a VM id: its disks, logs, sockets and directories).
func (e *Env) FilesMentioning(s string) []string {
	var found []string
	_ = filepath.WalkDir(e.Root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(filepath.Base(p), s) {
			found = append(found, p)
		}
		return nil
	})
	return found
}

// DNSAnswer is what one query to banger's DNS server returned.
type DNSAnswer struct {
	Rcode string   `json:"rcode"` // "NOERROR", "NXDOMAIN", ...
	Addrs []string `json:"addrs"` // A records
}

// Resolve asks the DNS server at server (ip:port) for name's A records from
// inside the namespace, as a host-side resolver pointed at the bridge would.
// It re-executes the test binary (see RunHelper) with miekg/dns, so it needs
// no dig.
func (e *Env) Resolve(server netip.AddrPort, name string) DNSAnswer {
	e.t.Helper()
	a, err := e.TryResolve(server, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// TryResolve is Resolve returning the error (no answer, unreachable server)
// instead of failing the test.
func (e *Env) TryResolve(server netip.AddrPort, name string) (DNSAnswer, error) {
	self, err := os.Executable()
	if err != nil {
		return DNSAnswer{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{
		Argv: []string{"ip", "netns", "exec", e.NS, self, server.String(), name},
		Env:  []string{helperEnv + "=dns"},
	})
	if err != nil {
		return DNSAnswer{}, fmt.Errorf("resolve %s at %s in %s: %w", name, server, e.NS, err)
	}
	var a DNSAnswer
	if err := json.Unmarshal(res.Stdout, &a); err != nil {
		return DNSAnswer{}, fmt.Errorf("resolve %s: decode %q: %w", name, res.Stdout, err)
	}
	return a, nil
}

// Internet is a second namespace standing for the internet: it is joined to
// the environment's namespace by a veth pair that the environment uses as
// its uplink (default route), so NAT can be observed from the far side.
type Internet struct {
	NS     string
	Addr   netip.Addr // the internet side's address
	Uplink netip.Addr // the environment's address on the link (what NAT rewrites to)
	t      testing.TB
}

// ConnectInternet creates the internet namespace and the uplink veth pair
// (env side 198.18.0.1/30 with the default route via 198.18.0.2). Cleanup
// deletes the namespace, which removes both veth ends.
func (e *Env) ConnectInternet() *Internet {
	e.t.Helper()
	in := &Internet{NS: "bgi-" + filepath.Base(e.Root)[3:], Addr: netip.MustParseAddr("198.18.0.2"),
		Uplink: netip.MustParseAddr("198.18.0.1"), t: e.t}
	run(e.t, "ip", "netns", "add", in.NS)
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = sysexec.Run(ctx, "ip", "netns", "del", in.NS)
	})
	for _, argv := range [][]string{
		{"ip", "netns", "exec", in.NS, "ip", "link", "set", "lo", "up"},
		{"ip", "netns", "exec", e.NS, "ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "inet0", "netns", in.NS},
		{"ip", "netns", "exec", e.NS, "ip", "addr", "add", in.Uplink.String() + "/30", "dev", "uplink0"},
		{"ip", "netns", "exec", e.NS, "ip", "link", "set", "uplink0", "up"},
		{"ip", "netns", "exec", e.NS, "ip", "route", "add", "default", "via", in.Addr.String()},
		{"ip", "netns", "exec", in.NS, "ip", "addr", "add", in.Addr.String() + "/30", "dev", "inet0"},
		{"ip", "netns", "exec", in.NS, "ip", "link", "set", "inet0", "up"},
	} {
		run(e.t, argv...)
	}
	return in
}

// ServeHTTP starts an HTTP server on the internet side (the test binary
// re-executed in the namespace) whose every response body is the client's
// address as the server saw it. It returns the port; cleanup stops it.
func (in *Internet) ServeHTTP() int {
	in.t.Helper()
	self, err := os.Executable()
	if err != nil {
		in.t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		in.t.Fatal(err)
	}
	defer r.Close()
	cmd, err := sysexec.Start(sysexec.Cmd{
		Argv: []string{"ip", "netns", "exec", in.NS, self, netip.AddrPortFrom(in.Addr, 0).String()},
		Env:  []string{helperEnv + "=http-echo"}, Stdout: w, Stderr: os.Stderr,
	}, true)
	w.Close()
	if err != nil {
		in.t.Fatal(err)
	}
	in.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// The first line is the bound address, written once it listens.
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	select {
	case line := <-lines:
		ap, err := netip.ParseAddrPort(line)
		if err != nil {
			in.t.Fatalf("http-echo helper in %s: bad ready line %q", in.NS, line)
		}
		return int(ap.Port())
	case <-time.After(30 * time.Second):
		in.t.Fatalf("http-echo helper in %s did not start within 30s", in.NS)
	}
	return 0
}

// Timer logs the time since its start at each mark, so test logs carry the
// figures (create-to-healthy, create-to-ssh) the README quotes.
type Timer struct {
	t     testing.TB
	start time.Time
}

// StartTimer starts a Timer.
func StartTimer(t testing.TB) *Timer { return &Timer{t: t, start: time.Now()} }

// Mark logs "timing: WHAT: N.Ns".
func (tm *Timer) Mark(what string) time.Duration {
	tm.t.Helper()
	d := time.Since(tm.start)
	tm.t.Logf("timing: %s: %.1fs", what, d.Seconds())
	return d
}

// String is for messages.
func (tm *Timer) String() string { return fmt.Sprintf("%.1fs", time.Since(tm.start).Seconds()) }

// MarkImageRebuilt records a new build of an image the way `banger image
// build --force NAME` does (same rootfs path, new content checksum) without
// the minutes a real build takes, and without touching the shared image
// file. VMs on that image re-clone their root disk at next start; their work
// disk must be kept.
func (e *Env) MarkImageRebuilt(name string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(e.Layout().Database())
	if err != nil {
		e.t.Fatalf("open the environment's database: %v", err)
	}
	defer st.Close()
	img, err := st.GetImage(ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(img.SHA256 + " rebuilt " + time.Now().String()))
	img.SHA256, img.CreatedAt = hex.EncodeToString(sum[:]), time.Now().UTC()
	if _, err := st.PutImage(ctx, img, true); err != nil {
		e.t.Fatalf("record a rebuild of image %s: %v", name, err)
	}
}
