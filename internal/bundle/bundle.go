// Package bundle loads, checks and builds banger's runtime bundle: the
// default kernel (ELF vmlinux), initramfs, kernel modules tree, optional
// default rootfs, guest agent binary and the SSH key pair images trust.
package bundle

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/kernel"
	"github.com/banger-dev/banger/internal/sysexec"
)

// ManifestName is the bundle's description file.
const ManifestName = "bundle.json"

// SchemaVersion is the manifest version this banger reads and writes.
const SchemaVersion = 1

// Names used by `banger bundle build` and by the legacy fixed-name layout.
const (
	KernelFile      = "vmlinux"
	InitrdFile      = "initrd.img"
	ModulesBase     = "modules" // modules/lib/modules/<version>
	RootfsFile      = "rootfs.ext4"
	AgentFile       = "banger-agent"
	LegacyAgentFile = "ping-helper" // the agent's name before it was the agent
	SSHKeyFile      = "id_ed25519"
	SSHPubKeyFile   = "id_ed25519.pub"
)

// fixHint ends every load error: rebuilding is always a way out.
const fixHint = "run `banger bundle build` to make a fresh bundle"

// Manifest is bundle.json. Paths are relative to the bundle directory.
type Manifest struct {
	SchemaVersion int    `json:"schema_version"`
	Kernel        string `json:"kernel"`
	KernelVersion string `json:"kernel_version,omitempty"`
	KernelPackage string `json:"kernel_package,omitempty"` // Debian package the kernel came from
	Initrd        string `json:"initrd,omitempty"`
	Modules       string `json:"modules,omitempty"` // a directory: lib/modules/<version>
	Rootfs        string `json:"rootfs"`            // optional default rootfs; "" = none
	Agent         string `json:"agent"`
	AgentSHA256   string `json:"agent_sha256,omitempty"` // of the agent binary copied in
	SSHKey        string `json:"ssh_key"`
	SSHPubKey     string `json:"ssh_pub_key"`
}

// Bundle is a loaded bundle; every path is absolute.
type Bundle struct {
	Dir           string
	Legacy        bool // loaded from the fixed-name layout without bundle.json
	KernelPath    string
	KernelVersion string
	InitrdPath    string // "" when the bundle has none
	ModulesDir    string // "" when the bundle has none
	RootfsPath    string // "" when the bundle has none
	AgentPath     string
	SSHKeyPath    string
	SSHPubKeyPath string
	KernelPackage string // "" when unknown (legacy or hand-made bundles)
	AgentSHA256   string // "" when unknown
}

// Info is the wire form of the bundle.
func (b *Bundle) Info() api.BundleInfo {
	return api.BundleInfo{
		Dir: b.Dir, Legacy: b.Legacy, KernelPath: b.KernelPath, KernelVersion: b.KernelVersion,
		InitrdPath: b.InitrdPath, ModulesDir: b.ModulesDir, RootfsPath: b.RootfsPath,
		AgentPath: b.AgentPath, SSHKeyPath: b.SSHKeyPath, SSHPubKeyPath: b.SSHPubKeyPath,
	}
}

// Load reads the bundle in dir: from bundle.json when present, else from
// the legacy fixed-name layout. Every named entry must exist, be of the
// right kind, be readable and stay inside dir (no absolute paths, no "..",
// no symlinks leading out).
func Load(dir string) (*Bundle, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no runtime bundle at %s: %s", abs, fixHint)
		}
		return nil, fmt.Errorf("runtime bundle %s: %w", abs, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("runtime bundle %s is not a directory: point bundle_dir at the bundle directory, or %s", abs, fixHint)
	}
	data, err := os.ReadFile(filepath.Join(abs, ManifestName))
	if errors.Is(err, os.ErrNotExist) {
		return loadLegacy(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("runtime bundle %s: reading %s: %w", abs, ManifestName, err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("runtime bundle %s: %w; fix the file or %s", filepath.Join(abs, ManifestName), err, fixHint)
	}
	return fromManifest(abs, m)
}

// ParseManifest decodes and validates bundle.json's content (not the files).
func ParseManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", ManifestName, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s has data after the JSON object", ManifestName)
	}
	switch {
	case m.SchemaVersion == 0:
		return nil, fmt.Errorf("%s has no schema_version", ManifestName)
	case m.SchemaVersion > SchemaVersion:
		return nil, fmt.Errorf("%s has schema_version %d; this banger reads %d: upgrade banger", ManifestName, m.SchemaVersion, SchemaVersion)
	case m.SchemaVersion < 0:
		return nil, fmt.Errorf("%s has an invalid schema_version %d", ManifestName, m.SchemaVersion)
	}
	for _, f := range []struct{ entry, rel string }{
		{"kernel", m.Kernel}, {"agent", m.Agent}, {"ssh_key", m.SSHKey}, {"ssh_pub_key", m.SSHPubKey},
	} {
		if f.rel == "" {
			return nil, fmt.Errorf("%s has no %q entry", ManifestName, f.entry)
		}
	}
	for _, f := range []struct{ entry, rel string }{
		{"kernel", m.Kernel}, {"initrd", m.Initrd}, {"modules", m.Modules}, {"rootfs", m.Rootfs},
		{"agent", m.Agent}, {"ssh_key", m.SSHKey}, {"ssh_pub_key", m.SSHPubKey},
	} {
		if err := checkRelative(f.entry, f.rel); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// checkRelative rejects paths that are absolute or climb out of the bundle.
func checkRelative(entry, rel string) error {
	if rel == "" {
		return nil
	}
	if strings.ContainsRune(rel, 0) {
		return fmt.Errorf("%s path %q contains a NUL byte", entry, rel)
	}
	if filepath.IsAbs(rel) {
		return fmt.Errorf("%s path %q is absolute; bundle paths must be relative to the bundle directory", entry, rel)
	}
	clean := filepath.Clean(rel)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return fmt.Errorf("%s path %q leaves the bundle directory; bundle paths must stay inside it", entry, rel)
	}
	if clean == "." {
		return fmt.Errorf("%s path %q names the bundle directory itself", entry, rel)
	}
	return nil
}

func fromManifest(dir string, m *Manifest) (*Bundle, error) {
	b := &Bundle{Dir: dir, KernelVersion: m.KernelVersion, KernelPackage: m.KernelPackage, AgentSHA256: m.AgentSHA256}
	var err error
	set := func(dst *string, entry, rel string, kind entryKind) {
		if err != nil || rel == "" {
			return
		}
		*dst, err = resolve(dir, entry, rel, kind)
	}
	set(&b.KernelPath, "kernel", m.Kernel, fileEntry)
	set(&b.InitrdPath, "initrd", m.Initrd, fileEntry)
	set(&b.ModulesDir, "modules", m.Modules, dirEntry)
	set(&b.RootfsPath, "rootfs", m.Rootfs, fileEntry)
	set(&b.AgentPath, "agent", m.Agent, fileEntry)
	set(&b.SSHKeyPath, "ssh_key", m.SSHKey, fileEntry)
	set(&b.SSHPubKeyPath, "ssh_pub_key", m.SSHPubKey, fileEntry)
	if err != nil {
		return nil, err
	}
	if b.KernelVersion == "" && b.ModulesDir != "" {
		b.KernelVersion = filepath.Base(b.ModulesDir)
	}
	return b, nil
}

// loadLegacy reads the fixed-name layout older banger versions wrote.
func loadLegacy(dir string) (*Bundle, error) {
	b := &Bundle{Dir: dir, Legacy: true}
	if _, err := os.Lstat(filepath.Join(dir, KernelFile)); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a runtime bundle: it has neither %s nor a legacy %s: %s", dir, ManifestName, KernelFile, fixHint)
	}
	var err error
	req := func(dst *string, entry, name string, kind entryKind) {
		if err == nil {
			*dst, err = resolve(dir, entry, name, kind)
		}
	}
	opt := func(dst *string, entry, name string, kind entryKind) {
		if err != nil {
			return
		}
		if _, statErr := os.Lstat(filepath.Join(dir, name)); errors.Is(statErr, os.ErrNotExist) {
			return
		}
		*dst, err = resolve(dir, entry, name, kind)
	}
	req(&b.KernelPath, "kernel", KernelFile, fileEntry)
	opt(&b.InitrdPath, "initrd", InitrdFile, fileEntry)
	opt(&b.RootfsPath, "rootfs", RootfsFile, fileEntry)
	agent := AgentFile
	if _, statErr := os.Lstat(filepath.Join(dir, agent)); errors.Is(statErr, os.ErrNotExist) {
		if _, statErr := os.Lstat(filepath.Join(dir, LegacyAgentFile)); statErr == nil {
			agent = LegacyAgentFile
		}
	}
	req(&b.AgentPath, "agent", agent, fileEntry)
	req(&b.SSHKeyPath, "ssh_key", SSHKeyFile, fileEntry)
	req(&b.SSHPubKeyPath, "ssh_pub_key", SSHPubKeyFile, fileEntry)
	var modules string
	opt(&modules, "modules", ModulesBase, dirEntry)
	if err != nil {
		return nil, err
	}
	if modules != "" {
		b.ModulesDir = legacyModulesDir(modules)
		if b.ModulesDir != modules {
			b.KernelVersion = filepath.Base(b.ModulesDir)
		}
	}
	return b, nil
}

// legacyModulesDir finds lib/modules/<version> under a legacy modules/
// directory, which held either that tree or <version>/ directly.
func legacyModulesDir(modules string) string {
	for _, base := range []string{filepath.Join(modules, "lib", "modules"), modules} {
		ents, err := os.ReadDir(base)
		if err != nil {
			continue
		}
		var vers []string
		for _, e := range ents {
			if e.IsDir() && e.Name() != "lib" {
				vers = append(vers, e.Name())
			}
		}
		if len(vers) == 1 {
			return filepath.Join(base, vers[0])
		}
	}
	return modules
}

type entryKind int

const (
	fileEntry entryKind = iota
	dirEntry
)

// resolve turns a bundle-relative path into an absolute one, checking that
// it exists, is of the right kind, is readable and (after symlinks) stays
// inside the bundle directory.
func resolve(dir, entry, rel string, kind entryKind) (string, error) {
	if err := checkRelative(entry, rel); err != nil {
		return "", fmt.Errorf("runtime bundle %s: %w; %s", dir, err, fixHint)
	}
	full := filepath.Join(dir, filepath.Clean(rel))
	fail := func(problem string) (string, error) {
		return "", fmt.Errorf("runtime bundle %s: %s %s: %s; %s", dir, entry, full, problem, fixHint)
	}
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fail("missing")
		}
		return fail(err.Error())
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fail(err.Error())
	}
	if inside, err := filepath.Rel(realDir, real); err != nil || inside == ".." || strings.HasPrefix(inside, "../") {
		return fail(fmt.Sprintf("resolves to %s, outside the bundle directory", real))
	}
	st, err := os.Stat(real)
	if err != nil {
		return fail(err.Error())
	}
	switch {
	case kind == dirEntry && !st.IsDir():
		return fail("is not a directory")
	case kind == fileEntry && !st.Mode().IsRegular():
		return fail("is not a regular file")
	}
	f, err := os.Open(real)
	if err != nil {
		return fail("unreadable: " + err.Error())
	}
	f.Close()
	return full, nil
}

// CheckError is one problem Check found, shaped for doctor.
type CheckError struct {
	Entry   string // kernel, initrd, modules, rootfs, agent, ssh_key, ssh_pub_key
	Path    string
	Problem string
	Fix     string // a command that fixes it
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("bundle %s %s: %s (fix: %s)", e.Entry, e.Path, e.Problem, e.Fix)
}

// Check validates the contents of a loaded bundle beyond existence: the
// kernel is an x86-64 ELF vmlinux with the PVH note, the modules tree is
// indexed, the rootfs is ext4, the agent is a static executable, the SSH
// private key is private (no group/other access) and matches the public key.
// An empty result means the bundle is usable.
func (b *Bundle) Check() []error {
	var errs []error
	add := func(entry, path, problem, fix string) {
		errs = append(errs, &CheckError{Entry: entry, Path: path, Problem: problem, Fix: fix})
	}
	rebuild := "banger bundle build --force"

	if err := kernel.ElfOK(b.KernelPath); err != nil {
		add("kernel", b.KernelPath, err.Error(), rebuild)
	} else if ok, err := kernel.FileHasPVHNote(b.KernelPath); err != nil || !ok {
		add("kernel", b.KernelPath, "the ELF has no PVH entry note (Xen type 18): QEMU cannot boot it; use a kernel built with CONFIG_PVH=y", rebuild)
	}
	if b.InitrdPath != "" {
		if st, err := os.Stat(b.InitrdPath); err != nil || st.Size() == 0 {
			add("initrd", b.InitrdPath, "missing or empty", rebuild)
		}
	}
	if b.ModulesDir != "" {
		if _, err := os.Stat(filepath.Join(b.ModulesDir, "modules.dep")); err != nil {
			add("modules", b.ModulesDir, "no modules.dep index: modprobe in the guest cannot resolve modules",
				fmt.Sprintf("depmod -b %s %s", filepath.Dir(filepath.Dir(filepath.Dir(b.ModulesDir))), filepath.Base(b.ModulesDir)))
		}
	}
	if b.RootfsPath != "" {
		if err := checkExt4(b.RootfsPath); err != nil {
			add("rootfs", b.RootfsPath, err.Error(), "banger image build")
		}
	}
	if err := checkAgent(b.AgentPath); err != nil {
		fix := rebuild
		if errors.Is(err, errNotExecutable) {
			fix = "chmod 755 " + b.AgentPath
		}
		add("agent", b.AgentPath, err.Error(), fix)
	}
	if err := checkKeyPair(b.SSHKeyPath, b.SSHPubKeyPath); err != nil {
		fix := "banger bundle build (keeps a valid key pair, replaces a broken one)"
		if errors.Is(err, errKeyMode) {
			fix = "chmod 600 " + b.SSHKeyPath
		}
		add("ssh_key", b.SSHKeyPath, err.Error(), fix)
	}
	return errs
}

var (
	errNotExecutable = errors.New("not executable")
	errKeyMode       = errors.New("readable by group or others")
)

// checkAgent wants a static x86-64 executable: guest images may lack the
// host's C library.
func checkAgent(p string) error {
	if err := sysexec.CheckExecutable(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return fmt.Errorf("%w: %v", errNotExecutable, err)
	}
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("not an ELF executable: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("built for %v, want x86-64", f.Machine)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return errors.New("dynamically linked; build it static (CGO_ENABLED=0)")
		}
	}
	return nil
}

func checkKeyPair(priv, pub string) error {
	st, err := os.Stat(priv)
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w (mode %v): ssh refuses such keys", errKeyMode, st.Mode().Perm())
	}
	_, err = readKeyPair(priv, pub)
	return err
}

// readKeyPair parses both halves and checks that they belong together.
func readKeyPair(priv, pub string) (ssh.Signer, error) {
	privData, err := os.ReadFile(priv)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(privData)
	if err != nil {
		return nil, fmt.Errorf("private key: %v", err)
	}
	pubData, err := os.ReadFile(pub)
	if err != nil {
		return nil, err
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey(pubData)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %v", pub, err)
	}
	if !bytes.Equal(pk.Marshal(), signer.PublicKey().Marshal()) {
		return nil, fmt.Errorf("public key %s does not belong to the private key", pub)
	}
	return signer, nil
}

// checkExt4 looks for the ext2/3/4 superblock magic (0xEF53 at byte 1080).
func checkExt4(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 1080); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("too small to be a filesystem image")
		}
		return err
	}
	if binary.LittleEndian.Uint16(magic[:]) != 0xef53 {
		return errors.New("not an ext4 filesystem image")
	}
	return nil
}
