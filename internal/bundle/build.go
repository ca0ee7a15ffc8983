package bundle

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/disk"
	"github.com/banger-dev/banger/internal/initramfs"
	"github.com/banger-dev/banger/internal/kernel"
	"github.com/banger-dev/banger/internal/sysexec"
)

// BuildOptions says where and from what to build a bundle.
type BuildOptions struct {
	Dir           string // the bundle directory to create or refresh
	CacheDir      string // where downloaded kernel packages are kept
	AgentBinary   string // a built, static banger-agent to copy in
	KernelPackage string // e.g. linux-image-6.1.0-27-amd64; "" = what linux-image-amd64 depends on
	Force         bool   // rebuild even when an up-to-date bundle exists
	Runner        sysexec.Runner
	Busybox       string // static busybox for the initramfs; "" = /bin/busybox
}

// Build makes a bundle from Debian packages: the kernel package's vmlinuz
// unpacked to an ELF vmlinux, its modules tree (indexed with depmod), a slim
// initramfs, the agent, and an ed25519 key pair. Everything is built in a
// temporary directory beside opts.Dir and swapped in at the end, with
// bundle.json written last, so a failed or interrupted build leaves the old
// bundle (or nothing) in place. An existing key pair is always carried over:
// images already built trust it. An up-to-date bundle (same kernel package,
// same agent) is left alone unless opts.Force.
func Build(ctx context.Context, opts BuildOptions, progress func(api.Progress)) (*Bundle, error) {
	if progress == nil {
		progress = func(api.Progress) {}
	}
	step := func(name, format string, args ...any) {
		progress(api.Progress{Step: name, Message: fmt.Sprintf(format, args...)})
	}
	if opts.Dir == "" || opts.CacheDir == "" || opts.AgentBinary == "" {
		return nil, errors.New("bundle build: Dir, CacheDir and AgentBinary are required")
	}
	if opts.Runner == nil {
		opts.Runner = sysexec.Exec{}
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkAgent(opts.AgentBinary); err != nil {
		return nil, fmt.Errorf("agent binary %s: %w (build it with `CGO_ENABLED=0 go build -o banger-agent ./cmd/banger-agent`)", opts.AgentBinary, err)
	}
	agentHash, _, err := disk.SHA256(opts.AgentBinary)
	if err != nil {
		return nil, fmt.Errorf("agent binary: %w", err)
	}

	pkg := opts.KernelPackage
	if pkg == "" {
		step("resolve-kernel", "asking apt which package %s depends on", kernel.DefaultMetaPackage)
		if pkg, err = kernel.ResolvePackage(ctx, opts.Runner, kernel.DefaultMetaPackage); err != nil {
			return nil, err
		}
	}
	if err := kernel.ValidPackageName(pkg); err != nil {
		return nil, err
	}

	existing, loadErr := Load(dir)
	if loadErr == nil && !opts.Force && !existing.Legacy && existing.KernelPackage == pkg &&
		existing.AgentSHA256 == agentHash && len(existing.Check()) == 0 {
		step("up-to-date", "bundle at %s already has %s and this agent", dir, pkg)
		return existing, nil
	}

	if loadErr != nil {
		if err := replaceable(dir); err != nil {
			return nil, err
		}
	}

	step("download-kernel", "fetching %s into %s", pkg, opts.CacheDir)
	deb, err := kernel.DownloadPackage(ctx, opts.Runner, pkg, opts.CacheDir)
	if err != nil {
		return nil, err
	}

	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("bundle build: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".build-")
	if err != nil {
		return nil, fmt.Errorf("bundle build: %w", err)
	}
	// After a successful install tmp no longer exists; otherwise this is
	// the undo of everything below.
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it 0700
		return nil, fmt.Errorf("bundle build: %w", err)
	}

	m := &Manifest{
		SchemaVersion: SchemaVersion, KernelPackage: pkg,
		Kernel: KernelFile, Initrd: InitrdFile, Agent: AgentFile, AgentSHA256: agentHash,
		SSHKey: SSHKeyFile, SSHPubKey: SSHPubKeyFile,
	}
	if err := buildKernelParts(ctx, opts, deb, tmp, m, step); err != nil {
		return nil, err
	}

	step("agent", "copying %s", opts.AgentBinary)
	if err := copyFile(opts.AgentBinary, filepath.Join(tmp, AgentFile), 0o755); err != nil {
		return nil, fmt.Errorf("bundle build: copying the agent: %w", err)
	}

	if err := installKeyPair(dir, existing, tmp, step); err != nil {
		return nil, err
	}

	// A default rootfs placed in the old bundle survives the rebuild.
	var keepRootfs string
	if loadErr == nil && existing.RootfsPath != "" {
		if rel, err := filepath.Rel(dir, existing.RootfsPath); err == nil && !strings.HasPrefix(rel, "..") && !strings.Contains(rel, string(filepath.Separator)) {
			keepRootfs = rel
			m.Rootfs = rel
		}
	}

	step("manifest", "writing %s", ManifestName)
	if keepRootfs == "" {
		// Check the finished tree before it replaces anything.
		if err := writeManifest(tmp, m); err != nil {
			return nil, err
		}
		if err := checkBuilt(tmp); err != nil {
			return nil, err
		}
	} else {
		// The rootfs moves over only at install time; check without it.
		withoutRootfs := *m
		withoutRootfs.Rootfs = ""
		if err := writeManifest(tmp, &withoutRootfs); err != nil {
			return nil, err
		}
		if err := checkBuilt(tmp); err != nil {
			return nil, err
		}
		if err := writeManifest(tmp, m); err != nil {
			return nil, err
		}
	}

	step("install", "installing the bundle at %s", dir)
	if err := install(tmp, dir, keepRootfs); err != nil {
		return nil, err
	}
	return Load(dir)
}

// replaceable refuses to let a build replace a directory that is not a
// bundle (a mistyped --dir must never delete someone's files). A missing or
// empty directory, or one that looks like a (possibly broken) bundle, is fine.
func replaceable(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(ents) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bundle build: %w", err)
	}
	for _, marker := range []string{ManifestName, KernelFile} {
		if _, err := os.Lstat(filepath.Join(dir, marker)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("bundle build: %s exists and is not a banger bundle (no %s or %s); refusing to replace it: pick a new or empty directory", dir, ManifestName, KernelFile)
}

// buildKernelParts unpacks the kernel package into tmp and produces the
// vmlinux, the modules tree and the initramfs.
func buildKernelParts(ctx context.Context, opts BuildOptions, deb, tmp string, m *Manifest, step func(string, string, ...any)) error {
	step("unpack-kernel", "unpacking %s", filepath.Base(deb))
	unpackDir := filepath.Join(tmp, ".unpack")
	u, err := kernel.UnpackPackage(ctx, opts.Runner, deb, unpackDir)
	if err != nil {
		return err
	}
	defer os.RemoveAll(unpackDir)
	m.KernelVersion = u.Version

	step("vmlinux", "extracting the ELF vmlinux from %s", filepath.Base(u.Vmlinuz))
	bz, err := os.ReadFile(u.Vmlinuz)
	if err != nil {
		return err
	}
	vmlinux, err := kernel.ExtractVmlinux(bz)
	if err != nil {
		return fmt.Errorf("bundle build: %s: %w", u.Vmlinuz, err)
	}
	if !kernel.HasPVHNote(vmlinux) {
		return fmt.Errorf("bundle build: the vmlinux of %s has no PVH note, so QEMU could not boot it; pick a kernel built with CONFIG_PVH=y", m.KernelPackage)
	}
	if err := os.WriteFile(filepath.Join(tmp, KernelFile), vmlinux, 0o644); err != nil {
		return fmt.Errorf("bundle build: writing vmlinux: %w", err)
	}

	step("modules", "indexing the %s modules tree", u.Version)
	modBase := filepath.Join(tmp, ModulesBase)
	modDir := filepath.Join(modBase, "lib", "modules", u.Version)
	if err := os.MkdirAll(filepath.Dir(modDir), 0o755); err != nil {
		return err
	}
	if err := os.Rename(u.ModulesDir, modDir); err != nil {
		return fmt.Errorf("bundle build: moving the modules tree: %w", err)
	}
	if err := kernel.Depmod(ctx, opts.Runner, modBase, u.Version); err != nil {
		return err
	}
	m.Modules = filepath.ToSlash(filepath.Join(ModulesBase, "lib", "modules", u.Version))

	step("initramfs", "building the initramfs")
	res, err := initramfs.Build(initramfs.Options{ModulesDir: modDir, Busybox: opts.Busybox, Output: filepath.Join(tmp, InitrdFile)})
	if err != nil {
		return err
	}
	step("initramfs", "initramfs: %d modules, %d bytes", len(res.Modules), res.Size)
	return nil
}

// installKeyPair carries the existing key pair over into tmp, or makes a new
// one when there is none. A key that exists but cannot be read is an error,
// never silently replaced: images trust it.
func installKeyPair(dir string, existing *Bundle, tmp string, step func(string, string, ...any)) error {
	priv, pub := filepath.Join(dir, SSHKeyFile), filepath.Join(dir, SSHPubKeyFile)
	if existing != nil && existing.SSHKeyPath != "" {
		priv, pub = existing.SSHKeyPath, existing.SSHPubKeyPath
	}
	dstPriv, dstPub := filepath.Join(tmp, SSHKeyFile), filepath.Join(tmp, SSHPubKeyFile)
	privData, err := os.ReadFile(priv)
	switch {
	case errors.Is(err, os.ErrNotExist):
		step("ssh-key", "generating a new ed25519 key pair")
		return generateKeyPair(dstPriv, dstPub)
	case err != nil:
		return fmt.Errorf("bundle build: reading the existing SSH key %s: %w (images trust it: fix its permissions)", priv, err)
	}
	signer, err := ssh.ParsePrivateKey(privData)
	if err != nil {
		return fmt.Errorf("bundle build: the existing SSH key %s is unreadable (%v); images trust it, so banger will not replace it: restore it, or delete it to generate a new pair (then rebuild images)", priv, err)
	}
	step("ssh-key", "keeping the existing key pair %s", priv)
	if err := writeFileMode(dstPriv, privData, 0o600); err != nil {
		return err
	}
	if _, err := readKeyPair(priv, pub); err == nil {
		return copyFile(pub, dstPub, 0o644)
	}
	// The public half is missing or wrong: derive it from the private key.
	return writeFileMode(dstPub, authorizedKey(signer.PublicKey()), 0o644)
}

func generateKeyPair(privPath, pubPath string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "banger")
	if err != nil {
		return err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return err
	}
	if err := writeFileMode(privPath, pem.EncodeToMemory(block), 0o600); err != nil {
		return err
	}
	return writeFileMode(pubPath, authorizedKey(sshPub), 0o644)
}

// authorizedKey renders a public key as an authorized_keys line.
func authorizedKey(k ssh.PublicKey) []byte {
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n")
	return []byte(line + " banger\n")
}

// writeManifest writes bundle.json atomically (temp file, fsync, rename).
func writeManifest(dir string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	f, err := os.CreateTemp(dir, ".bundle.json-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, ManifestName))
	}
	if err != nil {
		return fmt.Errorf("bundle build: writing %s: %w", ManifestName, err)
	}
	return nil
}

// checkBuilt loads and checks the freshly built tree before it is installed.
func checkBuilt(tmp string) error {
	b, err := Load(tmp)
	if err != nil {
		return fmt.Errorf("bundle build produced an unloadable bundle: %w", err)
	}
	if errs := b.Check(); len(errs) > 0 {
		return fmt.Errorf("bundle build produced a bundle that fails its checks: %w", errors.Join(errs...))
	}
	return nil
}

// install swaps tmp in as dir. The old bundle is renamed aside first and
// restored if the swap fails; its default rootfs moves into the new one.
func install(tmp, dir, keepRootfs string) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("bundle build: installing %s: %w", dir, err)
		}
		return nil
	}
	if keepRootfs != "" {
		if err := os.Rename(filepath.Join(dir, keepRootfs), filepath.Join(tmp, keepRootfs)); err != nil {
			return fmt.Errorf("bundle build: carrying over the rootfs: %w", err)
		}
	}
	restoreRootfs := func() {
		if keepRootfs != "" {
			os.Rename(filepath.Join(tmp, keepRootfs), filepath.Join(dir, keepRootfs))
		}
	}
	old := tmp + ".old"
	if err := os.Rename(dir, old); err != nil {
		restoreRootfs()
		return fmt.Errorf("bundle build: moving the old bundle aside: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.Rename(old, dir)
		restoreRootfs()
		return fmt.Errorf("bundle build: installing %s: %w", dir, err)
	}
	return os.RemoveAll(old)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode) // the umask must not weaken or widen it
}

func writeFileMode(p string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(p, data, mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}
