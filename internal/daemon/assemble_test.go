package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/bundle"
	"github.com/banger-dev/banger/internal/config"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/privhelper"
	"github.com/banger-dev/banger/internal/server"
	"github.com/banger-dev/banger/internal/store"
)

// newTestDaemon assembles a daemon on a fresh state tree and a real store,
// as Run does, without serving.
func newTestDaemon(t *testing.T, edit func(*config.Config)) *Daemon {
	t.Helper()
	l := paths.UnderRoot(t.TempDir())
	if err := l.Ensure(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(l.Database())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := config.Default()
	if edit != nil {
		edit(&cfg)
	}
	d, err := New(l, cfg, st, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	d.Helper = &testHelper{subnet: cfg.Subnet}
	d.Runtime.Helper = d.Helper
	t.Cleanup(d.stopDNS)
	t.Cleanup(d.stopMapDNS)
	return d
}

// apiMethodNames reads every Method* constant of internal/api from its
// source, so a method added to the API but not to the table is caught.
func apiMethodNames(t *testing.T) []string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "api")
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, decl := range f.Decls {
				g, ok := decl.(*ast.GenDecl)
				if !ok || g.Tok != token.CONST {
					continue
				}
				for _, spec := range g.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if !strings.HasPrefix(n.Name, "Method") || i >= len(vs.Values) {
							continue
						}
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							s, _ := strconv.Unquote(lit.Value)
							names = append(names, s)
						}
					}
				}
			}
		}
	}
	if len(names) < 20 {
		t.Fatalf("found only %d API method names in %s: the parser lost them", len(names), dir)
	}
	slices.Sort(names)
	return names
}

// The one method table serves exactly api's methods, each once.
func TestMethodTableMatchesAPI(t *testing.T) {
	d := newTestDaemon(t, nil)
	var table []string
	srv := server.New(nil)
	for _, m := range d.methods() {
		table = append(table, m.name)
		srv.Register(m.name, m.handler) // panics on a name listed twice
	}
	slices.Sort(table)
	want := apiMethodNames(t)
	if !slices.Equal(table, want) {
		t.Fatalf("method table\n got %v\nwant %v (api's Method* constants)", table, want)
	}
	if got := srv.Methods(); !slices.Equal(got, want) {
		t.Fatalf("server serves %v", got)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// DNS serves on dns_port, else on dns_fallback_port when the first is
// taken, answering from the VM records; doctor checks the port in use.
func TestDNSFallsBackToSecondPort(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	fallback := freePort(t)
	d := newTestDaemon(t, func(c *config.Config) {
		c.DNSPort, c.DNSFallbackPort = taken.LocalAddr().(*net.UDPAddr).Port, fallback
		c.Subnet = netip.MustParsePrefix("10.250.0.0/24")
	})
	logs := &lockedBuffer{}
	d.Log = log.New(logs, "", 0)
	seedImage(t, d)
	vm, err := d.Store.CreateVM(context.Background(), store.NewVM{Name: "dev", Image: "debian", VCPUs: 1, MemoryMiB: 256,
		DiskBytes: 1 << 30, Subnet: d.Config.Subnet})
	if err != nil {
		t.Fatal(err)
	}
	d.startDNS(netip.MustParseAddr("127.0.0.1"))
	if got := d.dnsPort(); got != fallback {
		t.Fatalf("serving on port %d, want the fallback %d", got, fallback)
	}
	// The log says why the first port was refused.
	want := fmt.Sprintf("dns: cannot serve on 127.0.0.1 port %d: listen udp %s: bind: address already in use; trying port %d",
		d.Config.DNSPort, taken.LocalAddr(), fallback)
	if out := logs.String(); !strings.Contains(out, want) {
		t.Errorf("log:\n%s\nwant the line %q", out, want)
	}
	// Guests ask port 53: they are sent to the fallback port.
	if calls := d.Helper.(*testHelper).Calls(); !slices.Equal(calls, []string{fmt.Sprintf("dns-redirect banger0 %d", fallback)}) {
		t.Errorf("helper calls %q, want the guests' DNS redirected to %d", calls, fallback)
	}
	if env := d.doctorEnv(); env.DNSPort != fallback {
		t.Errorf("doctor checks DNS port %d, want %d", env.DNSPort, fallback)
	}
	m := new(dns.Msg)
	m.SetQuestion("dev.vm.", dns.TypeA)
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(fallback)).String())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != vm.IP {
		t.Fatalf("dev.vm answered %v, want %s", r.Answer, vm.IP)
	}
	d.stopDNS()
	if d.dnsPort() != 0 {
		t.Error("stopDNS left a port recorded")
	}
}

func seedImage(t *testing.T, d *Daemon) {
	t.Helper()
	if _, err := d.Store.PutImage(context.Background(), api.Image{Name: "debian", Distro: "debian", RootfsPath: "/nonexistent"}, false); err != nil {
		t.Fatal(err)
	}
}

// The mapdns data file follows the VM records.
func TestSyncMapDNS(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mapdns.json")
	d := newTestDaemon(t, func(c *config.Config) { c.MapDNSDataFile = file })
	seedImage(t, d)
	ctx := context.Background()
	vm, err := d.Store.CreateVM(ctx, store.NewVM{Name: "dev", Image: "debian", VCPUs: 1, MemoryMiB: 256,
		DiskBytes: 1 << 30, Subnet: d.Config.Subnet})
	if err != nil {
		t.Fatal(err)
	}
	d.syncMapDNS(ctx)
	var entries map[string]struct{ A string }
	b, err := os.ReadFile(file)
	if err != nil || json.Unmarshal(b, &entries) != nil {
		t.Fatalf("mapdns file: %v\n%s", err, b)
	}
	if entries["dev.vm."].A != vm.IP {
		t.Fatalf("mapdns file %s lacks dev.vm -> %s", b, vm.IP)
	}
	if err := d.Store.DeleteVM(ctx, vm.ID); err != nil {
		t.Fatal(err)
	}
	d.syncMapDNS(ctx)
	b, _ = os.ReadFile(file)
	if strings.Contains(string(b), "dev.vm") {
		t.Fatalf("deleted VM still in the mapdns file: %s", b)
	}
}

// Doctor sees this daemon's config, and the installed helper that the
// helper client runs.
func TestDoctorEnv(t *testing.T) {
	d := newTestDaemon(t, func(c *config.Config) { c.Subnet = netip.MustParsePrefix("10.9.0.0/16") })
	env := d.doctorEnv()
	if env.Subnet.String() != "10.9.0.0/16" || env.ConfigFile != d.Layout.ConfigFile() || env.BundleDir != d.Layout.BundleDir() {
		t.Errorf("env: subnet %q, config %q, bundle %q", env.Subnet, env.ConfigFile, env.BundleDir)
	}
	if env.HelperPath != privhelper.DefaultPath || env.HelperCheck == nil {
		t.Errorf("helper path %q, check set %v", env.HelperPath, env.HelperCheck != nil)
	}
	if env.SSHKeyPath != filepath.Join(d.Layout.BundleDir(), "id_ed25519") || env.ChooseVMM == nil || env.DBQuickCheck == nil {
		t.Errorf("env: ssh key %q", env.SSHKeyPath)
	}
}

// fakeRuntime boots nothing; its guests never answer their agent.
type fakeRuntime struct{ destroyed []string }

func (f *fakeRuntime) Provision(context.Context, api.VM, func(api.Progress)) error { return nil }
func (f *fakeRuntime) Start(_ context.Context, v api.VM, _ func(api.Progress)) (api.VM, error) {
	v.State, v.PID = api.VMRunning, os.Getpid()
	return v, nil
}
func (f *fakeRuntime) Stop(_ context.Context, v api.VM, _ bool) (api.VM, error) {
	v.State = api.VMStopped
	return v, nil
}
func (f *fakeRuntime) Health(_ context.Context, v api.VM) (api.VMHealthResult, error) {
	return api.VMHealthResult{Name: v.Name, State: v.State, Error: "agent did not answer"}, nil
}
func (f *fakeRuntime) Destroy(_ context.Context, v api.VM) error {
	f.destroyed = append(f.destroyed, v.Name)
	return nil
}
func (f *fakeRuntime) Reconcile(context.Context, []api.VM) ([]api.VM, []string, error) {
	return nil, nil, nil
}
func (f *fakeRuntime) ResizeDisk(context.Context, api.VM, int64) error { return nil }
func (f *fakeRuntime) Alive(api.VM) bool                               { return true }
func (f *fakeRuntime) DialAgent(context.Context, api.VM) (net.Conn, error) {
	return nil, errors.New("no agent in this fake")
}

// verify's boot check reports a guest whose agent does not answer, and
// removes its throwaway VM either way.
func TestVerifyBootFailsOnSilentAgentAndCleansUp(t *testing.T) {
	d := newTestDaemon(t, nil)
	rt := &fakeRuntime{}
	d.VMs.Runtime, d.VMs.Preflight = rt, nil
	seedImage(t, d)
	ctx := context.Background()
	img, _ := d.Store.GetImage(ctx, "debian")
	checks := d.verifyBoot(ctx, img, &bundle.Bundle{}, func(api.Progress) {})
	if len(checks) != 1 || checks[0].Name != "agent-health" || checks[0].Status != api.CheckFail ||
		!strings.Contains(checks[0].Detail, "agent did not answer") {
		t.Fatalf("checks %+v", checks)
	}
	if vms, _ := d.Store.ListVMs(ctx); len(vms) != 0 {
		t.Fatalf("throwaway VM left: %+v", vms)
	}
	if len(rt.destroyed) != 1 || !strings.HasPrefix(rt.destroyed[0], "verify-") {
		t.Fatalf("destroyed %v", rt.destroyed)
	}
}

// host teardown refuses while VMs run, unless forced.
func TestHostTeardownRefusesRunningVMs(t *testing.T) {
	d := newTestDaemon(t, nil)
	d.VMs.Runtime, d.VMs.Preflight = &fakeRuntime{}, nil
	seedImage(t, d)
	ctx := context.Background()
	if _, err := d.VMs.Create(ctx, api.VMCreateParams{Name: "dev"}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := d.hostTeardown(ctx, api.HostTeardownParams{}, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeConflict || !strings.Contains(ae.Message, "dev") {
		t.Fatalf("teardown with a running VM: %v", err)
	}
}

// The agent put into bundles: agent_bin from config wins; with none next to
// bangerd or in PATH, the error says how to get one.
func TestAgentBinary(t *testing.T) {
	d := newTestDaemon(t, func(c *config.Config) { c.AgentBin = "/opt/banger-agent" })
	if p, err := d.agentBinary(); err != nil || p != "/opt/banger-agent" {
		t.Errorf("agent_bin: %q %v", p, err)
	}
	d.Config.AgentBin = ""
	d.Bangerd = filepath.Join(t.TempDir(), "bangerd")
	t.Setenv("PATH", t.TempDir())
	_, err := d.agentBinary()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeFailedPrecondition || !strings.Contains(ae.Hint, "agent_bin") {
		t.Errorf("no agent anywhere: %v", err)
	}
	beside := filepath.Join(filepath.Dir(d.Bangerd), "banger-agent")
	os.WriteFile(beside, []byte("#!/bin/sh\n"), 0o755)
	if p, err := d.agentBinary(); err != nil || p != beside {
		t.Errorf("agent next to bangerd: %q %v", p, err)
	}
}
