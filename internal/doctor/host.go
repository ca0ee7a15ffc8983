package doctor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
)

// --- nat ---

func checkNATTools(ctx context.Context, e *Env) api.CheckResult {
	if p, err := e.lookPath("nft"); err == nil {
		return ok("nft at " + p + " (banger keeps its rules in its own table)")
	}
	if p, err := e.lookPath("iptables"); err == nil {
		return ok("iptables at " + p + " (nft not found; banger keeps its rules in its own chains)")
	}
	return fail("neither nft nor iptables is installed: NAT for VMs cannot be set up", "sudo apt-get install nftables")
}

func checkNATRights(ctx context.Context, e *Env) api.CheckResult {
	return helperRights(ctx, e, []string{"nat-ensure", e.subnet().String(), e.bridge()}, "NAT rules are changed")
}

// procFix is for a /proc file banger reads that cannot be read: /proc is not
// mounted, or a sandbox hides it.
const procFix = "sudo mount -t proc proc /proc (or run banger where /proc is visible)"

func checkIPForward(ctx context.Context, e *Env) api.CheckResult {
	data, err := os.ReadFile(e.sys("/proc/sys/net/ipv4/ip_forward"))
	if err != nil {
		return warn("cannot read /proc/sys/net/ipv4/ip_forward: "+err.Error(), procFix)
	}
	switch v := strings.TrimSpace(string(data)); v {
	case "1":
		return ok("net.ipv4.ip_forward = 1 (information only)")
	case "0":
		return ok("net.ipv4.ip_forward = 0 (information only): banger turns it on when it sets up NAT")
	default:
		return warn(fmt.Sprintf("net.ipv4.ip_forward has unexpected value %q", v), "sudo sysctl -w net.ipv4.ip_forward=1")
	}
}

// defaultRoute finds the IPv4 default route in /proc/net/route.
func (e *Env) defaultRoute() (iface string, gw netip.Addr, found bool, err error) {
	data, err := os.ReadFile(e.sys("/proc/net/route"))
	if err != nil {
		return "", netip.Addr{}, false, err
	}
	const rtfUp = 0x1
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil || flags&rtfUp == 0 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		// Addresses are the kernel's in-memory u32, printed in host order
		// (little endian on every machine banger runs on).
		if b, err := hex.DecodeString(f[2]); err == nil && len(b) == 4 {
			var a [4]byte
			binary.LittleEndian.PutUint32(a[:], binary.BigEndian.Uint32(b))
			gw = netip.AddrFrom4(a)
		}
		return f[0], gw, true, nil
	}
	return "", netip.Addr{}, false, sc.Err()
}

func checkUplink(ctx context.Context, e *Env) api.CheckResult {
	iface, gw, found, err := e.defaultRoute()
	if err != nil {
		return warn("cannot read /proc/net/route: "+err.Error(), procFix)
	}
	if !found {
		return warn("no IPv4 default route: VMs can reach the host but not the internet",
			"sudo ip route add default via GATEWAY dev IFACE (or connect the host to a network)")
	}
	if gw.IsValid() && !gw.IsUnspecified() {
		return ok(fmt.Sprintf("default route via %s on %s: NAT masquerades out of %s", gw, iface, iface))
	}
	return ok(fmt.Sprintf("default route on %s: NAT masquerades out of %s", iface, iface))
}

// --- image-build ---

// The static tarball carries the repository keys (var/db/xbps/keys) next to
// the binaries: extract all of it, so xbps can check the repository.
const xbpsFix = "download https://repo-default.voidlinux.org/static/xbps-static-latest.x86_64-musl.tar.xz, " +
	"extract all of it (mkdir -p /opt/xbps && tar -xJf FILE -C /opt/xbps) and set xbps_static = \"/opt/xbps/usr/bin/xbps-install.static\" in "

func checkXBPS(ctx context.Context, e *Env) api.CheckResult {
	needed := e.Distro == "void" && !e.VoidTarball
	missing := func(detail string) api.CheckResult {
		switch {
		case needed:
			return fail(detail+": Void images cannot be built from a repository (or build offline with --from-tarball)", xbpsFix+e.configFile())
		case e.VoidTarball:
			return warn(detail+": only needed when the tarball lacks packages the image needs", xbpsFix+e.configFile())
		}
		return warn(detail+": only needed for Void images (--distro void)", xbpsFix+e.configFile())
	}
	if e.Distro != "" && e.Distro != "void" {
		return ok("not needed: building a " + e.Distro + " image")
	}
	if e.XbpsStatic != "" {
		if err := sysexec.CheckExecutable(e.XbpsStatic); err != nil {
			return missing(fmt.Sprintf("xbps_static %s: %v", e.XbpsStatic, err))
		}
		return ok("static xbps at " + e.XbpsStatic)
	}
	if p, err := e.lookPath("xbps-install"); err == nil {
		return ok("xbps-install at " + p)
	}
	return missing("neither xbps-install nor xbps_static found")
}

func checkMkfsExt4(ctx context.Context, e *Env) api.CheckResult {
	const fix = "sudo apt-get install e2fsprogs (1.43 or newer)"
	p, err := e.lookPath("mkfs.ext4")
	if err != nil {
		return fail("mkfs.ext4 not found in PATH: images and work disks cannot be made", fix)
	}
	out, err := e.runVersion(ctx, p, "-V")
	if err != nil {
		return fail(fmt.Sprintf("%s -V failed: %v", p, err), fix)
	}
	line := firstLine(out)
	v, found := parseVersion(line)
	if !found {
		return warn(fmt.Sprintf("%s: unrecognized version output %q (need e2fsprogs >= 1.43 for mkfs.ext4 -d)", p, line), fix)
	}
	if versionLess(v, [3]int{1, 43, 0}) {
		return fail(fmt.Sprintf("%s at %s is too old: mkfs.ext4 -d (pack a directory) needs e2fsprogs 1.43 or newer", line, p), fix)
	}
	return ok(fmt.Sprintf("%s at %s (supports -d)", line, p))
}

// MinBuildFreeBytes is the free space an image build needs (base tree
// archive with a kernel about 700 MB, plus the packed ext4 image and slack).
const MinBuildFreeBytes = 3 << 30

func checkBuildDisk(ctx context.Context, e *Env) api.CheckResult {
	dirs := []struct{ name, path string }{{"cache", e.CacheDir}, {"data", e.DataDir}}
	var parts []string
	checked := 0
	for _, d := range dirs {
		if d.path == "" {
			continue
		}
		checked++
		free, err := e.freeBytes(d.path)
		if err != nil {
			return warn(fmt.Sprintf("cannot measure free space for the %s dir %s: %v", d.name, d.path, err),
				fmt.Sprintf("mkdir -p %s (then check it with df -h %s)", d.path, d.path))
		}
		if free < MinBuildFreeBytes {
			return fail(fmt.Sprintf("only %s free on the filesystem holding the %s dir %s; an image build needs about %s",
				gib(free), d.name, d.path, gib(MinBuildFreeBytes)),
				fmt.Sprintf("free space there (df -h %s), or point BANGER_%s_DIR at a filesystem with %s free", d.path, strings.ToUpper(d.name), gib(MinBuildFreeBytes)))
		}
		parts = append(parts, fmt.Sprintf("%s free for %s", gib(free), d.path))
	}
	if checked == 0 {
		return notChecked("the cache and data directories were not provided")
	}
	return ok(strings.Join(parts, "; "))
}

func gib(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// --- disk-resize ---

func checkE2fsck(ctx context.Context, e *Env) api.CheckResult {
	return toolPresent(e, "e2fsck", "checks the work disk before a resize", "sudo apt-get install e2fsprogs")
}

func checkResize2fs(ctx context.Context, e *Env) api.CheckResult {
	return toolPresent(e, "resize2fs", "grows the work disk's filesystem", "sudo apt-get install e2fsprogs")
}

func toolPresent(e *Env, name, role, fix string) api.CheckResult {
	p, err := e.lookPath(name)
	if err != nil {
		return fail(name+" not found in PATH (it "+role+")", fix)
	}
	return ok(name + " at " + p)
}

func checkVMStopped(ctx context.Context, e *Env) api.CheckResult {
	if e.VMStopped == nil {
		return skipped("applies to a disk resize only: no VM named")
	}
	if !*e.VMStopped {
		return fail(fmt.Sprintf("VM %s is running: its work disk can only be resized while it is stopped", e.vmName()),
			"banger vm stop "+e.vmName())
	}
	return ok(fmt.Sprintf("VM %s is stopped", e.vmName()))
}
