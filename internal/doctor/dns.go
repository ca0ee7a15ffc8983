package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

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
		return ok(fmt.Sprintf("DNS server on %s port %d answers for .%s", gw, e.dnsPort(), e.domain()))
	}
	return fail(fmt.Sprintf("no answer from the DNS server on %s port %d for %s: %v", gw, e.dnsPort(), name, err), daemonRestartFix)
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
	if e.MapdnsBin != "" {
		return ok(fmt.Sprintf("<name>.%s is served by mapdns (%s); see the mapdns check", d, e.MapdnsBin))
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

func checkMapdns(ctx context.Context, e *Env) api.CheckResult {
	if e.MapdnsBin == "" && e.MapdnsDataFile == "" {
		return ok("mapdns not configured (bangerd's embedded DNS serves ." + e.domain() + ")")
	}
	if e.MapdnsBin == "" || e.MapdnsDataFile == "" {
		return fail("mapdns needs both mapdns_bin and mapdns_data_file; only one is set",
			"set both mapdns_bin = \"/path/to/mapdns\" and mapdns_data_file = \"/path/to/data.json\" in "+e.configFile()+", or remove both")
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
	f := e.MapdnsDataFile
	fi, err := os.Stat(f)
	switch {
	case err == nil && fi.Mode().IsRegular():
		return ok(fmt.Sprintf("mapdns %s with data file %s", bin, f))
	case err == nil:
		return fail("mapdns_data_file "+f+" is not a regular file", "set mapdns_data_file to a JSON file path in "+e.configFile())
	case !errors.Is(err, os.ErrNotExist):
		return fail("mapdns_data_file "+f+": "+err.Error(), "set mapdns_data_file to a readable file in "+e.configFile())
	}
	dir := filepath.Dir(f)
	if _, err := os.Stat(dir); err != nil {
		return fail("mapdns_data_file "+f+": its directory "+dir+" does not exist", "mkdir -p "+dir)
	}
	return ok("mapdns_data_file " + f + " does not exist yet: banger writes it when a VM starts")
}
