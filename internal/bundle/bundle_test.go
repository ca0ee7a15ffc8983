package bundle

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/kernel/kerneltest"
	"github.com/banger-dev/banger/internal/sysexec"
)

// staticExe is a static x86-64 executable to stand in for the agent in
// unit tests (Debian's busybox-static is one).
const staticExe = "/bin/busybox"

func write(t *testing.T, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// ext4Image returns bytes that carry the ext4 superblock magic.
func ext4Image() []byte {
	img := make([]byte, 4096)
	binary.LittleEndian.PutUint16(img[1080:], 0xef53)
	return img
}

// makeFiles creates a complete set of bundle files under dir with the
// given names (manifest or legacy layout) and returns nothing to clean:
// dir is a test temp dir.
func makeFiles(t *testing.T, dir string, agentName string) {
	t.Helper()
	agent, err := os.ReadFile(staticExe)
	if err != nil {
		t.Skipf("needs a static executable at %s (busybox-static): %v", staticExe, err)
	}
	write(t, filepath.Join(dir, KernelFile), kerneltest.MinimalELF(true), 0o644)
	write(t, filepath.Join(dir, InitrdFile), []byte("initrd"), 0o644)
	write(t, filepath.Join(dir, "modules/lib/modules/6.1.0-9-amd64/modules.dep"), []byte("kernel/fs/ext4/ext4.ko:\n"), 0o644)
	write(t, filepath.Join(dir, RootfsFile), ext4Image(), 0o644)
	write(t, filepath.Join(dir, agentName), agent, 0o755)
	if err := generateKeyPair(filepath.Join(dir, SSHKeyFile), filepath.Join(dir, SSHPubKeyFile)); err != nil {
		t.Fatal(err)
	}
}

func validManifest() Manifest {
	return Manifest{
		SchemaVersion: 1, Kernel: KernelFile, KernelVersion: "6.1.0-9-amd64", Initrd: InitrdFile,
		Modules: "modules/lib/modules/6.1.0-9-amd64", Rootfs: RootfsFile, Agent: AgentFile,
		SSHKey: SSHKeyFile, SSHPubKey: SSHPubKeyFile,
	}
}

func writeManifestT(t *testing.T, dir string, m any) {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, ManifestName), data, 0o644)
}

func TestLoadManifest(t *testing.T) {
	dir := t.TempDir()
	makeFiles(t, dir, AgentFile)
	writeManifestT(t, dir, validManifest())
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Bundle{
		Dir: dir, KernelPath: filepath.Join(dir, "vmlinux"), KernelVersion: "6.1.0-9-amd64",
		InitrdPath: filepath.Join(dir, "initrd.img"), ModulesDir: filepath.Join(dir, "modules/lib/modules/6.1.0-9-amd64"),
		RootfsPath: filepath.Join(dir, "rootfs.ext4"), AgentPath: filepath.Join(dir, "banger-agent"),
		SSHKeyPath: filepath.Join(dir, "id_ed25519"), SSHPubKeyPath: filepath.Join(dir, "id_ed25519.pub"),
	}
	if *b != want {
		t.Fatalf("Load:\n got %+v\nwant %+v", *b, want)
	}
	if info := b.Info(); info.KernelPath != want.KernelPath || info.ModulesDir != want.ModulesDir || info.Legacy || info.SSHPubKeyPath != want.SSHPubKeyPath {
		t.Fatalf("Info() = %+v", info)
	}
	if errs := b.Check(); len(errs) != 0 {
		t.Fatalf("Check() on a good bundle: %v", errs)
	}

	// Optional entries may be left out; a relative bundle dir becomes absolute.
	m := validManifest()
	m.Initrd, m.Modules, m.Rootfs, m.KernelVersion = "", "", "", ""
	writeManifestT(t, dir, m)
	wd, _ := os.Getwd()
	t.Chdir(filepath.Dir(dir))
	b, err = Load(filepath.Base(dir))
	t.Chdir(wd)
	if err != nil {
		t.Fatal(err)
	}
	if b.Dir != dir || b.InitrdPath != "" || b.ModulesDir != "" || b.RootfsPath != "" {
		t.Fatalf("optional entries: %+v", b)
	}
}

func TestLoadLegacy(t *testing.T) {
	for _, agent := range []string{AgentFile, LegacyAgentFile} {
		t.Run(agent, func(t *testing.T) {
			dir := t.TempDir()
			makeFiles(t, dir, agent)
			b, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !b.Legacy || b.AgentPath != filepath.Join(dir, agent) || b.KernelVersion != "6.1.0-9-amd64" ||
				b.ModulesDir != filepath.Join(dir, "modules/lib/modules/6.1.0-9-amd64") ||
				b.RootfsPath != filepath.Join(dir, RootfsFile) || b.InitrdPath != filepath.Join(dir, InitrdFile) {
				t.Fatalf("legacy load: %+v", b)
			}
			if !b.Info().Legacy {
				t.Fatal("Info().Legacy is false")
			}
			if errs := b.Check(); len(errs) != 0 {
				t.Fatalf("Check: %v", errs)
			}
		})
	}
	// Optional files absent.
	dir := t.TempDir()
	makeFiles(t, dir, AgentFile)
	for _, p := range []string{InitrdFile, RootfsFile, ModulesBase} {
		os.RemoveAll(filepath.Join(dir, p))
	}
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.InitrdPath != "" || b.RootfsPath != "" || b.ModulesDir != "" {
		t.Fatalf("absent optional files: %+v", b)
	}
}

func TestLoadBroken(t *testing.T) {
	outside := t.TempDir()
	write(t, filepath.Join(outside, "vmlinux"), kerneltest.MinimalELF(true), 0o644)

	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  []string // substrings of the error
	}{
		{"missing kernel", func(t *testing.T, dir string) {
			writeManifestT(t, dir, validManifest())
			os.Remove(filepath.Join(dir, KernelFile))
		}, []string{"kernel", "vmlinux", "missing", "banger bundle build"}},
		{"legacy missing kernel", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, KernelFile))
		}, []string{"not a runtime bundle", "banger bundle build"}},
		{"legacy missing key", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, SSHKeyFile))
		}, []string{"ssh_key", "id_ed25519", "missing"}},
		{"legacy missing agent", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, AgentFile))
		}, []string{"agent", "banger-agent", "missing"}},
		{"path escaping with ..", func(t *testing.T, dir string) {
			m := validManifest()
			m.Kernel = "../" + filepath.Base(outside) + "/vmlinux"
			writeManifestT(t, dir, m)
		}, []string{"kernel", "leaves the bundle directory"}},
		{"absolute path", func(t *testing.T, dir string) {
			m := validManifest()
			m.Kernel = filepath.Join(outside, "vmlinux")
			writeManifestT(t, dir, m)
		}, []string{"kernel", "is absolute"}},
		{"symlink pointing outside", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, KernelFile))
			if err := os.Symlink(filepath.Join(outside, "vmlinux"), filepath.Join(dir, KernelFile)); err != nil {
				t.Fatal(err)
			}
			writeManifestT(t, dir, validManifest())
		}, []string{"kernel", "outside the bundle directory"}},
		{"symlinked directory pointing outside", func(t *testing.T, dir string) {
			if err := os.Symlink(outside, filepath.Join(dir, "ext")); err != nil {
				t.Fatal(err)
			}
			m := validManifest()
			m.Kernel = "ext/vmlinux"
			writeManifestT(t, dir, m)
		}, []string{"kernel", "outside the bundle directory"}},
		{"modules is a file", func(t *testing.T, dir string) {
			m := validManifest()
			m.Modules = InitrdFile
			writeManifestT(t, dir, m)
		}, []string{"modules", "not a directory"}},
		{"kernel is a directory", func(t *testing.T, dir string) {
			m := validManifest()
			m.Kernel = "modules"
			writeManifestT(t, dir, m)
		}, []string{"kernel", "not a regular file"}},
		{"malformed JSON", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, ManifestName), []byte(`{"schema_version":1, "kernel": `), 0o644)
		}, []string{"not valid JSON", "bundle.json"}},
		{"trailing data", func(t *testing.T, dir string) {
			data, _ := json.Marshal(validManifest())
			write(t, filepath.Join(dir, ManifestName), append(data, "{}"...), 0o644)
		}, []string{"data after the JSON object"}},
		{"no schema version", func(t *testing.T, dir string) {
			m := validManifest()
			m.SchemaVersion = 0
			writeManifestT(t, dir, m)
		}, []string{"no schema_version"}},
		{"newer schema", func(t *testing.T, dir string) {
			m := validManifest()
			m.SchemaVersion = 2
			writeManifestT(t, dir, m)
		}, []string{"schema_version 2", "upgrade banger"}},
		{"no agent entry", func(t *testing.T, dir string) {
			m := validManifest()
			m.Agent = ""
			writeManifestT(t, dir, m)
		}, []string{`no "agent" entry`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			makeFiles(t, dir, AgentFile)
			c.setup(t, dir)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}

	if _, err := Load(filepath.Join(outside, "nope")); err == nil || !strings.Contains(err.Error(), "banger bundle build") {
		t.Fatalf("missing dir: %v", err)
	}
	if os.Geteuid() != 0 {
		dir := t.TempDir()
		makeFiles(t, dir, AgentFile)
		writeManifestT(t, dir, validManifest())
		os.Chmod(filepath.Join(dir, InitrdFile), 0)
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "unreadable") {
			t.Fatalf("unreadable initrd: %v", err)
		}
	}
}

func TestCheckFindsProblems(t *testing.T) {
	otherKey := filepath.Join(t.TempDir(), "k")
	if err := generateKeyPair(otherKey, otherKey+".pub"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		entry  string
		inFix  string
	}{
		{"kernel not ELF", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, KernelFile), []byte("MZ this is a bzImage"), 0o644)
		}, "kernel", "banger bundle build"},
		{"kernel without PVH note", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, KernelFile), kerneltest.MinimalELF(false), 0o644)
		}, "kernel", "banger bundle build"},
		{"key readable by others", func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, SSHKeyFile), 0o644)
		}, "ssh_key", "chmod 600"},
		{"key pair mismatch", func(t *testing.T, dir string) {
			data, _ := os.ReadFile(otherKey + ".pub")
			write(t, filepath.Join(dir, SSHPubKeyFile), data, 0o644)
		}, "ssh_key", "banger bundle build"},
		{"private key garbage", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, SSHKeyFile), []byte("not a key"), 0o600)
		}, "ssh_key", "banger bundle build"},
		{"agent not executable", func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, AgentFile), 0o644)
		}, "agent", "chmod 755"},
		{"agent dynamically linked", func(t *testing.T, dir string) {
			data, err := os.ReadFile("/bin/true")
			if err != nil {
				t.Skip(err)
			}
			write(t, filepath.Join(dir, AgentFile), data, 0o755)
		}, "agent", "banger bundle build"},
		{"modules not indexed", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "modules/lib/modules/6.1.0-9-amd64/modules.dep"))
		}, "modules", "depmod -b " + "DIR/modules 6.1.0-9-amd64"},
		{"rootfs not ext4", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, RootfsFile), make([]byte, 4096), 0o644)
		}, "rootfs", "banger image build"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			makeFiles(t, dir, AgentFile)
			writeManifestT(t, dir, validManifest())
			c.break_(t, dir)
			b, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			errs := b.Check()
			if len(errs) != 1 {
				t.Fatalf("Check() = %v, want exactly one problem", errs)
			}
			var ce *CheckError
			if !errors.As(errs[0], &ce) || ce.Entry != c.entry {
				t.Fatalf("Check() = %v, want a %s problem", errs[0], c.entry)
			}
			if want := strings.ReplaceAll(c.inFix, "DIR", dir); !strings.Contains(ce.Fix, want) {
				t.Errorf("fix %q lacks %q", ce.Fix, want)
			}
		})
	}
}

func TestGeneratedKeyModes(t *testing.T) {
	dir := t.TempDir()
	old := setUmask(0)
	defer setUmask(old)
	priv, pub := filepath.Join(dir, "k"), filepath.Join(dir, "k.pub")
	if err := generateKeyPair(priv, pub); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{priv: 0o600, pub: 0o644} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
	if _, err := readKeyPair(priv, pub); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(pub)
	if !strings.HasPrefix(string(data), "ssh-ed25519 ") || !strings.HasSuffix(string(data), " banger\n") {
		t.Errorf("public key line %q", data)
	}
	pubLine := string(data)
	data, _ = os.ReadFile(priv)
	if !strings.HasPrefix(string(data), "-----BEGIN OPENSSH PRIVATE KEY-----") {
		t.Errorf("private key is not in OpenSSH format: %.40q", data)
	}
	// OpenSSH itself must read the key and derive the same public key.
	if _, err := sysexec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen not installed")
	}
	out, err := sysexec.Output(context.Background(), "ssh-keygen", "-y", "-f", priv)
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(pubLine); len(f) < 2 || !strings.HasPrefix(out, f[0]+" "+f[1]) {
		t.Errorf("ssh-keygen -y = %q, want %q", out, pubLine)
	}
}
