package image

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
			treeKind{Init: InitSystemd, HasApt: true, HasSSHD: true}, ""},
		{"busybox without an init", []string{"./etc/", "./bin/busybox", "./bin/sh->busybox"}, treeKind{Init: InitAgent}, ""},
		{"alpine with busybox init and sshd", []string{"etc/", "bin/busybox", "sbin/init->/bin/busybox", "usr/sbin/sshd"}, treeKind{Init: InitAgent, HasSSHD: true}, ""},
		{"slim debian without systemd", []string{"etc/", "bin->usr/bin", "usr/bin/bash", "usr/bin/apt-get"}, treeKind{Init: InitAgent, HasApt: true}, ""},
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
