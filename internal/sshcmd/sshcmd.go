// Package sshcmd builds the system ssh command line for a VM, one rule for
// `banger vm ssh` (the CLI) and the daemon's own logins (image verify).
package sshcmd

import (
	"strconv"

	"github.com/banger-dev/banger/internal/api"
)

// Argv is ssh to the VM described by info: banger's key only, host keys
// recorded in banger's known_hosts under the VM's stable alias. opts are
// extra -o options (e.g. "BatchMode=yes"); a non-empty command is run there
// instead of a login shell.
func Argv(info api.VMSSHInfo, command string, opts ...string) []string {
	argv := []string{"ssh",
		"-i", info.KeyPath,
		"-o", "UserKnownHostsFile=" + info.KnownHostsPath,
		"-o", "StrictHostKeyChecking=accept-new",
		"-o", "HostKeyAlias=" + info.HostKeyAlias,
		"-o", "IdentitiesOnly=yes",
		"-o", "LogLevel=ERROR",
	}
	for _, o := range opts {
		argv = append(argv, "-o", o)
	}
	if info.Port != 0 && info.Port != 22 {
		argv = append(argv, "-p", strconv.Itoa(info.Port))
	}
	argv = append(argv, info.User+"@"+info.Host)
	if command != "" {
		argv = append(argv, "--", command)
	}
	return argv
}
