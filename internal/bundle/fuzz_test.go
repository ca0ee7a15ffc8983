package bundle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bundle.json contents to Load over a directory
// holding real files, a directory, and symlinks leading out. Load must never
// panic, and whatever it accepts must name paths inside the bundle.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`{"schema_version":1,"kernel":"vmlinux","initrd":"initrd.img","modules":"modules/lib/modules/6.1.0-9-amd64","rootfs":"rootfs.ext4","agent":"banger-agent","ssh_key":"id_ed25519","ssh_pub_key":"id_ed25519.pub"}`))
	f.Add([]byte(`{"schema_version":1,"kernel":"out/vmlinux","agent":"banger-agent","ssh_key":"id_ed25519","ssh_pub_key":"id_ed25519.pub"}`))

	root := f.TempDir()
	outside := filepath.Join(root, "outside")
	dir := filepath.Join(root, "bundle")
	for _, p := range []string{"vmlinux", "initrd.img", "rootfs.ext4", "banger-agent", "id_ed25519", "id_ed25519.pub", "modules/lib/modules/6.1.0-9-amd64/modules.dep"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(p), 0o600); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.MkdirAll(outside, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "vmlinux"), []byte("x"), 0o644); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "out")); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink("../outside/vmlinux", filepath.Join(dir, "vmlinux-link")); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink("vmlinux", filepath.Join(dir, "vmlinux-inside")); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, ManifestName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, parseErr := ParseManifest(data)
		b, err := Load(dir)
		if err != nil {
			if !strings.Contains(err.Error(), dir) && !strings.Contains(err.Error(), "bundle") {
				t.Errorf("error does not say which bundle: %v", err)
			}
			return
		}
		if parseErr != nil {
			t.Fatalf("Load accepted what ParseManifest rejects: %v", parseErr)
		}
		realDir, _ := filepath.EvalSymlinks(dir)
		for _, p := range []string{b.KernelPath, b.InitrdPath, b.ModulesDir, b.RootfsPath, b.AgentPath, b.SSHKeyPath, b.SSHPubKeyPath} {
			if p == "" {
				continue
			}
			if !filepath.IsAbs(p) {
				t.Fatalf("relative path %q accepted", p)
			}
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				t.Fatalf("accepted path %q does not resolve: %v", p, err)
			}
			if rel, err := filepath.Rel(realDir, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				t.Fatalf("accepted path %q resolves outside the bundle to %q", p, real)
			}
		}
		if b.KernelPath == "" || b.AgentPath == "" || b.SSHKeyPath == "" || b.SSHPubKeyPath == "" {
			t.Fatalf("accepted a bundle without a required entry: %+v", b)
		}
	})
}
