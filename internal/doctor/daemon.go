package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
)

func checkDaemonSocket(ctx context.Context, e *Env) api.CheckResult {
	if e.RuntimeDir != "" {
		sock := paths.Layout{RuntimeDir: e.RuntimeDir}.DaemonSocket()
		if err := paths.CheckSocketPath(sock); err != nil {
			return fail(err.Error(), "export BANGER_RUNTIME_DIR=/run/user/$(id -u)/banger")
		}
	}
	if e.DaemonInfo == nil {
		return notChecked("no daemon client was provided")
	}
	info, err := e.DaemonInfo(ctx)
	if err != nil {
		return fail("bangerd does not answer: "+err.Error(), "banger daemon start (its log: banger daemon logs, or the bangerd.log in the state dir)")
	}
	return ok(fmt.Sprintf("bangerd pid %d answers on %s", info.PID, info.Socket))
}

func checkDaemonVersion(ctx context.Context, e *Env) api.CheckResult {
	if e.DaemonInfo == nil {
		return notChecked("no daemon client was provided")
	}
	info, err := e.DaemonInfo(ctx)
	if err != nil {
		return warn("not checked: bangerd does not answer (see daemon-socket)", "banger daemon start")
	}
	if info.APIVersion != api.Version {
		return fail(fmt.Sprintf("bangerd speaks API version %d, this banger speaks %d", info.APIVersion, api.Version), daemonRestartFix)
	}
	if e.CLIVersion == "" && e.CLIBuildID == "" {
		return ok(fmt.Sprintf("bangerd %s (build %s); CLI version not provided", info.Version, info.BuildID))
	}
	if info.Version != e.CLIVersion || info.BuildID != e.CLIBuildID {
		return warn(fmt.Sprintf("bangerd is %s (build %s) but this banger is %s (build %s): a stale daemon from an earlier build (the CLI restarts it automatically on its next call)",
			info.Version, info.BuildID, e.CLIVersion, e.CLIBuildID), daemonRestartFix)
	}
	return ok(fmt.Sprintf("bangerd and banger are both %s (build %s)", info.Version, info.BuildID))
}

// checkTestSwitches warns of test-only switches (internal/envknob) in the
// daemon's environment: it inherited them from whichever CLI started it, and
// they bend what it does (assume KVM, skip the ssh wait, kill itself at a
// step), so nothing it reports is the plain truth about the host.
func checkTestSwitches(ctx context.Context, e *Env) api.CheckResult {
	if e.DaemonInfo == nil {
		return notChecked("no daemon client was provided")
	}
	info, err := e.DaemonInfo(ctx)
	if err != nil {
		return warn("not checked: bangerd does not answer (see daemon-socket)", "banger daemon start")
	}
	if len(info.TestSwitches) == 0 {
		return ok("bangerd runs with no test-only switch set")
	}
	var names []string
	for _, s := range info.TestSwitches {
		names = append(names, strings.SplitN(s, "=", 2)[0])
	}
	return warn(fmt.Sprintf("bangerd runs with test-only switches set: %s (they change what it does; they are for banger's own tests)",
		strings.Join(info.TestSwitches, ", ")),
		"unset "+strings.Join(names, " ")+", then banger daemon stop (the next command starts it without them)")
}

func checkStateDir(ctx context.Context, e *Env) api.CheckResult {
	d := e.StateDir
	if d == "" {
		return notChecked("the state directory was not provided")
	}
	fi, err := os.Stat(d)
	if errors.Is(err, fs.ErrNotExist) {
		return fail("state directory "+d+" does not exist", "mkdir -p -m 0700 "+d)
	}
	if err != nil {
		return fail("state directory "+d+": "+err.Error(), "mkdir -p -m 0700 "+d)
	}
	if !fi.IsDir() {
		return fail("state directory "+d+" is not a directory", "mv "+d+" "+d+".bak && mkdir -p -m 0700 "+d)
	}
	if err := writableDir(d); err != nil {
		return fail("state directory "+d+" is not writable: "+err.Error(), "sudo chown -R $USER "+d)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		return warn(fmt.Sprintf("state directory %s has mode %04o: VM disks and keys there should be private (0700)", d, perm), "chmod 700 "+d)
	}
	return ok("state directory " + d + " writable, mode 0700")
}

func checkDatabase(ctx context.Context, e *Env) api.CheckResult {
	if e.DBQuickCheck == nil {
		return notChecked("no database handle was provided")
	}
	db := "the database"
	if e.StateDir != "" {
		db = paths.Layout{StateDir: e.StateDir}.Database()
	}
	if err := e.DBQuickCheck(ctx); err != nil {
		return fail(fmt.Sprintf("PRAGMA quick_check on %s failed: %v", db, err),
			fmt.Sprintf("banger daemon stop && sqlite3 %s 'PRAGMA integrity_check;' (then restore a backup, or move %s aside to start with an empty state)", db, db))
	}
	return ok("PRAGMA quick_check on " + db + ": ok")
}
