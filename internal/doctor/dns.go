package doctor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
)

const daemonRestartFix = "banger daemon stop && banger daemon start"

// dnsProbeName is a name no VM can have (VM names are DNS labels without
// dots and this one has an underscore), so a healthy server answers NXDOMAIN.
const dnsProbeLabel = "banger-doctor_probe"

func (e *Env) bridgeExists() bool {
	_, err := os.Stat(e.sys(filepath.Join("/sys/class/net", e.bridge())))
	return err == nil
}

func checkDNSServer(ctx context.Context, e *Env) api.CheckResult {
	if e.ResolveName == nil {
		return notChecked("no DNS resolver was provided")
	}
	gw := e.gateway()
	if !e.bridgeExists() {
		return warn(fmt.Sprintf("bridge %s does not exist yet (created when the first VM starts): DNS on %s not checked", e.bridge(), gw),
			"banger vm start "+e.vmName())
	}
	name := dnsProbeLabel + "." + e.domain() + "."
	_, err := e.ResolveName(ctx, name)
	var dnsErr *net.DNSError
	if err == nil || (errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
		detail := fmt.Sprintf("DNS server on %s port %d answers for .%s: bangerd, the guests' resolver", gw, e.dnsPort(), e.domain())
		if vm, ip, have := e.sampleVM(ctx); have {
			fqdn := vm + "." + e.domain() + "."
			addrs, err := e.ResolveName(ctx, fqdn)
			if !slices.Contains(addrs, ip.String()) {
				return fail(fmt.Sprintf("%s, but asked for %s it answers %v (%v), not %s as recorded", detail, fqdn, addrs, err, ip), daemonRestartFix)
			}
			detail += fmt.Sprintf("; %s is %s", fqdn, ip)
		}
		if port := e.dnsPort(); port != 53 {
			// Guests ask port 53: they reach bangerd through the helper's redirect.
			r := helperRights(ctx, e, []string{"dns-redirect", e.bridge(), strconv.Itoa(port)}, "the guests' DNS is redirected")
			if r.Status != api.CheckOK {
				return fail(detail+fmt.Sprintf(", but guests ask port 53 and the redirect to %d cannot be set up: %s", port, r.Detail), r.Fix)
			}
			detail += fmt.Sprintf(" (guests ask port 53, which banger redirects to %d on %s)", port, e.bridge())
		}
		return ok(detail)
	}
	return fail(fmt.Sprintf("no answer from the DNS server on %s port %d for %s: %v", gw, e.dnsPort(), name, err), daemonRestartFix)
}

func (e *Env) sampleVM(ctx context.Context) (string, netip.Addr, bool) {
	if e.SampleVM == nil {
		return "", netip.Addr{}, false
	}
	return e.SampleVM(ctx)
}

func (e *Env) dnsPort() int {
	if e.DNSPort == 0 {
		return 53
	}
	return e.DNSPort
}

// resolvedRunning: systemd-resolved's runtime directory holds its stub
// resolv.conf while it runs.
func (e *Env) resolvedRunning() bool {
	_, err := os.Stat(e.sys("/run/systemd/resolve/stub-resolv.conf"))
	return err == nil
}

// resolvedLinkDomains returns the DNS servers and domains systemd-resolved
// holds for the bridge link (from /run/systemd/resolve/netif/<ifindex>).
func (e *Env) resolvedLinkDomains() (servers, domains string, err error) {
	idx, err := os.ReadFile(e.sys(filepath.Join("/sys/class/net", e.bridge(), "ifindex")))
	if err != nil {
		return "", "", err
	}
	data, err := os.ReadFile(e.sys(filepath.Join("/run/systemd/resolve/netif", strings.TrimSpace(string(idx)))))
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "DNS", "SERVERS":
			servers = strings.TrimSpace(v)
		case "DOMAINS", "ROUTE_DOMAINS":
			domains = strings.TrimSpace(domains + " " + v)
		}
	}
	return servers, domains, nil
}

func checkVMNames(ctx context.Context, e *Env) api.CheckResult {
	d := e.domain()
	if e.MapdnsDataFile != "" {
		return checkMapdnsAnswers(ctx, e)
	}
	gw := e.gateway()
	if !e.resolvedRunning() {
		return warn(fmt.Sprintf("systemd-resolved is not running, so <name>.%s does not resolve from the host (inside VMs it does; from the host use dig @%s NAME.%s)", d, gw, d),
			"sudo apt-get install systemd-resolved (banger then registers ."+d+" on "+e.bridge()+"), or set mapdns_bin and mapdns_data_file in "+e.configFile())
	}
	if !e.bridgeExists() {
		return warn(fmt.Sprintf("systemd-resolved runs; bridge %s does not exist yet, so .%s is not registered (it will be when the first VM starts)", e.bridge(), d),
			"banger vm start "+e.vmName())
	}
	servers, domains, err := e.resolvedLinkDomains()
	if err != nil || !strings.Contains(" "+domains+" ", " ~"+d+" ") && !strings.Contains(" "+domains+" ", " "+d+" ") {
		detail := fmt.Sprintf("systemd-resolved runs but does not route .%s to %s on %s", d, gw, e.bridge())
		if err != nil {
			detail += ": " + err.Error()
		}
		return warn(detail, daemonRestartFix)
	}
	return ok(fmt.Sprintf("<name>.%s resolves from the host: systemd-resolved routes ~%s to %s on %s", d, d, servers, e.bridge()))
}

// mapdnsServer is where mapdns answers: UDP port 53 on every address.
const mapdnsServer = "127.0.0.1:53"

// mapdnsWho names the server on port 53 as bangerd knows it.
func (e *Env) mapdnsWho() (who string, st MapdnsState) {
	if e.Mapdns != nil {
		st = e.Mapdns()
	}
	switch {
	case st.PID != 0:
		return fmt.Sprintf("mapdns (pid %d, run by bangerd)", st.PID), st
	case len(st.Foreign) > 0:
		return fmt.Sprintf("mapdns (pid %s, not started by banger)", pids(st.Foreign)), st
	case st.Supervised:
		return "mapdns (bangerd's is not running)", st
	}
	return "mapdns (run by you)", st
}

func pids(p []int) string {
	s := make([]string, len(p))
	for i, n := range p {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// mapdnsStaleFix: how to make mapdns read the current file.
func (e *Env) mapdnsStaleFix(st MapdnsState) string {
	switch {
	case len(st.Foreign) > 0:
		return fmt.Sprintf("restart your mapdns (pid %s) in %s: it reads mapdns.json only when it starts; or stop it and let banger run it (mapdns_bin), which restarts it on every VM change", pids(st.Foreign), filepath.Dir(e.MapdnsDataFile))
	case st.Supervised:
		return daemonRestartFix
	}
	return "restart your mapdns in " + filepath.Dir(e.MapdnsDataFile) + " (it reads mapdns.json only when it starts), or set mapdns_bin in " + e.configFile() + " so banger runs and restarts it"
}

// checkMapdnsAnswers: with mapdns configured, <name>.<domain> is answered
// on the host by mapdns on port 53: ask it for a VM's name and compare.
func checkMapdnsAnswers(ctx context.Context, e *Env) api.CheckResult {
	d := e.domain()
	who, st := e.mapdnsWho()
	guests := "; guests ask bangerd (see dns-server)"
	name, ip, have := e.sampleVM(ctx)
	if !have {
		_, err := e.resolveAt(ctx, mapdnsServer, dnsProbeLabel+"."+d+".")
		var dnsErr *net.DNSError
		if err == nil || errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return ok(fmt.Sprintf("<name>.%s on the host is answered by %s on port 53; it answers (no VM to ask for yet)%s", d, who, guests))
		}
		return fail(fmt.Sprintf("<name>.%s on the host is for %s on port 53, and nothing answers there: %v", d, who, err), e.mapdnsDownFix(st))
	}
	fqdn := name + "." + d + "."
	addrs, err := e.resolveAt(ctx, mapdnsServer, fqdn)
	var dnsErr *net.DNSError
	switch {
	case err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound):
		return fail(fmt.Sprintf("<name>.%s on the host is for %s on port 53; asked for %s, nothing answers: %v", d, who, fqdn, err), e.mapdnsDownFix(st))
	case !slices.Contains(addrs, ip.String()):
		got := "no address"
		if len(addrs) > 0 {
			got = strings.Join(addrs, ", ")
		}
		return fail(fmt.Sprintf("<name>.%s on the host is answered by %s on port 53, but it answers %s with %s, not %s: it serves an older %s (mapdns reads it only when it starts)", d, who, fqdn, got, ip, e.MapdnsDataFile), e.mapdnsStaleFix(st))
	}
	return ok(fmt.Sprintf("<name>.%s on the host is answered by %s on port 53: %s is %s, as recorded%s", d, who, fqdn, ip, guests))
}

// mapdnsDownFix: what to do when nothing answers on port 53.
func (e *Env) mapdnsDownFix(st MapdnsState) string {
	if st.Supervised && len(st.Foreign) == 0 {
		fix := "see why mapdns stops"
		if st.LastExit != "" {
			fix += " (last: " + st.LastExit + ")"
		}
		if st.LogFile != "" {
			fix += " in " + st.LogFile
		}
		return fix + ", and the mapdns check"
	}
	return "start mapdns in " + filepath.Dir(e.MapdnsDataFile) + ", or set mapdns_bin in " + e.configFile() + " so banger runs it"
}

func checkMapdns(ctx context.Context, e *Env) api.CheckResult {
	if e.MapdnsBin == "" && e.MapdnsDataFile == "" {
		return ok("mapdns not configured (bangerd's embedded DNS serves ." + e.domain() + ")")
	}
	if e.MapdnsDataFile == "" {
		return fail("mapdns_bin is set without mapdns_data_file",
			"set mapdns_data_file = \"/path/to/mapdns.json\" in "+e.configFile()+" (mapdns reads mapdns.json in its working directory), or remove mapdns_bin")
	}
	f := e.MapdnsDataFile
	if filepath.Base(f) != "mapdns.json" || !filepath.IsAbs(f) {
		return fail("mapdns_data_file "+f+": mapdns reads only mapdns.json in its working directory", "set mapdns_data_file to an absolute path ending in /mapdns.json in "+e.configFile())
	}
	dir := filepath.Dir(f)
	if fi, err := os.Stat(f); err == nil && !fi.Mode().IsRegular() {
		return fail("mapdns_data_file "+f+" is not a regular file", "set mapdns_data_file to a JSON file path in "+e.configFile())
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail("mapdns_data_file "+f+": "+err.Error(), "set mapdns_data_file to a readable file in "+e.configFile())
	} else if _, err := os.Stat(dir); err != nil {
		return fail("mapdns_data_file "+f+": its directory "+dir+" does not exist", "mkdir -p "+dir)
	}
	if e.MapdnsBin == "" {
		return warn("mapdns_data_file is set without mapdns_bin: banger writes "+f+", and the mapdns you run serves it only after you restart it (it reads it only when it starts)",
			"set mapdns_bin in "+e.configFile()+" so banger runs mapdns and restarts it on every VM change")
	}
	bin := e.MapdnsBin
	if !strings.Contains(bin, "/") {
		p, err := e.lookPath(bin)
		if err != nil {
			return fail("mapdns_bin "+bin+" not found in PATH", "set mapdns_bin to the mapdns binary's full path in "+e.configFile())
		}
		bin = p
	} else if err := sysexec.CheckExecutable(bin); err != nil {
		return fail(fmt.Sprintf("mapdns_bin %s: %v", bin, err), "set mapdns_bin to the mapdns binary's full path in "+e.configFile())
	}
	if uid := e.geteuid(); uid != 0 && !e.mayBindPort53(bin) {
		return fail(fmt.Sprintf("banger runs mapdns as uid %d, which may not bind port 53: %s has no cap_net_bind_service and net.ipv4.ip_unprivileged_port_start is above 53", uid, bin),
			"sudo setcap cap_net_bind_service=+ep "+bin)
	}
	_, st := e.mapdnsWho()
	switch {
	case len(st.Foreign) > 0:
		return warn(fmt.Sprintf("mapdns pid %s runs and banger did not start it: banger leaves it alone and starts none, so it serves the names it read when it started", pids(st.Foreign)),
			e.mapdnsStaleFix(st))
	case e.Mapdns != nil && st.PID == 0:
		return fail("bangerd's mapdns is not running (last exit: "+orNone(st.LastExit)+")", e.mapdnsDownFix(st))
	case st.PID != 0:
		return ok(fmt.Sprintf("bangerd runs mapdns %s (pid %d) in %s; it restarts it when VM names change", bin, st.PID, dir))
	}
	return ok(fmt.Sprintf("mapdns %s with data file %s", bin, f))
}

func orNone(s string) string {
	if s == "" {
		return "none yet"
	}
	return s
}

func (e *Env) geteuid() int {
	if e.Geteuid != nil {
		return e.Geteuid()
	}
	return os.Geteuid()
}

// mayBindPort53: an unprivileged process running bin may bind port 53: the
// host lets anyone bind it, or bin carries cap_net_bind_service (effective).
func (e *Env) mayBindPort53(bin string) bool {
	if b, err := os.ReadFile(e.sys("/proc/sys/net/ipv4/ip_unprivileged_port_start")); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n <= 53 {
			return true
		}
	}
	return hasNetBindCap(bin)
}

// hasNetBindCap reads bin's file capabilities (security.capability,
// struct vfs_cap_data): CAP_NET_BIND_SERVICE (10) permitted, and the
// effective flag set, as setcap cap_net_bind_service=+ep leaves them.
func hasNetBindCap(bin string) bool {
	buf := make([]byte, 24)
	n, err := unix.Getxattr(bin, "security.capability", buf)
	if err != nil || n < 8 {
		return false
	}
	magic := binary.LittleEndian.Uint32(buf[0:4])
	permitted := binary.LittleEndian.Uint32(buf[4:8])
	const effective, netBindService = 0x1, 10
	return magic&effective != 0 && permitted&(1<<netBindService) != 0
}
