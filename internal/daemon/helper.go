package daemon

import (
	"context"
	"os"
	"strconv"

	"github.com/banger-dev/banger/internal/doctor"
	"github.com/banger-dev/banger/internal/privhelper"
)

// Everything about how bangerd reaches its privileged helper is in this
// file: the installed helper it runs through sudo, what doctor checks about
// it, and the socket hand-back.

// newHelper returns the client of the privileged helper: the installed
// banger-helper through sudo -n, or its verbs in process when bangerd is root.
func newHelper() privhelper.Helper { return privhelper.New(privhelper.DefaultPath) }

// fillHelperDoctor tells doctor where the helper is and whether it could be
// granted safely.
func (d *Daemon) fillHelperDoctor(env *doctor.Env) {
	env.HelperPath = privhelper.DefaultPath
	env.HelperCheck = func() error { return privhelper.CheckInstalled(privhelper.DefaultPath) }
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
