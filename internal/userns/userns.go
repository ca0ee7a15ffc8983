// Package userns tells whether this user can build images without root: a
// user namespace in which the user is root and 65535 subordinate ids stand
// in for every other owner (util-linux `unshare --map-auto --map-root-user`,
// which uses the setuid newuidmap/newgidmap of the uidmap package). Shared by
// the image builder (to refuse early with the fix) and doctor (to report it).
package userns

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/banger-dev/banger/internal/sysexec"
)

// MinIDs is the number of subordinate ids a build needs: every id a Debian
// or Void tree uses (0-65534) must map to something.
const MinIDs = 65536

// Host is what the probes look at. Zero fields mean the real host.
type Host struct {
	// Root is prepended to /etc and /proc paths (tests fabricate a host).
	Root string
	// LookPath finds a program in PATH.
	LookPath func(name string) (string, error)
	// Run runs argv and returns its combined output; used for the live probe
	// (nil = no live probe).
	Run func(ctx context.Context, argv []string) (string, error)
}

// Problem is one reason a rootless build cannot run here, with the exact
// command that fixes it.
type Problem struct {
	What string
	Fix  string
}

func (p Problem) String() string { return p.What + " (fix: " + p.Fix + ")" }

// Range is one line of /etc/subuid or /etc/subgid.
type Range struct {
	Owner       string
	Start, Size int64
}

// UnshareArgv is the prefix that runs a program as root in a new user
// namespace (the caller's ids as 0, its first subordinate range as 1-65535)
// with private mount and PID namespaces: mounts made inside vanish with it
// and every process dies with it.
func UnshareArgv() []string {
	return []string{"unshare", "--user", "--map-auto", "--map-root-user",
		"--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--"}
}

// Check lists every reason a rootless build cannot run for the user (name,
// uid); none means it can. The checks: the uidmap tools, unshare, a large
// enough subordinate id range in /etc/subuid and /etc/subgid, the Debian
// sysctl kernel.unprivileged_userns_clone (where it exists), Ubuntu's
// AppArmor restriction kernel.apparmor_restrict_unprivileged_userns,
// user.max_user_namespaces, and finally (when Run is set and nothing else
// is wrong) a real unshare.
func (h Host) Check(ctx context.Context, name string, uid int) []Problem {
	var out []Problem
	for _, t := range []struct{ prog, pkg string }{{"newuidmap", "uidmap"}, {"newgidmap", "uidmap"}, {"unshare", "util-linux"}} {
		if _, err := h.lookPath(t.prog); err != nil {
			out = append(out, Problem{t.prog + " is not installed", "sudo apt-get install " + t.pkg})
		}
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		if p, ok := h.subidProblem(f, name, uid); !ok {
			out = append(out, p)
		}
	}
	for _, s := range []struct {
		key, bad, want, why string
	}{
		{"kernel.unprivileged_userns_clone", "0", "1", "unprivileged user namespaces are disabled"},
		{"kernel.apparmor_restrict_unprivileged_userns", "1", "0", "AppArmor restricts unprivileged user namespaces"},
		{"user.max_user_namespaces", "0", "15000", "user namespaces are disabled (the limit is 0)"},
	} {
		v, err := os.ReadFile(h.path("/proc/sys/" + strings.ReplaceAll(s.key, ".", "/")))
		if err != nil || strings.TrimSpace(string(v)) != s.bad {
			continue // absent on this kernel, or allowed
		}
		out = append(out, Problem{fmt.Sprintf("%s (%s = %s)", s.why, s.key, s.bad), SysctlFix(s.key, s.want)})
	}
	if len(out) == 0 && h.Run != nil {
		unshare, _ := h.lookPath("unshare")
		argv := []string{unshare, "--user", "--map-auto", "--map-root-user", "true"}
		if msg, err := h.Run(ctx, argv); err != nil {
			out = append(out, Problem{
				fmt.Sprintf("%s fails: %v %s", strings.Join(argv, " "), err, strings.TrimSpace(msg)),
				"check that user namespaces are allowed here (a container may forbid them); or build as root",
			})
		}
	}
	return out
}

// SysctlFix sets a sysctl now and for every boot.
func SysctlFix(key, value string) string {
	return fmt.Sprintf("sudo sysctl -w %s=%s && echo %s=%s | sudo tee /etc/sysctl.d/60-banger-userns.conf", key, value, key, value)
}

func (h Host) lookPath(name string) (string, error) {
	if h.LookPath != nil {
		return h.LookPath(name)
	}
	return sysexec.LookPath(name)
}

func (h Host) path(p string) string {
	if h.Root == "" {
		return p
	}
	return filepath.Join(h.Root, p)
}

// subidProblem checks file (/etc/subuid or /etc/subgid) for a range of at
// least MinIDs owned by name or uid.
func (h Host) subidProblem(file, name string, uid int) (Problem, bool) {
	ranges, err := ReadRanges(h.path(file))
	if err != nil && !os.IsNotExist(err) {
		return Problem{"cannot read " + file + ": " + err.Error(), "sudo chmod 0644 " + file}, false
	}
	owner := name
	if owner == "" {
		owner = strconv.Itoa(uid)
	}
	var small *Range
	for i, r := range ranges {
		if r.Owner != name && r.Owner != strconv.Itoa(uid) {
			continue
		}
		if r.Size >= MinIDs {
			return Problem{}, true
		}
		small = &ranges[i]
	}
	// usermod takes both ranges at once; the fix names one free block for
	// both files so it is one command.
	fix := h.addSubidsFix(owner)
	if small != nil {
		return Problem{fmt.Sprintf("%s gives %s only %d subordinate ids (%d needed)", file, owner, small.Size, MinIDs), fix}, false
	}
	return Problem{fmt.Sprintf("%s has no subordinate ids for %s", file, owner), fix}, false
}

// addSubidsFix is the usermod command that gives owner MinIDs subordinate
// uids and gids above every range already handed out.
func (h Host) addSubidsFix(owner string) string {
	next := h.FreeStart()
	r := fmt.Sprintf("%d-%d", next, next+MinIDs-1)
	return fmt.Sprintf("sudo usermod --add-subuids %s --add-subgids %s %s", r, r, owner)
}

// FreeStart is the first id above every range in /etc/subuid and
// /etc/subgid (at least 100000, where useradd starts handing them out).
func (h Host) FreeStart() int64 {
	next := int64(100000)
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		ranges, _ := ReadRanges(h.path(f))
		for _, r := range ranges {
			if end := r.Start + r.Size; end > next {
				next = end
			}
		}
	}
	return next
}

// Fixes lists the fixes of problems in order, each once.
func Fixes(problems []Problem) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range problems {
		if !seen[p.Fix] {
			seen[p.Fix] = true
			out = append(out, p.Fix)
		}
	}
	return out
}

// ReadRanges parses /etc/subuid or /etc/subgid (owner:start:count lines).
func ReadRanges(path string) ([]Range, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Range
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.Split(line, ":")
		if len(p) != 3 {
			continue
		}
		start, err1 := strconv.ParseInt(p[1], 10, 64)
		size, err2 := strconv.ParseInt(p[2], 10, 64)
		if err1 != nil || err2 != nil || start < 0 || size <= 0 {
			continue
		}
		out = append(out, Range{Owner: p[0], Start: start, Size: size})
	}
	return out, sc.Err()
}
