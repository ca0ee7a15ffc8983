package doctor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

func TestNATTools(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("nat-tools"), api.CheckFail, "neither nft nor iptables", "sudo apt-get install nftables")
	h.program("iptables", "iptables v1.8.9", false)
	want(t, h.run("nat-tools"), api.CheckOK, "iptables at "+h.bin, "")
	h.program("nft", "nftables v1.0.6", false)
	want(t, h.run("nat-tools"), api.CheckOK, "nft at "+h.bin, "")
}

func TestNATRights(t *testing.T) {
	h := newFakeHost(t)
	h.env.HelperPath = "/usr/local/libexec/banger/banger-helper"
	h.env.SudoAllowed = func(context.Context, []string) error { return errors.New("sudo: a password is required") }
	want(t, h.run("nat-rights"), api.CheckFail, "/usr/local/libexec/banger/banger-helper nat-ensure 172.30.0.0/24 banger0", "make install-helper")
	// A helper that could not be granted safely is reported before sudo is asked.
	h.env.HelperCheck = func() error { return errors.New("privileged helper /x is owned by uid 1000, not root") }
	h.env.SudoAllowed = func(context.Context, []string) error { t.Fatal("an unsafe helper must not be probed"); return nil }
	want(t, h.run("nat-rights"), api.CheckFail, "owned by uid 1000, not root", "make install-helper")
	h.env.Geteuid = func() int { return 0 }
	want(t, h.run("nat-rights"), api.CheckOK, "running as root", "")
}

func TestIPForward(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("ip-forward"), api.CheckWarn, "cannot read", "")
	h.file("proc/sys/net/ipv4/ip_forward", "0\n")
	want(t, h.run("ip-forward"), api.CheckOK, "= 0 (information only): banger turns it on", "")
	h.file("proc/sys/net/ipv4/ip_forward", "1\n")
	want(t, h.run("ip-forward"), api.CheckOK, "= 1", "")
}

func TestUplink(t *testing.T) {
	h := newFakeHost(t)
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	h.file("proc/net/route", header+"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
	want(t, h.run("uplink"), api.CheckWarn, "no IPv4 default route", "sudo ip route add default via GATEWAY dev IFACE")
	// A default route that is down does not count.
	h.file("proc/net/route", header+"eth1\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n")
	want(t, h.run("uplink"), api.CheckWarn, "no IPv4 default route", "")
	h.file("proc/net/route", header+
		"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"+
		"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n")
	want(t, h.run("uplink"), api.CheckOK, "default route via 192.0.2.1 on eth0", "")
}

func TestBootstrapToolAndXBPS(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("bootstrap-tool"), api.CheckFail, "neither mmdebstrap nor debootstrap", "sudo apt-get install mmdebstrap uidmap")
	want(t, h.run("xbps"), api.CheckWarn, "only needed for Void images", "xbps_static = ")
	p := h.program("debootstrap", "debootstrap 1.0.128+nmu2+deb12u1", false)
	want(t, h.run("bootstrap-tool"), api.CheckWarn, "fall back to debootstrap at "+p+", which is slower and needs root", "sudo apt-get install mmdebstrap uidmap")
	p = h.program("mmdebstrap", "mmdebstrap 1.3.5", false)
	want(t, h.run("bootstrap-tool"), api.CheckOK, "mmdebstrap 1.3.5 at "+p, "")

	h.env.Distro = "void"
	want(t, h.run("bootstrap-tool"), api.CheckOK, "not needed", "")
	want(t, h.run("xbps"), api.CheckFail, "Void images cannot be built", "mkdir -p /opt/xbps && tar -xJf FILE -C /opt/xbps")
	h.env.VoidTarball = true
	want(t, h.run("xbps"), api.CheckWarn, "only needed when the tarball lacks packages", "xbps-static-latest.x86_64-musl.tar.xz")
	h.env.VoidTarball = false
	h.env.XbpsStatic = "/nonexistent/xbps-install.static"
	want(t, h.run("xbps"), api.CheckFail, "xbps_static /nonexistent/xbps-install.static: does not exist", "xbps_static = ")
	h.env.XbpsStatic = h.program("xbps-install.static", "XBPS: 0.59.2", false)
	want(t, h.run("xbps"), api.CheckOK, "static xbps at "+h.env.XbpsStatic, "")

	h.env.Distro = "debian"
	want(t, h.run("xbps"), api.CheckOK, "not needed", "")
}

func TestMkfsExt4(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("mkfs-ext4"), api.CheckFail, "mkfs.ext4 not found", "sudo apt-get install e2fsprogs")
	// mkfs.ext4 -V prints to stderr: the real runVersion must read it there.
	h.program("mkfs.ext4", "mke2fs 1.42.9 (28-Dec-2013)\n\tUsing EXT2FS Library version 1.42.9", true)
	want(t, h.run("mkfs-ext4"), api.CheckFail, "mke2fs 1.42.9 (28-Dec-2013)", "e2fsprogs (1.43 or newer)")
	p := h.program("mkfs.ext4", "mke2fs 1.47.0 (5-Feb-2023)\n\tUsing EXT2FS Library version 1.47.0", true)
	want(t, h.run("mkfs-ext4"), api.CheckOK, "mke2fs 1.47.0 (5-Feb-2023) at "+p+" (supports -d)", "")
	h.program("mkfs.ext4", "something odd", true)
	want(t, h.run("mkfs-ext4"), api.CheckWarn, "unrecognized version output", "")
}

func TestBuildRights(t *testing.T) {
	h := newFakeHost(t)
	h.env.Getenv = func(k string) string { return map[string]string{"USER": "alice"}[k] }
	// Nothing there: every piece is named with its fix.
	r := h.run("build-rights")
	want(t, r, api.CheckFail, "newuidmap is not installed", "sudo apt-get install uidmap")
	for _, s := range []string{"/etc/subuid has no subordinate ids for alice", "/etc/subgid has no subordinate ids for alice"} {
		if !strings.Contains(r.Detail, s) {
			t.Errorf("detail lacks %q: %s", s, r.Detail)
		}
	}
	if r.Fix != "sudo apt-get install uidmap; then sudo apt-get install util-linux; then "+
		"sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 alice; or "+helperInstallFix+
		" (the privileged helper's image-build verb: not checked: the helper path was not provided); or build as root" {
		t.Errorf("fix lacks the usermod command: %s", r.Fix)
	}

	h.program("newuidmap", "", false)
	h.program("newgidmap", "", false)
	unshare := h.program("unshare", "", false)
	h.file("etc/subuid", "bob:100000:65536\nalice:165536:1000\n")
	h.file("etc/subgid", "bob:100000:65536\n1000:165536:65536\n")
	h.env.Geteuid = func() int { return 1000 }
	// Too small a range names the next free block; a uid entry counts.
	want(t, h.run("build-rights"), api.CheckFail, "/etc/subuid gives alice only 1000 subordinate ids (65536 needed)",
		"sudo usermod --add-subuids 231072-296607 --add-subgids 231072-296607 alice")
	h.file("etc/subuid", "bob:100000:65536\nalice:165536:65536\n")

	// The kernel switches, where they exist, with the sysctl that fixes them.
	h.file("proc/sys/kernel/unprivileged_userns_clone", "0\n")
	h.file("proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1\n")
	r = h.run("build-rights")
	want(t, r, api.CheckFail, "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)",
		"sudo sysctl -w kernel.unprivileged_userns_clone=1 && echo kernel.unprivileged_userns_clone=1 | sudo tee /etc/sysctl.d/60-banger-userns.conf")
	if !strings.Contains(r.Detail, "AppArmor restricts") || !strings.Contains(r.Fix, "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0") {
		t.Errorf("AppArmor restriction not reported with its fix: %+v", r)
	}
	h.file("proc/sys/kernel/unprivileged_userns_clone", "1\n")
	h.file("proc/sys/kernel/apparmor_restrict_unprivileged_userns", "0\n")

	// The live probe: a failing unshare is reported with its output.
	if err := os.WriteFile(unshare, []byte("#!/bin/sh\necho 'unshare: write failed /proc/self/uid_map: Operation not permitted' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	want(t, h.run("build-rights"), api.CheckFail, "Operation not permitted", "a container may forbid them")
	// No user namespace, but the helper's image-build is granted: that path.
	h.env.HelperPath = "/usr/local/libexec/banger/banger-helper"
	var asked []string
	h.env.SudoAllowed = func(_ context.Context, argv []string) error {
		asked = argv
		return errors.New("a password is required")
	}
	want(t, h.run("build-rights"), api.CheckFail, "or through the privileged helper", "make install-helper")
	if strings.Join(asked, " ") != h.env.HelperPath+" image-build bookworm http://deb.debian.org/debian 4096 - /x" {
		t.Errorf("sudo was asked about %q", asked)
	}
	h.env.SudoAllowed = func(context.Context, []string) error { return nil }
	want(t, h.run("build-rights"), api.CheckOK, "path: the privileged helper (sudo -n "+h.env.HelperPath+" image-build), because no user namespace can be made here ("+unshare+" --user", "")
	h.env.HelperPath, h.env.SudoAllowed = "", nil
	h.program("unshare", "", false)
	want(t, h.run("build-rights"), api.CheckFail, "mmdebstrap is not installed", "sudo apt-get install mmdebstrap uidmap")
	h.program("mmdebstrap", "mmdebstrap 1.3.5", false)
	want(t, h.run("build-rights"), api.CheckOK, "path: rootless, no sudo needed", "")

	h.env.Distro = "void"
	want(t, h.run("build-rights"), api.CheckOK, "xbps-install -r runs as root of the namespace", "")
	h.env.Geteuid = func() int { return 1000 }
	h.file("proc/sys/kernel/unprivileged_userns_clone", "0\n")
	h.env.HelperPath, h.env.SudoAllowed = "/usr/local/libexec/banger/banger-helper", func(context.Context, []string) error { return nil }
	want(t, h.run("build-rights"), api.CheckFail, "unprivileged user namespaces are disabled", "the privileged helper builds Debian images only")
	h.env.Geteuid = func() int { return 0 }
	want(t, h.run("build-rights"), api.CheckOK, "running as root", "")
}

func TestBuildDisk(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("build-disk"), api.CheckWarn, "not checked", "")
	h.env.CacheDir, h.env.DataDir = "/c/banger", "/d/banger"
	h.env.FreeBytes = func(p string) (uint64, error) {
		if p == "/d/banger" {
			return 1 << 30, nil
		}
		return 50 << 30, nil
	}
	want(t, h.run("build-disk"), api.CheckFail, "only 1.0 GiB free on the filesystem holding the data dir /d/banger", "BANGER_DATA_DIR")
	h.env.FreeBytes = func(string) (uint64, error) { return 0, errors.New("statfs: input/output error") }
	want(t, h.run("build-disk"), api.CheckWarn, "cannot measure free space", "mkdir -p /c/banger")
}

// The real statfs probe walks up to the nearest existing directory.
func TestFreeBytesOfMissingDir(t *testing.T) {
	dir := t.TempDir()
	n, err := freeBytes(filepath.Join(dir, "not", "yet", "made"))
	if err != nil || n == 0 {
		t.Fatalf("freeBytes = %d, %v", n, err)
	}
}

func TestDiskResize(t *testing.T) {
	h := newFakeHost(t)
	want(t, h.run("e2fsck"), api.CheckFail, "e2fsck not found", "sudo apt-get install e2fsprogs")
	want(t, h.run("resize2fs"), api.CheckFail, "resize2fs not found", "sudo apt-get install e2fsprogs")
	h.program("e2fsck", "", false)
	h.program("resize2fs", "", false)
	want(t, h.run("e2fsck"), api.CheckOK, "e2fsck at", "")
	want(t, h.run("resize2fs"), api.CheckOK, "resize2fs at", "")

	// With no VM named the check does not apply: skipped, not a warning.
	want(t, h.run("vm-stopped"), api.CheckSkip, "no VM named", "")
	running, stopped := false, true
	h.env.VMName = "dev"
	h.env.VMStopped = &running
	want(t, h.run("vm-stopped"), api.CheckFail, "VM dev is running", "banger vm stop dev")
	h.env.VMStopped = &stopped
	want(t, h.run("vm-stopped"), api.CheckOK, "VM dev is stopped", "")
}
