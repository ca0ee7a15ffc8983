package privhelper

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/banger-dev/banger/internal/rootsafe"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/version"
)

func versionLine() string {
	return fmt.Sprintf("banger-helper %s (build %s)", version.Version, version.ID())
}

// CheckInstalled reports why path must not be granted through sudo: it must
// be a root-owned executable regular file that no other user can write, in
// directories no other user can write, all the way up from /. A grant on a
// file the user can replace is a root shell.
func CheckInstalled(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("privileged helper %s is not installed (%v)", path, err)
	}
	if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("privileged helper %s is not an executable regular file", path)
	}
	if err := rootsafe.Check(path, rootsafe.Strict); err != nil {
		return fmt.Errorf("privileged helper %s cannot be granted safely: %w", path, err)
	}
	return nil
}

var sudoersUserRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// sudoersUser names uid in a sudoers line: the login name when it is a plain
// one, else "#UID". Never anything a caller's environment chose.
func sudoersUser(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && sudoersUserRE.MatchString(u.Username) {
		return u.Username
	}
	return "#" + strconv.Itoa(uid)
}

// SudoersLine is the sudoers entry that lets uid run exactly the helper verbs
// of helperPath as root without a password, and nothing else. With regex
// (sudo 1.9.10 and newer) each verb's arguments are pinned to their shapes;
// without, a glob follows the verb and the helper's own parsing is the only
// guard (it refuses any argument that is not exactly of its shape).
func SudoersLine(uid int, helperPath string, regex bool) string {
	esc := strings.NewReplacer(`\`, `\\`, ",", `\,`, ":", `\:`, "=", `\=`, " ", `\ `, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`, "#", `\#`).Replace
	var cmds []string
	for _, name := range Verbs() {
		v := verbs[name]
		if regex {
			cmds = append(cmds, fmt.Sprintf("%s ^%s %s$", esc(helperPath), name, strings.Join(v.shapes, " ")))
		} else {
			cmds = append(cmds, fmt.Sprintf("%s %s *", esc(helperPath), name))
		}
	}
	return fmt.Sprintf("%s ALL=(root) NOPASSWD: %s", sudoersUser(uid), strings.Join(cmds, ", "))
}

var sudoVersionRE = regexp.MustCompile(`Sudo version (\d+)\.(\d+)\.(\d+)`)

// SudoSupportsRegex reports whether the installed sudo matches command
// arguments by regular expression (1.9.10 and newer).
func SudoSupportsRegex(ctx context.Context, run sysexec.Runner, sudo string) bool {
	res, err := run.Run(ctx, sysexec.Cmd{Argv: []string{sudo, "-V"}})
	if err != nil {
		return false
	}
	m := sudoVersionRE.FindStringSubmatch(string(res.Stdout))
	if m == nil {
		return false
	}
	v := [3]int{}
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	return v[0] > 1 || v[0] == 1 && (v[1] > 9 || v[1] == 9 && v[2] >= 10)
}

// SudoersFile returns the drop-in that grants uid the helper (one per user,
// so installing for one user never rewrites another's grant).
func SudoersFileFor(uid int) string { return fmt.Sprintf("%s-%d", SudoersFile, uid) }

// installMain is `banger-helper install --user NAME`, run once with sudo from
// a build tree: it copies this binary to DefaultPath (root-owned, 0755, in
// root-owned directories) and writes the user's sudoers drop-in, checked by
// visudo before it takes effect. The installed copy never installs.
func installMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("banger-helper install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	who := fs.String("user", "", "the user (name or uid) to grant the helper to; default: the user who ran sudo")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "banger-helper install: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if err := install(context.Background(), *who, DefaultPath, stdout); err != nil {
		fmt.Fprintf(stderr, "banger-helper install: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func install(ctx context.Context, who, target string, stdout io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root: make install-helper (it runs sudo ./bin/banger-helper install --user $USER)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return err
	}
	if self == target {
		return fmt.Errorf("refused: %s is the installed helper; run install from a build (./bin/banger-helper)", target)
	}
	if who == "" {
		who = os.Getenv("SUDO_UID")
	}
	uid, err := lookupUser(who)
	if err != nil {
		return err
	}
	if err := installBinary(self, target); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "installed %s\n", target)
	if err := writeSudoers(ctx, uid, target); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "granted the helper's verbs (and nothing else) to %s in %s\n", sudoersUser(uid), SudoersFileFor(uid))
	return nil
}

func lookupUser(who string) (int, error) {
	if who == "" {
		return 0, errors.New("say whom to grant the helper to: --user NAME")
	}
	u, err := user.Lookup(who)
	if err != nil {
		if u, err = user.LookupId(who); err != nil {
			return 0, fmt.Errorf("no user %q", who)
		}
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, err
	}
	if uid == 0 {
		return 0, errors.New("root needs no grant: bangerd run as root calls the helper's code directly")
	}
	return uid, nil
}

// installBinary copies src to target through a temporary file in the same
// root-owned directory, so the target is replaced in one rename.
func installBinary(src, target string) error {
	dir := filepath.Dir(target)
	if err := mkdirRoot(dir); err != nil {
		return err
	}
	if err := rootsafe.Check(dir, rootsafe.Strict); err != nil {
		return fmt.Errorf("install directory refused: %w", err)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := filepath.Join(dir, fmt.Sprintf(".banger-helper.tmp-%d", os.Getpid()))
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o700)
	if err != nil {
		return fmt.Errorf("install %s: %w", target, err)
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Chmod(0o755)
	}
	if err == nil {
		err = out.Chown(0, 0)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, target)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install %s: %w", target, err)
	}
	return CheckInstalled(target)
}

// mkdirRoot creates dir and its missing parents as root:root 0755.
func mkdirRoot(dir string) error {
	if st, err := os.Lstat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", dir)
		}
		return nil
	}
	if err := mkdirRoot(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	if err := os.Chown(dir, 0, 0); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

// writeSudoers writes the user's drop-in as root: a temporary file in
// /etc/sudoers.d (sudo ignores names with a dot), checked with visudo -cf,
// then renamed into place.
func writeSudoers(ctx context.Context, uid int, helper string) error {
	sudo, err := rootsafe.LookProgram("sudo")
	if err != nil {
		return fmt.Errorf("sudo is needed for a non-root daemon: apt-get install sudo (%v)", err)
	}
	visudo, err := rootsafe.LookProgram("visudo")
	if err != nil {
		return err
	}
	dir := filepath.Dir(SudoersFile)
	if err := rootsafe.Check(dir, rootsafe.Strict); err != nil {
		return err
	}
	line := SudoersLine(uid, helper, SudoSupportsRegex(ctx, sysexec.Exec{}, sudo))
	content := "# Written by banger-helper install: the privileged helper's verbs, nothing else.\n" + line + "\n"
	tmp := filepath.Join(dir, fmt.Sprintf(".banger.tmp-%d", os.Getpid()))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o440)
	if err != nil {
		return fmt.Errorf("write sudoers drop-in: %w", err)
	}
	_, err = io.WriteString(f, content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		_, err = sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: []string{visudo, "-cf", tmp}})
	}
	if err == nil {
		err = os.Rename(tmp, SudoersFileFor(uid))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write sudoers drop-in: %w", err)
	}
	return nil
}

// SudoersLineForCaller is `bangerd --sudoers-line`: the grant for the real
// uid of this process (never a name from the environment) on the installed
// helper, refused when that file could not be granted safely.
func SudoersLineForCaller(ctx context.Context, helperPath string) (string, error) {
	uid := os.Getuid()
	if uid == 0 {
		return "", errors.New("root needs no sudoers line (a root bangerd runs the helper's code directly): run this as the user who runs banger")
	}
	if err := CheckInstalled(helperPath); err != nil {
		return "", fmt.Errorf("%w\nfix: %s", err, InstallHint)
	}
	sudo, err := sysexec.LookPath("sudo")
	if err != nil {
		return "", errors.New("sudo is not installed: apt-get install sudo")
	}
	return SudoersLine(uid, helperPath, SudoSupportsRegex(ctx, sysexec.Exec{}, sudo)), nil
}
