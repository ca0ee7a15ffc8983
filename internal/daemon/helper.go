package daemon

import (
	"context"
	"os"
	"os/user"
	"strconv"

	"github.com/banger-dev/banger/internal/doctor"
	"github.com/banger-dev/banger/internal/privhelper"
)

// Everything about how bangerd reaches its privileged helper is in this
// file: the command line, the sudoers line doctor suggests, and the
// socket hand-back.

// HelperSubcommand is the hidden bangerd subcommand that runs the
// privileged helper: `bangerd helper VERB ARGS...`.
const HelperSubcommand = "helper"

// helperArgv is the helper's command line (run through sudo when needed).
func helperArgv(bangerd string) []string { return []string{bangerd, HelperSubcommand} }

// newHelper returns the client of the privileged helper.
func newHelper(bangerd string) privhelper.Helper { return privhelper.New(helperArgv(bangerd)) }

// fillHelperDoctor tells doctor how the helper is run, for its checks and
// the sudoers line it suggests.
func (d *Daemon) fillHelperDoctor(env *doctor.Env) {
	env.HelperArgv = helperArgv(d.Bangerd)
	env.SudoersLine = privhelper.SudoersLine(CurrentUser(), d.Bangerd)
}

// CurrentUser is the user bangerd acts for (the sudo caller when run
// through sudo).
func CurrentUser() string {
	if s := os.Getenv("SUDO_USER"); s != "" {
		return s
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

// reclaim hands sockets a root-run Firecracker made back to the user; when
// bangerd itself runs as the user there is nothing to do.
func (d *Daemon) reclaim(ctx context.Context, path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid := os.Getuid()
	if s := os.Getenv("SUDO_UID"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			uid = n
		}
	}
	if uid == 0 {
		return nil
	}
	return d.Helper.SocketReclaim(ctx, path, uid)
}
