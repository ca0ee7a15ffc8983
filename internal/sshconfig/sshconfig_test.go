package sshconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

func TestRender(t *testing.T) {
	got := Render([]api.VMSSHInfo{{Name: "dev", User: "root", Host: "172.30.0.2", Port: 22,
		KeyPath: "/k/id_ed25519", KnownHostsPath: "/s/known hosts", HostKeyAlias: "banger-abc"}}, "vm")
	for _, want := range []string{"\nHost dev dev.vm\n", "  HostName 172.30.0.2\n", "  User root\n",
		"  IdentityFile /k/id_ed25519\n", "  UserKnownHostsFile \"/s/known hosts\"\n", "  HostKeyAlias banger-abc\n", "  IdentitiesOnly yes\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("Render lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Port") {
		t.Errorf("port 22 written:\n%s", got)
	}
}

func TestInstallIsIdempotentKeepsModeAndBacksUp(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	orig := "Host old\n  User me\n"
	if err := os.WriteFile(cfg, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, backup, err := Install(cfg, "/state/ssh_config")
	if err != nil || !changed || backup != cfg+".banger-backup" {
		t.Fatalf("Install: %v %q %v", changed, backup, err)
	}
	data, _ := os.ReadFile(cfg)
	if !strings.HasPrefix(string(data), marker+"\nInclude /state/ssh_config\n") || !strings.HasSuffix(string(data), orig) {
		t.Errorf("config after install:\n%s", data)
	}
	if fi, _ := os.Stat(cfg); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 kept", fi.Mode())
	}
	if b, _ := os.ReadFile(backup); string(b) != orig {
		t.Errorf("backup %q, want the original", b)
	}
	if changed, _, err := Install(cfg, "/state/ssh_config"); changed || err != nil {
		t.Errorf("second Install: changed %v, %v; want no change", changed, err)
	}
	if changed, err := Uninstall(cfg, "/state/ssh_config"); !changed || err != nil {
		t.Fatalf("Uninstall: %v %v", changed, err)
	}
	if data, _ := os.ReadFile(cfg); string(data) != orig {
		t.Errorf("after uninstall:\n%q\nwant the original\n%q", data, orig)
	}
	if changed, err := Uninstall(cfg, "/state/ssh_config"); changed || err != nil {
		t.Errorf("second Uninstall: %v %v", changed, err)
	}
}

func TestInstallCreatesMissingConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), ".ssh", "config")
	if _, _, err := Install(cfg, "/state/ssh_config"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(cfg)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new config: %v, %v; want mode 0600", fi, err)
	}
	if fi, _ := os.Stat(filepath.Dir(cfg)); fi.Mode().Perm() != 0o700 {
		t.Errorf("new ~/.ssh mode %v, want 0700", fi.Mode())
	}
}
