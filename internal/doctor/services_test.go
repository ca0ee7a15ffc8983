package doctor

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
)

func TestSSHClient(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("ssh-client"), api.CheckFail, "ssh not found", "sudo apt-get install openssh-client")
	p := h.program("ssh", "OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15", true)
	want(t, h.run("ssh-client"), api.CheckOK, "OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 at "+p, "")
}

func TestSSHKey(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("ssh-key"), api.CheckWarn, "not checked", "")
	key := filepath.Join(t.TempDir(), "id_ed25519")
	h.env.SSHKeyPath = key
	want(t, h.run("ssh-key"), api.CheckFail, "does not exist", "banger bundle build")
	if err := os.WriteFile(key, []byte("key"), 0o644); err != nil {
		t.Fatal(err)
	}
	want(t, h.run("ssh-key"), api.CheckFail, "has mode 0644", "chmod 600 "+key)
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	want(t, h.run("ssh-key"), api.CheckOK, "mode 0600", "")
}

func TestKnownHosts(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("known-hosts"), api.CheckWarn, "not checked", "")
	dir := filepath.Join(t.TempDir(), "state")
	h.env.KnownHostsPath = filepath.Join(dir, "known_hosts")
	want(t, h.run("known-hosts"), api.CheckFail, "does not exist", "mkdir -p -m 0700 "+dir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	want(t, h.run("known-hosts"), api.CheckOK, "will be created on first ssh", "")
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the writability probe left %d files behind", len(entries))
	}
	if err := os.WriteFile(h.env.KnownHostsPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	want(t, h.run("known-hosts"), api.CheckOK, "writable", "")
}

// serveNXDOMAIN answers every DNS query on a loopback UDP socket with
// NXDOMAIN and returns its address.
func serveNXDOMAIN(t *testing.T) *net.UDPAddr {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			resp := append([]byte(nil), buf[:n]...) // same id, question and EDNS record
			resp[2] |= 0x84                         // QR (response), AA
			resp[3] = 0x80 | 3                      // RA, RCODE NXDOMAIN
			pc.WriteTo(resp, from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr)
}

func TestDNSServer(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("dns-server"), api.CheckWarn, "not checked", "")
	srv := serveNXDOMAIN(t)
	// RealEnv's resolver asks the subnet's gateway: with 127.0.0.0/24 that is
	// 127.0.0.1, where the test server listens.
	h.env.Subnet, h.env.DNSPort = netip.MustParsePrefix("127.0.0.0/24"), srv.Port
	h.env.ResolveName = h.env.resolveAtGateway
	want(t, h.run("dns-server"), api.CheckWarn, "bridge banger0 does not exist yet", "banger vm start NAME")

	h.file("sys/class/net/banger0/ifindex", "7\n")
	// Not port 53: the guests are redirected, which the helper must be allowed to do.
	h.env.HelperPath = "/usr/local/libexec/banger/banger-helper"
	want(t, h.run("dns-server"), api.CheckFail, "guests ask port 53 and the redirect to "+strconv.Itoa(srv.Port)+" cannot be set up", "make install-helper")
	var asked []string
	h.env.SudoAllowed = func(_ context.Context, argv []string) error { asked = argv; return nil }
	want(t, h.run("dns-server"), api.CheckOK, "DNS server on 127.0.0.1 port "+strconv.Itoa(srv.Port)+" answers for .vm", "")
	if want := []string{h.env.HelperPath, "dns-redirect", "banger0", strconv.Itoa(srv.Port)}; !slices.Equal(asked, want) {
		t.Errorf("sudo asked for %q, want %q", asked, want)
	}
	// With a VM, the server is asked for its name: this one knows none.
	h.env.SampleVM = func(context.Context) (string, netip.Addr, bool) {
		return "dev", netip.MustParseAddr("172.30.0.2"), true
	}
	want(t, h.run("dns-server"), api.CheckFail, "but asked for dev.vm. it answers [] (lookup dev.vm.", "banger daemon stop && banger daemon start")
	atGateway := h.env.ResolveName
	h.env.ResolveName = func(ctx context.Context, name string) ([]string, error) {
		if name == "dev.vm." {
			return []string{"172.30.0.2"}, nil
		}
		return atGateway(ctx, name)
	}
	want(t, h.run("dns-server"), api.CheckOK, "bangerd, the guests' resolver; dev.vm. is 172.30.0.2 (guests ask port 53, which banger redirects to", "")
	h.env.SampleVM, h.env.ResolveName = nil, atGateway

	// Nothing listening: the query is refused, which is a failure.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	h.env.DNSPort = closed
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := checkDNSServer(ctx, h.env)
	want(t, r, api.CheckFail, "no answer from the DNS server on 127.0.0.1 port "+strconv.Itoa(closed), "banger daemon stop && banger daemon start")

}

func TestVMNames(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("vm-names"), api.CheckWarn, "systemd-resolved is not running", "sudo apt-get install systemd-resolved")
	if r := h.run("vm-names"); !strings.Contains(r.Fix, "mapdns_bin") || !strings.Contains(r.Detail, "dig @172.30.0.1") {
		t.Errorf("vm-names should offer mapdns and dig: %+v", r)
	}
	h.file("run/systemd/resolve/stub-resolv.conf", "nameserver 127.0.0.53\n")
	want(t, h.run("vm-names"), api.CheckWarn, "bridge banger0 does not exist yet", "banger vm start")
	h.file("sys/class/net/banger0/ifindex", "7\n")
	want(t, h.run("vm-names"), api.CheckWarn, "does not route .vm to 172.30.0.1", "banger daemon stop && banger daemon start")
	h.file("run/systemd/resolve/netif/7", "# This is private data. Do not parse.\nDNS=172.30.0.1\nDOMAINS=~vm\n")
	want(t, h.run("vm-names"), api.CheckOK, "systemd-resolved routes ~vm to 172.30.0.1 on banger0", "")

}

// With mapdns configured, vm-names says which server answers <name>.vm on
// the host and asks it for a VM's name.
func TestVMNamesFromMapdns(t *testing.T) {
	h := newFakeHost(t)
	dir := t.TempDir()
	h.env.MapdnsBin, h.env.MapdnsDataFile = "/usr/local/bin/mapdns", filepath.Join(dir, "mapdns.json")
	var asked []string
	answer := map[string][]string{}
	var down error
	h.env.ResolveAt = func(_ context.Context, server, name string) ([]string, error) {
		asked = append(asked, server+" "+name)
		if down != nil {
			return nil, down
		}
		if a, ok := answer[name]; ok {
			return a, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	st := MapdnsState{Supervised: true, PID: 4321, LogFile: "/state/mapdns.log"}
	h.env.Mapdns = func() MapdnsState { return st }

	want(t, h.run("vm-names"), api.CheckOK, "answered by mapdns (pid 4321, run by bangerd) on port 53; it answers (no VM to ask for yet)", "")
	if len(asked) != 1 || !strings.HasPrefix(asked[0], "127.0.0.1:53 ") {
		t.Errorf("asked %q, want mapdns on 127.0.0.1:53", asked)
	}
	vm := netip.MustParseAddr("172.30.0.2")
	h.env.SampleVM = func(context.Context) (string, netip.Addr, bool) { return "dev", vm, true }
	answer["dev.vm."] = []string{"172.30.0.2"}
	want(t, h.run("vm-names"), api.CheckOK, "mapdns (pid 4321, run by bangerd) on port 53: dev.vm. is 172.30.0.2, as recorded", "")

	answer["dev.vm."] = []string{"172.30.0.9"}
	want(t, h.run("vm-names"), api.CheckFail, "answers dev.vm. with 172.30.0.9, not 172.30.0.2: it serves an older", "banger daemon stop && banger daemon start")
	delete(answer, "dev.vm.")
	st = MapdnsState{Supervised: true, Foreign: []int{77}}
	want(t, h.run("vm-names"), api.CheckFail, "mapdns (pid 77, not started by banger) on port 53, but it answers dev.vm. with no address", "restart your mapdns (pid 77) in "+dir)

	down = errors.New("connection refused")
	st = MapdnsState{Supervised: true, LastExit: "exit status 0", LogFile: "/state/mapdns.log"}
	want(t, h.run("vm-names"), api.CheckFail, "for mapdns (bangerd's is not running) on port 53; asked for dev.vm., nothing answers: connection refused",
		"see why mapdns stops (last: exit status 0) in /state/mapdns.log")
	h.env.MapdnsBin, st = "", MapdnsState{}
	want(t, h.run("vm-names"), api.CheckFail, "mapdns (run by you)", "start mapdns in "+dir)
}

func TestMapdns(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("mapdns"), api.CheckOK, "not configured", "")
	h.env.MapdnsBin = "mapdns"
	want(t, h.run("mapdns"), api.CheckFail, "mapdns_bin is set without mapdns_data_file", "mapdns_data_file")
	dir := t.TempDir()
	h.env.MapdnsDataFile = filepath.Join(dir, "data.json")
	want(t, h.run("mapdns"), api.CheckFail, "reads only mapdns.json", "/mapdns.json")
	h.env.MapdnsDataFile = filepath.Join(dir, "missing", "mapdns.json")
	want(t, h.run("mapdns"), api.CheckFail, "does not exist", "mkdir -p "+filepath.Join(dir, "missing"))
	h.env.MapdnsDataFile = filepath.Join(dir, "mapdns.json")
	want(t, h.run("mapdns"), api.CheckFail, "mapdns_bin mapdns not found in PATH", "full path")
	bin := h.program("mapdns", "", false)
	h.env.MapdnsBin = bin
	// Port 53 is privileged on this host and the binary has no capability.
	h.file("proc/sys/net/ipv4/ip_unprivileged_port_start", "1024\n")
	want(t, h.run("mapdns"), api.CheckFail, "may not bind port 53", "sudo setcap cap_net_bind_service=+ep "+bin)
	h.file("proc/sys/net/ipv4/ip_unprivileged_port_start", "0\n")
	want(t, h.run("mapdns"), api.CheckOK, "mapdns "+bin+" with data file", "")

	st := MapdnsState{Supervised: true, PID: 99}
	h.env.Mapdns = func() MapdnsState { return st }
	want(t, h.run("mapdns"), api.CheckOK, "bangerd runs mapdns "+bin+" (pid 99) in "+dir, "")
	st = MapdnsState{Supervised: true, Foreign: []int{77, 78}}
	want(t, h.run("mapdns"), api.CheckWarn, "mapdns pid 77,78 runs and banger did not start it", "restart your mapdns (pid 77,78)")
	st = MapdnsState{Supervised: true, LastExit: "signal: killed", LogFile: "/s/mapdns.log"}
	want(t, h.run("mapdns"), api.CheckFail, "bangerd's mapdns is not running (last exit: signal: killed)", "/s/mapdns.log")

	h.env.MapdnsBin = ""
	want(t, h.run("mapdns"), api.CheckWarn, "set without mapdns_bin", "set mapdns_bin")
}

func TestDaemonSocketAndVersion(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("daemon-socket"), api.CheckWarn, "not checked", "")
	want(t, h.run("daemon-version"), api.CheckWarn, "not checked", "")

	h.env.DaemonInfo = func(context.Context) (api.DaemonInfo, error) {
		return api.DaemonInfo{}, errors.New("dial unix /run/user/1000/banger/bangerd.sock: connect: no such file or directory")
	}
	want(t, h.run("daemon-socket"), api.CheckFail, "bangerd does not answer: dial unix", "banger daemon start")
	want(t, h.run("daemon-version"), api.CheckWarn, "not checked: bangerd does not answer", "")

	info := api.DaemonInfo{Version: "0.3.0", BuildID: "abc", APIVersion: api.Version, PID: 42, Socket: "/run/user/1000/banger/bangerd.sock"}
	h.env.DaemonInfo = func(context.Context) (api.DaemonInfo, error) { return info, nil }
	h.env.CLIVersion, h.env.CLIBuildID = "0.3.0", "def"
	want(t, h.run("daemon-socket"), api.CheckOK, "bangerd pid 42 answers on /run/user/1000/banger/bangerd.sock", "")
	want(t, h.run("daemon-version"), api.CheckWarn, "bangerd is 0.3.0 (build abc) but this banger is 0.3.0 (build def)", "banger daemon stop && banger daemon start")
	h.env.CLIBuildID = "abc"
	want(t, h.run("daemon-version"), api.CheckOK, "both 0.3.0 (build abc)", "")
	info.APIVersion = api.Version + 1
	want(t, h.run("daemon-version"), api.CheckFail, "API version", "banger daemon stop && banger daemon start")

	h.env.RuntimeDir = "/" + strings.Repeat("r", 120)
	want(t, h.run("daemon-socket"), api.CheckFail, "Unix socket limit", "BANGER_RUNTIME_DIR")
}

func TestStateDir(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("state-dir"), api.CheckWarn, "not checked", "")
	d := filepath.Join(t.TempDir(), "state")
	h.env.StateDir = d
	want(t, h.run("state-dir"), api.CheckFail, "does not exist", "mkdir -p -m 0700 "+d)
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil { // beat the umask
		t.Fatal(err)
	}
	want(t, h.run("state-dir"), api.CheckWarn, "has mode 0755", "chmod 700 "+d)
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatal(err)
	}
	want(t, h.run("state-dir"), api.CheckOK, "writable, mode 0700", "")
}

// quickCheck is the database callback the daemon supplies, on real SQLite.
func quickCheck(path string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			return err
		}
		defer db.Close()
		var res string
		if err := db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
			return err
		}
		if res != "ok" {
			return errors.New(res)
		}
		return nil
	}
}

func TestDatabase(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("database"), api.CheckWarn, "not checked", "")
	h.env.StateDir = t.TempDir()
	good := filepath.Join(h.env.StateDir, "banger.db")
	db, err := sql.Open("sqlite", "file:"+good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE vms(id TEXT PRIMARY KEY); INSERT INTO vms VALUES ('1a2b3c4d')"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	h.env.DBQuickCheck = quickCheck(good)
	want(t, h.run("database"), api.CheckOK, "PRAGMA quick_check on "+good+": ok", "")

	if err := os.WriteFile(good, []byte(strings.Repeat("this is not a database\n", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	want(t, h.run("database"), api.CheckFail, "PRAGMA quick_check on "+good+" failed", "sqlite3 "+good+" 'PRAGMA integrity_check;'")
}

// The capability check reads what setcap writes.
func TestHasNetBindCap(t *testing.T) {
	if _, err := sysexec.LookPath("setcap"); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and setcap (apt-get install libcap2-bin)")
	}
	bin := filepath.Join(t.TempDir(), "mapdns")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if hasNetBindCap(bin) {
		t.Fatal("a plain file has cap_net_bind_service")
	}
	for _, c := range []struct {
		caps string
		want bool
	}{{"cap_net_bind_service=+ep", true}, {"cap_net_bind_service=+p", false}, {"cap_net_raw=+ep", false}} {
		if _, err := sysexec.Run(context.Background(), "setcap", c.caps, bin); err != nil {
			t.Skipf("setcap here: %v", err)
		}
		if got := hasNetBindCap(bin); got != c.want {
			t.Errorf("after setcap %s: %v, want %v", c.caps, got, c.want)
		}
	}
}
