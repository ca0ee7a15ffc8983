package doctor

import (
	"context"

	"github.com/banger-dev/banger/internal/api"
)

// All returns every check, in report order (grouped by scope).
func All() []Check {
	one := func(name, scope string, run func(ctx context.Context, e *Env) api.CheckResult) Check {
		return Check{Name: name, Scopes: []string{scope}, Run: run}
	}
	return []Check{
		one("hypervisor", ScopeVMStart, checkHypervisor),
		one("kvm", ScopeVMStart, checkKVM),
		one("firecracker", ScopeVMStart, checkFirecracker),
		one("qemu", ScopeVMStart, checkQEMU),
		one("vhost-vsock", ScopeVMStart, checkVhostVsock),
		one("bundle", ScopeVMStart, checkBundle),
		one("agent-config", ScopeVMStart, checkAgentConfig),
		one("tap-rights", ScopeVMStart, checkTapRights),
		one("memory", ScopeVMStart, checkMemory),

		one("nat-tools", ScopeNAT, checkNATTools),
		one("nat-rights", ScopeNAT, checkNATRights),
		one("ip-forward", ScopeNAT, checkIPForward),
		one("uplink", ScopeNAT, checkUplink),

		one("bootstrap-tool", ScopeImageBuild, checkBootstrapTool),
		one("xbps", ScopeImageBuild, checkXBPS),
		one("mkfs-ext4", ScopeImageBuild, checkMkfsExt4),
		one("build-rights", ScopeImageBuild, checkBuildRights),
		one("build-disk", ScopeImageBuild, checkBuildDisk),

		one("e2fsck", ScopeDiskResize, checkE2fsck),
		one("resize2fs", ScopeDiskResize, checkResize2fs),
		one("vm-stopped", ScopeDiskResize, checkVMStopped),

		one("ssh-client", ScopeSSH, checkSSHClient),
		one("ssh-key", ScopeSSH, checkSSHKey),
		one("known-hosts", ScopeSSH, checkKnownHosts),

		one("dns-server", ScopeDNS, checkDNSServer),
		one("vm-names", ScopeDNS, checkVMNames),
		one("mapdns", ScopeDNS, checkMapdns),

		one("daemon-socket", ScopeDaemon, checkDaemonSocket),
		one("daemon-version", ScopeDaemon, checkDaemonVersion),
		one("test-switches", ScopeDaemon, checkTestSwitches),
		one("state-dir", ScopeDaemon, checkStateDir),
		one("database", ScopeDaemon, checkDatabase),
	}
}
