package image

import (
	"archive/tar"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
)

// TestBootKind: systemd with bash boots systemd; no systemd (busybox's or
// no init at all) boots with the agent as PID 1, sshd noticed through the
// usrmerge links; systemd without bash and a tree without /etc are refused.
func TestBootKind(t *testing.T) {
	archive := func(entries ...string) string {
		p := filepath.Join(t.TempDir(), "tree.tar")
		f, _ := os.Create(p)
		tw := tar.NewWriter(f)
		for _, e := range entries {
			name, link, isLink := strings.Cut(e, "->")
			switch {
			case isLink:
				tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: link})
			case strings.HasSuffix(name, "/"):
				tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755})
			default:
				tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o755})
			}
		}
		tw.Close()
		f.Close()
		return p
	}
	for _, tc := range []struct {
		name    string
		entries []string
		want    treeKind
		err     string
	}{
		{"debian with systemd", []string{"etc/", "bin->usr/bin", "lib->usr/lib", "usr/bin/bash", "usr/lib/systemd/systemd", "usr/bin/apt-get", "usr/sbin/sshd"},
			treeKind{Init: InitSystemd, PackageTool: toolAptGet, HasSSHD: true}, ""},
		{"busybox without an init", []string{"./etc/", "./bin/busybox", "./bin/sh->busybox"}, treeKind{Init: InitAgent}, ""},
		{"alpine with busybox init and sshd", []string{"etc/", "bin/busybox", "sbin/init->/bin/busybox", "usr/sbin/sshd"}, treeKind{Init: InitAgent, HasSSHD: true}, ""},
		{"slim debian without systemd", []string{"etc/", "bin->usr/bin", "usr/bin/bash", "usr/bin/apt-get"}, treeKind{Init: InitAgent, PackageTool: toolAptGet}, ""},
		{"alpine's apk through a usrmerge /sbin", []string{"etc/", "sbin->usr/sbin", "usr/sbin/apk", "bin/busybox"}, treeKind{Init: InitAgent, PackageTool: toolApk}, ""},
		{"apk in /usr/sbin only", []string{"etc/", "sbin/", "usr/sbin/apk"}, treeKind{Init: InitAgent, PackageTool: toolApkUsr}, ""},
		{"fedora's dnf (a link to dnf5)", []string{"etc/", "bin->usr/bin", "usr/bin/bash", "usr/lib/systemd/systemd", "usr/bin/dnf5", "usr/bin/dnf->dnf5"},
			treeKind{Init: InitSystemd, PackageTool: toolDnf}, ""},
		{"apt wins over dnf", []string{"etc/", "usr/bin/apt-get", "usr/bin/dnf"}, treeKind{Init: InitAgent, PackageTool: toolAptGet}, ""},
		{"systemd without bash", []string{"etc/", "lib/systemd/systemd"}, treeKind{}, "no bash"},
		{"no /etc", []string{"bin/busybox"}, treeKind{}, "no /etc"},
	} {
		got, err := bootKind(archive(tc.entries...))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %+v, %v; want an error about %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

// TestCustomizeAgentInit runs customize.sh's BANGER_INIT=agent branch over
// a busybox-like tree with a usrmerge /sbin: the agent becomes /sbin/init
// (inside the tree), the image config and the trusted key are installed,
// and nothing of the systemd layer (bash check, units) is needed.
func TestCustomizeAgentInit(t *testing.T) {
	dir := scriptsDir(t)
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	for _, d := range []string{"etc", "bin", "usr/sbin", "usr/lib"} {
		os.MkdirAll(filepath.Join(tree, d), 0o755)
	}
	os.Symlink("usr/sbin", filepath.Join(tree, "sbin"))
	os.WriteFile(filepath.Join(tree, "usr/sbin/init"), []byte("old init"), 0o755)
	pub := filepath.Join(root, "id.pub")
	os.WriteFile(pub, []byte("ssh-ed25519 AAAAC3Nza test\n"), 0o644)
	agent := filepath.Join(root, "agent")
	os.WriteFile(agent, []byte("#!/bin/sh\n"), 0o755)
	cfg := filepath.Join(root, "oci-config.json")
	os.WriteFile(cfg, []byte(`{"Cmd":["/bin/busybox","httpd"]}`+"\n"), 0o644)
	env := []string{"BANGER_ROOTFS=" + tree, "BANGER_PUBKEY=" + pub, "BANGER_AGENT=" + agent, "BANGER_INIT=agent", "BANGER_OCI_CONFIG=" + cfg, "PATH=" + os.Getenv("PATH")}
	out, err := run(t, sysexec.Cmd{Argv: []string{"bash", filepath.Join(dir, "customize.sh")}, Env: env})
	if err != nil {
		t.Fatalf("customize.sh: %v\n%s", err, out)
	}
	if l, err := os.Readlink(filepath.Join(tree, "usr/sbin/init")); err != nil || l != "/usr/local/bin/banger-agent" {
		t.Errorf("/sbin/init -> %q, %v", l, err)
	}
	for _, p := range []string{"usr/local/bin/banger-agent", "lib", "etc/banger/oci-config.json", "etc/ssh/banger_authorized_keys", "proc", "sys", "dev", "run", "tmp", "root"} {
		if _, err := os.Stat(filepath.Join(tree, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(tree, "etc/banger/oci-config.json")); !strings.Contains(string(data), "httpd") {
		t.Errorf("oci-config.json %q", data)
	}
	// A /sbin link leaving the tree is refused.
	os.Remove(filepath.Join(tree, "sbin"))
	os.Symlink("../../outside", filepath.Join(tree, "sbin"))
	if out, err := run(t, sysexec.Cmd{Argv: []string{"bash", filepath.Join(dir, "customize.sh")}, Env: env}); err == nil || !strings.Contains(out, "leaving the tree") {
		t.Errorf("a /sbin link out of the tree: %v\n%s", err, out)
	}
}

// TestPackagesEnv: --packages picks the image's own package manager, checks
// Debian's stricter names only for apt, and refuses an image without one.
func TestPackagesEnv(t *testing.T) {
	b := &Builder{}
	if env, err := b.packagesEnv(treeKind{}, nil); env != nil || err != nil {
		t.Errorf("no packages: %q, %v", env, err)
	}
	_, err := b.packagesEnv(treeKind{Init: InitAgent}, []string{"curl"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeFailedPrecondition || !strings.Contains(ae.Message, "apt-get (/usr/bin/apt-get), dnf (/usr/bin/dnf) or apk (/sbin/apk)") {
		t.Errorf("an image without a package manager: %v", err)
	}
	if _, err := b.packagesEnv(treeKind{PackageTool: toolAptGet}, []string{"perl-Net-SSLeay"}); !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument {
		t.Errorf("an rpm-style name for apt: %v", err)
	}
	env, err := b.packagesEnv(treeKind{PackageTool: toolDnf}, []string{"perl-Net-SSLeay", "gcc-c++"})
	if err != nil || strings.Join(env, " ") != "BANGER_EXTRA_PACKAGES=perl-Net-SSLeay,gcc-c++ BANGER_PACKAGE_TOOL=/usr/bin/dnf" {
		t.Errorf("dnf: %q, %v", env, err)
	}
	env, err = b.packagesEnv(treeKind{PackageTool: toolAptGet}, []string{"hello"})
	if err != nil || len(env) != 3 || env[1] != "BANGER_PACKAGE_TOOL=/usr/bin/apt-get" || !strings.HasPrefix(env[2], "BANGER_APT_CACHE=") {
		t.Errorf("apt: %q, %v", env, err)
	}
	for _, bad := range []string{"-x", "a b", "../x", "a/b", "x;y", ""} {
		if pkgNameRe.MatchString(bad) {
			t.Errorf("%q taken for a package name", bad)
		}
	}
}

// TestPackError: a failed install is reported with the package manager's
// command, exit status and last lines; apt's unknown package stays an
// invalid argument.
func TestPackError(t *testing.T) {
	tail := []string{"ERROR: unable to select packages:", "  nosuch (no such package):", "    required by: world[nosuch]", "pack: packages: apk add --no-cache nosuch exited with status 1"}
	err := packError(BuildRequest{}, tail, errors.New("exit status 3"))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeFailedPrecondition ||
		ae.Message != "installing the extra packages failed: apk add --no-cache nosuch exited with status 1; its last lines: ERROR: unable to select packages: /   nosuch (no such package): /     required by: world[nosuch]" {
		t.Errorf("apk failure explained as %v", err)
	}
	err = packError(BuildRequest{Suite: "bookworm"}, []string{"E: Unable to locate package nope", "pack: packages: apt-get -q -y install nope exited with status 100"}, errors.New("exit status 3"))
	if !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument || !strings.Contains(ae.Message, "nope") {
		t.Errorf("apt's unknown package explained as %v", err)
	}
}
