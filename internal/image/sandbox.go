package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/privhelper"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/userns"
)

// Sandbox is the privileged part of an image build: it runs banger's own
// build scripts (a closed set, see Script) with root's power over the files
// they make, so a tree's root-owned files, setuid bits and modes land in the
// image exactly. The builder picks one by itself (RootSandbox when banger
// runs as root, UserNSSandbox for a normal user with subordinate ids); a
// privileged helper plugs in here through Builder.Sandbox, with the same
// narrow contract: run one of these scripts with these BANGER_* parameters,
// every path under the user's banger cache (or read-only bundle inputs),
// and remove a directory it made there. A helper running as root must run
// its own embedded copy of the scripts, never the copy in Script.Dir (the
// user can write there), check every BANGER_* path, and keep or hand back
// what it writes (archives, unpacked trees, the .deb cache, apt's index)
// so the user's later builds and RemoveAll calls can use it.
type Sandbox interface {
	// Describe says how scripts run, for progress and errors.
	Describe() string
	// Rootless is true when scripts run as root of a user namespace: they
	// cannot make device nodes (the build writes those into the image with
	// debugfs), and mmdebstrap runs in --mode=unshare (it skips making a
	// user namespace of its own when it is already root in one).
	Rootless() bool
	// Run runs one script to completion.
	Run(ctx context.Context, s Script) error
	// RemoveAll removes dir, a directory under the build cache the scripts
	// wrote into (owned by ids the user alone cannot remove).
	RemoveAll(ctx context.Context, dir string) error
}

// The scripts a Sandbox runs (in images/).
const (
	ScriptDebian = "make-rootfs-debian.sh" // bootstrap a Debian tree into a tar archive
	ScriptVoid   = "make-rootfs-void.sh"   // make a Void tree
	ScriptPack   = "pack-image.sh"         // overlay or unpack, extra packages, customize, mkfs.ext4 -d
	ScriptUnpack = "unpack-tree.sh"        // unpack a base tree archive once, for the cache
)

// Script is one run of a build script.
type Script struct {
	Dir    string   // where the embedded images/ tree was written (writeScripts)
	Name   string   // ScriptDebian | ScriptVoid | ScriptPack | ScriptUnpack
	Env    []string // its BANGER_* parameters
	Stdout io.Writer
	Stderr io.Writer
}

func (s Script) path() (string, error) {
	switch s.Name {
	case ScriptDebian, ScriptVoid, ScriptPack, ScriptUnpack:
		return filepath.Join(s.Dir, s.Name), nil
	}
	return "", fmt.Errorf("no build script named %q", s.Name)
}

// RootSandbox runs scripts as root (banger itself runs as root) in private
// mount and PID namespaces: mounts made by a script (mmdebstrap and
// debootstrap mount /proc and /sys in the target) vanish with it, and every
// process it started dies with it, even if banger is killed mid-build.
type RootSandbox struct {
	Runner sysexec.Runner // nil = sysexec.Exec{}
}

func (RootSandbox) Describe() string { return "as root" }
func (RootSandbox) Rootless() bool   { return false }

func (r RootSandbox) Run(ctx context.Context, s Script) error {
	p, err := s.path()
	if err != nil {
		return err
	}
	_, err = runner(r.Runner).Run(ctx, sysexec.Cmd{Argv: sandboxArgv(p), Env: s.Env, Stdout: s.Stdout, Stderr: s.Stderr})
	return err
}

func (RootSandbox) RemoveAll(ctx context.Context, dir string) error { return removeTree(dir) }

// UserNSSandbox runs scripts as root of a new user namespace: the user's
// own ids are root there and its first subordinate range (/etc/subuid,
// /etc/subgid) stands in for every other owner. No privilege is needed
// beyond what the uidmap package's setuid newuidmap grants.
type UserNSSandbox struct {
	Runner sysexec.Runner // nil = sysexec.Exec{}
}

func (UserNSSandbox) Describe() string {
	return "as a normal user, in a user namespace with subordinate ids"
}
func (UserNSSandbox) Rootless() bool { return true }

func (u UserNSSandbox) Run(ctx context.Context, s Script) error {
	p, err := s.path()
	if err != nil {
		return err
	}
	argv := append(userns.UnshareArgv(), "bash", p)
	_, err = runner(u.Runner).Run(ctx, sysexec.Cmd{Argv: argv, Env: s.Env, Stdout: s.Stdout, Stderr: s.Stderr})
	return err
}

// RemoveAll removes dir from inside the namespace, where the subordinate
// ids that own most of an unpacked tree are the namespace root's to remove.
func (u UserNSSandbox) RemoveAll(ctx context.Context, dir string) error {
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return nil
	}
	if m, err := MountsUnder(dir); err != nil {
		return err
	} else if len(m) > 0 {
		return fmt.Errorf("not removing %s: still mounted below it: %s (unmount them with umount -R, then remove it)", dir, strings.Join(m, ", "))
	}
	argv := append(userns.UnshareArgv(), "rm", "-rf", "--one-file-system", "--", dir)
	if _, err := runner(u.Runner).Run(ctx, sysexec.Cmd{Argv: argv}); err != nil {
		return fmt.Errorf("remove %s: %w (remove it by hand: %s)", dir, err, sysexec.Quote(argv))
	}
	return nil
}

func runner(r sysexec.Runner) sysexec.Runner {
	if r == nil {
		return sysexec.Exec{}
	}
	return r
}

// sandbox returns the Sandbox a build uses: Builder.Sandbox when set, else
// root's when banger runs as root, else a user namespace when this user
// may make one. Otherwise the error says what is missing and the exact fix.
func (b *Builder) sandbox(ctx context.Context) (Sandbox, error) {
	if b.Sandbox != nil {
		return b.Sandbox, nil
	}
	if os.Geteuid() == 0 {
		return RootSandbox{Runner: b.Runner}, nil
	}
	name, uid := CurrentUser()
	host := userns.Host{Run: func(ctx context.Context, argv []string) (string, error) {
		res, err := runner(b.Runner).Run(ctx, sysexec.Cmd{Argv: argv})
		return string(res.Stdout) + string(res.Stderr), err
	}}
	if problems := host.Check(ctx, name, uid); len(problems) > 0 {
		if b.NoHelper {
			return nil, RootlessError(problems, nil)
		}
		herr := HelperUsable(ctx, b.Runner, b.helperPath())
		if herr == nil {
			return nil, errUseHelper
		}
		return nil, RootlessError(problems, herr)
	}
	return UserNSSandbox{Runner: b.Runner}, nil
}

// errUseHelper: no user namespace here, but the privileged helper grants
// image-build: the build goes through it (buildWithHelper).
var errUseHelper = errors.New("build through the privileged helper")

func (b *Builder) helperPath() string {
	if b.HelperPath != "" {
		return b.HelperPath
	}
	return privhelper.DefaultPath
}

// RootlessError is the failed_precondition a normal user's build fails with
// when no user namespace can be made: every problem, and every fix.
func RootlessError(problems []userns.Problem, helperErr error) error {
	var what []string
	for _, p := range problems {
		what = append(what, p.What)
	}
	fixes := userns.Fixes(problems)
	helper := ""
	if helperErr != nil {
		helper = "; or let the privileged helper build it (" + helperErr.Error() + ")"
	}
	return api.NewError(api.CodeFailedPrecondition,
		"building an image as a normal user needs a user namespace with subordinate ids, or the privileged helper, and here: "+strings.Join(what, "; "),
		strings.Join(fixes, "; then ")+" (banger doctor --scope image-build checks it all)"+helper+"; or build as root")
}

// CurrentUser is the name and uid the subordinate id files are searched for.
func CurrentUser() (string, int) {
	uid := os.Geteuid()
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username, uid
	}
	return os.Getenv("USER"), uid
}
