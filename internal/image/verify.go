package image

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
)

// VerifyOffline checks an image without booting or mounting it (debugfs
// reads the ext4 file directly). pubKeyPath is the bundle key the image must
// trust; empty skips that check with a warning.
func VerifyOffline(ctx context.Context, imagePath, pubKeyPath string) []api.CheckResult {
	return (&Builder{Runner: sysexec.Exec{}}).VerifyOffline(ctx, imagePath, pubKeyPath)
}

// VerifyOffline is the package-level VerifyOffline with the builder's Runner.
func (b *Builder) VerifyOffline(ctx context.Context, imagePath, pubKeyPath string) []api.CheckResult {
	const scope = "image"
	var out []api.CheckResult
	add := func(name string, ok bool, detail, fix string) {
		st := api.CheckOK
		if !ok {
			st = api.CheckFail
		} else {
			fix = ""
		}
		out = append(out, api.CheckResult{Name: name, Scope: scope, Status: st, Detail: detail, Fix: fix})
	}
	rebuild := "rebuild the image: banger image build --name NAME --force"

	isExt4, err := IsExt4(imagePath)
	if err != nil || !isExt4 {
		detail := fmt.Sprintf("%s has no ext4 superblock", imagePath)
		if err != nil {
			detail = err.Error()
		}
		add("ext4", false, detail, "pass a raw ext4 image file")
		return out
	}
	add("ext4", true, imagePath, "")
	if _, err := sysexec.LookPath("debugfs"); err != nil {
		add("debugfs", false, "debugfs is needed to look inside the image", "apt-get install -y e2fsprogs")
		return out
	}
	fsys := extFS{run: b.runner(), img: imagePath}
	failed := func(name string, err error) {
		out = append(out, api.CheckResult{Name: name, Scope: scope, Status: api.CheckFail, Detail: err.Error(), Fix: "apt-get install -y e2fsprogs"})
	}
	executable := func(name, p string) {
		in, real, err := fsys.resolve(ctx, p)
		switch {
		case err != nil:
			failed(name, err)
		case !in.Exists:
			add(name, false, p+" is missing", rebuild)
		case in.Type != "regular" || in.Mode&0o111 == 0:
			add(name, false, fmt.Sprintf("%s is a %s with mode %04o, not an executable file", real, in.Type, in.Mode), rebuild)
		default:
			add(name, true, p, "")
		}
	}

	if res, err := b.runner().Run(ctx, sysexec.Cmd{Argv: []string{"e2fsck", "-fn", imagePath}}); err != nil {
		add("fsck", false, fmt.Sprintf("e2fsck found problems: %s", lastLine(string(res.Stdout)+string(res.Stderr))), rebuild)
	} else {
		add("fsck", true, "e2fsck -fn clean", "")
	}

	executable("agent", "/usr/local/bin/banger-agent")
	executable("sshd", "/usr/sbin/sshd")

	if eff, err := sshdEffective(ctx, fsys); err != nil {
		failed("sshd-config", err)
	} else {
		var bad []string
		for k, want := range map[string]string{
			"passwordauthentication":       "no",
			"kbdinteractiveauthentication": "no",
			"permitrootlogin":              "prohibit-password",
			"pubkeyauthentication":         "yes",
		} {
			if got := strings.ToLower(eff[k]); got != want && !(k == "pubkeyauthentication" && got == "") {
				bad = append(bad, fmt.Sprintf("%s is %q, want %q", k, eff[k], want))
			}
		}
		if !strings.Contains(eff["authorizedkeysfile"], "/etc/ssh/banger_authorized_keys") {
			bad = append(bad, "AuthorizedKeysFile does not include /etc/ssh/banger_authorized_keys")
		}
		sort.Strings(bad)
		add("sshd-config", len(bad) == 0, strings.Join(append([]string{"key-only root login"}, bad...)[min(len(bad), 1):], "; "), rebuild)
	}

	if fstab, ok, err := fsys.cat(ctx, "/etc/fstab"); err != nil {
		failed("fstab", err)
	} else {
		add("fstab", ok && hasWorkDiskLine(fstab), "LABEL=banger-root mounted at /root", rebuild)
	}

	switch trusted, ok, err := fsys.cat(ctx, "/etc/ssh/banger_authorized_keys"); {
	case err != nil:
		failed("trusted-key", err)
	case pubKeyPath == "":
		out = append(out, api.CheckResult{Name: "trusted-key", Scope: scope, Status: api.CheckWarn, Detail: "no bundle key given to compare with"})
	case !ok:
		add("trusted-key", false, "/etc/ssh/banger_authorized_keys is missing", rebuild)
	default:
		want, rerr := os.ReadFile(pubKeyPath)
		switch {
		case rerr != nil:
			add("trusted-key", false, rerr.Error(), "check the bundle's ssh_pub_key_path")
		case keyID(string(want)) == "" || !containsKey(trusted, keyID(string(want))):
			add("trusted-key", false, "the image does not trust the bundle key "+pubKeyPath, rebuild)
		default:
			add("trusted-key", true, "trusts "+pubKeyPath, "")
		}
	}

	if base, err := Baseline(); err != nil {
		failed("baseline", err)
	} else {
		var missing []string
		for _, e := range base {
			found := false
			for _, dir := range []string{"/usr/bin/", "/usr/sbin/"} {
				in, _, err := fsys.resolve(ctx, dir+e.Command)
				if err == nil && in.Exists && in.Type == "regular" && in.Mode&0o111 != 0 {
					found = true
					break
				}
			}
			if !found {
				missing = append(missing, e.Command+" ("+e.Name+")")
			}
		}
		detail := fmt.Sprintf("all %d baseline commands present", len(base))
		if len(missing) > 0 {
			detail = "missing: " + strings.Join(missing, ", ")
		}
		add("baseline", len(missing) == 0, detail, rebuild)
	}

	for _, s := range []string{"banger-net", "banger-home", "banger-hostkeys"} {
		executable("script-"+s, "/usr/local/lib/banger/"+s)
	}
	if bad, detail, err := checkServices(ctx, fsys); err != nil {
		failed("services", err)
	} else {
		if len(bad) > 0 {
			detail = strings.Join(bad, "; ")
		}
		add("services", len(bad) == 0, detail, rebuild)
	}

	if names, err := fsys.ls(ctx, "/etc/ssh"); err != nil {
		failed("ssh-host-keys", err)
	} else {
		var keys []string
		for _, n := range names {
			if strings.HasPrefix(n, "ssh_host_") {
				keys = append(keys, n)
			}
		}
		detail := "none baked in (generated per VM at first boot)"
		if len(keys) > 0 {
			detail = "baked in, so every VM would share them: " + strings.Join(keys, ", ")
		}
		add("ssh-host-keys", len(keys) == 0 && len(names) > 0, detail, rebuild)
	}

	if in, err := fsys.stat(ctx, "/etc/machine-id"); err != nil {
		failed("machine-id", err)
	} else {
		detail := "empty (generated per VM at first boot)"
		if !in.Exists {
			detail = "/etc/machine-id is missing"
		} else if in.Size != 0 {
			detail = fmt.Sprintf("/etc/machine-id holds %d bytes, so every VM would share it", in.Size)
		}
		add("machine-id", in.Exists && in.Size == 0, detail, rebuild)
	}
	return out
}

// sshdEffective returns sshd's effective global settings (lowercase keys):
// the first value of each keyword wins, and Include pulls in drop-ins at
// the point where it appears. Match blocks are ignored.
func sshdEffective(ctx context.Context, fsys extFS) (map[string]string, error) {
	eff := map[string]string{}
	var walk func(p string, depth int) error
	walk = func(p string, depth int) error {
		text, ok, err := fsys.cat(ctx, p)
		if err != nil || !ok || depth > 3 {
			return err
		}
		sc := bufio.NewScanner(strings.NewReader(text))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 || strings.HasPrefix(f[0], "#") {
				continue
			}
			k := strings.ToLower(f[0])
			if k == "match" {
				return nil
			}
			if k == "include" {
				for _, pat := range f[1:] {
					if err := includeGlob(ctx, fsys, pat, func(q string) error { return walk(q, depth+1) }); err != nil {
						return err
					}
				}
				continue
			}
			if _, seen := eff[k]; !seen {
				eff[k] = strings.Join(f[1:], " ")
			}
		}
		return nil
	}
	if err := walk("/etc/ssh/sshd_config", 0); err != nil {
		return nil, err
	}
	return eff, nil
}

// includeGlob expands an sshd Include pattern of the form DIR/*.conf.
func includeGlob(ctx context.Context, fsys extFS, pat string, fn func(string) error) error {
	if !strings.HasPrefix(pat, "/") {
		pat = "/etc/ssh/" + pat
	}
	dir, glob, _ := strings.Cut(pat[1:], "*")
	dir = "/" + strings.TrimSuffix(dir, "/")
	if !strings.Contains(pat, "*") {
		return fn(pat)
	}
	names, err := fsys.ls(ctx, dir)
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasSuffix(n, glob) {
			if err := fn(dir + "/" + n); err != nil {
				return err
			}
		}
	}
	return nil
}

func hasWorkDiskLine(fstab string) bool {
	for _, line := range strings.Split(fstab, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "LABEL=banger-root" && f[1] == "/root" && f[2] == "ext4" {
			return true
		}
	}
	return false
}

// keyID is "type base64" of the first key in an OpenSSH public key file.
func keyID(s string) string {
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			return f[0] + " " + f[1]
		}
	}
	return ""
}

func containsKey(authorized, id string) bool {
	for _, line := range strings.Split(authorized, "\n") {
		if keyID(line) == id {
			return true
		}
	}
	return false
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// checkServices checks that every guest service is installed and enabled,
// in the image's own init layout: Void's runit (its stage 1 runs
// /etc/runit/core-services, where banger's oneshots live) or systemd.
// /etc/runit/runsvdir alone proves nothing: Debian's openssh-server pulls
// in runit-helper, which makes it. It returns what is wrong, or a summary
// when nothing is.
func checkServices(ctx context.Context, fsys extFS) (bad []string, summary string, err error) {
	svcs, err := Services()
	if err != nil {
		return nil, "", err
	}
	coreServices, err := fsys.stat(ctx, "/etc/runit/core-services")
	if err != nil {
		return nil, "", err
	}
	if !coreServices.Exists || coreServices.Type != "directory" {
		for _, s := range svcs {
			unit := "/etc/systemd/system/" + s.Name + ".service"
			if in, err := fsys.stat(ctx, unit); err != nil || !in.Exists || in.Type != "regular" {
				bad = append(bad, unit+" missing")
			}
			if in, err := fsys.stat(ctx, "/etc/systemd/system/multi-user.target.wants/"+s.Name+".service"); err != nil || !in.Exists {
				bad = append(bad, s.Name+" not enabled")
			}
		}
		return bad, fmt.Sprintf("%d systemd services installed and enabled", len(svcs)), nil
	}

	own, err := DistroServices("void")
	if err != nil {
		return nil, "", err
	}
	svcs = append(svcs, own...)
	core, err := fsys.ls(ctx, "/etc/runit/core-services")
	if err != nil {
		return nil, "", err
	}
	for _, s := range svcs {
		switch s.Kind {
		case "oneshot":
			// Stage 1 sources /etc/runit/core-services/NN-NAME.sh.
			var script string
			for _, n := range core {
				if len(n) > 3 && n[2] == '-' && n[3:] == s.Name+".sh" {
					script = "/etc/runit/core-services/" + n
				}
			}
			if script == "" {
				bad = append(bad, "/etc/runit/core-services/NN-"+s.Name+".sh missing")
				continue
			}
			text, _, err := fsys.cat(ctx, script)
			if err != nil {
				return nil, "", err
			}
			if !strings.Contains(text, s.Command) {
				bad = append(bad, script+" does not run "+s.Command)
			}
		default:
			run := "/etc/sv/" + s.Name + "/run"
			if in, err := fsys.stat(ctx, run); err != nil || !in.Exists || in.Type != "regular" || in.Mode&0o111 == 0 {
				bad = append(bad, run+" missing or not executable")
			}
			link, err := fsys.stat(ctx, "/etc/runit/runsvdir/default/"+s.Name)
			if err != nil || !link.Exists || link.Type != "symlink" || link.Link != "/etc/sv/"+s.Name {
				bad = append(bad, s.Name+" not enabled (no /etc/runit/runsvdir/default/"+s.Name+" -> /etc/sv/"+s.Name+")")
			}
		}
	}
	return bad, fmt.Sprintf("%d runit services installed and enabled", len(svcs)), nil
}
