// Package initramfs builds the small gzip-compressed newc initramfs banger
// boots Debian kernels with: a static busybox, an /init script and only the
// kernel modules needed to reach the root disk (virtio, vsock, ext4).
package initramfs

import (
	"bufio"
	"bytes"
	"debug/elf"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

//go:embed init.sh
var initScript []byte

// DefaultModules are the modules a Debian kernel needs as modules to boot a
// banger VM. crc32c_generic is listed because ext4 and jbd2 reach it only
// through the crypto API (a softdep), which modules.dep does not record.
var DefaultModules = []string{
	"virtio_mmio", "virtio_blk", "virtio_net", "virtio_console",
	"vmw_vsock_virtio_transport", "crc32c_generic", "ext4",
}

// DefaultBusybox is where Debian's busybox-static package puts busybox.
const DefaultBusybox = "/bin/busybox"

// ModuleListPath is the file in the archive that lists the modules /init
// loads, one path under /lib/modules per line, in load order.
const ModuleListPath = "etc/banger/modules"

// applets get a symlink in /bin; /init and a rescue shell use only these.
var applets = []string{
	"sh", "cat", "echo", "ls", "mkdir", "mount", "umount", "insmod", "lsmod",
	"sleep", "switch_root", "findfs", "reboot", "poweroff", "setsid", "cttyhack",
	"dmesg", "tr", "blkid",
}

// Options says what to build.
type Options struct {
	ModulesDir string   // the kernel's lib/modules/<version>, with modules.dep (run depmod first)
	Modules    []string // modules to load at boot; DefaultModules when nil
	Busybox    string   // a static busybox; DefaultBusybox when empty
	Output     string   // the initrd file to write
}

// Result describes a built initramfs.
type Result struct {
	Version string   // kernel version (the modules dir's name)
	Modules []string // module files included, relative to /lib/modules, in load order
	Builtin []string // requested modules built into the kernel (nothing to load)
	Size    int64    // compressed size in bytes
}

// Build writes the initramfs to opts.Output. The file appears only when
// complete: it is written beside the target and renamed.
func Build(opts Options) (*Result, error) {
	if opts.ModulesDir == "" || opts.Output == "" {
		return nil, errors.New("initramfs: ModulesDir and Output are required")
	}
	if opts.Modules == nil {
		opts.Modules = DefaultModules
	}
	if opts.Busybox == "" {
		opts.Busybox = DefaultBusybox
	}
	busybox, err := readStaticBusybox(opts.Busybox)
	if err != nil {
		return nil, err
	}
	res := &Result{Version: filepath.Base(filepath.Clean(opts.ModulesDir))}
	mods, builtin, err := resolveModules(opts.ModulesDir, opts.Modules)
	if err != nil {
		return nil, err
	}
	res.Builtin = builtin

	tmp, err := os.CreateTemp(filepath.Dir(opts.Output), ".initrd-*")
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	gz, err := gzip.NewWriterLevel(bw, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	cw := NewWriter(gz)
	add := func(e Entry) {
		if err == nil {
			err = cw.Add(e)
		}
	}
	for _, d := range []string{"bin", "dev", "etc", "etc/banger", "lib", "lib/modules", "newroot", "proc", "sys"} {
		add(Entry{Name: d, Mode: TypeDir | 0o755})
	}
	// The kernel opens /dev/console for /init before anything is mounted.
	add(Entry{Name: "dev/console", Mode: TypeChar | 0o600, RdevMaj: 5, RdevMin: 1})
	add(Entry{Name: "dev/null", Mode: TypeChar | 0o666, RdevMaj: 1, RdevMin: 3})
	add(Entry{Name: "init", Mode: TypeReg | 0o755, Data: initScript})
	add(Entry{Name: "bin/busybox", Mode: TypeReg | 0o755, Data: busybox})
	for _, a := range applets {
		add(Entry{Name: "bin/" + a, Mode: TypeSymlink | 0o777, Data: []byte("busybox")})
	}
	// Module directories first (parents before children), then the files.
	var list bytes.Buffer
	dirs := map[string]bool{}
	for _, m := range mods {
		rel := path.Join(res.Version, path.Dir(m), plainModuleName(path.Base(m)))
		for d := path.Dir(rel); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
		res.Modules = append(res.Modules, rel)
		list.WriteString(rel + "\n")
	}
	sortedDirs := make([]string, 0, len(dirs))
	for d := range dirs {
		sortedDirs = append(sortedDirs, d)
	}
	sort.Strings(sortedDirs)
	for _, d := range sortedDirs {
		add(Entry{Name: "lib/modules/" + d, Mode: TypeDir | 0o755})
	}
	for i, m := range mods {
		data, rerr := readModule(filepath.Join(opts.ModulesDir, filepath.FromSlash(m)))
		if rerr != nil {
			return nil, rerr
		}
		add(Entry{Name: "lib/modules/" + res.Modules[i], Mode: TypeReg | 0o644, Data: data})
	}
	add(Entry{Name: ModuleListPath, Mode: TypeReg | 0o644, Data: list.Bytes()})
	if err == nil {
		err = cw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("initramfs: writing %s: %w", opts.Output, err)
	}
	st, err := os.Stat(tmp.Name())
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), opts.Output); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	ok = true
	res.Size = st.Size()
	return res, nil
}

// resolveModules reads modules.dep (and modules.builtin) under dir and
// returns the module files to include, in load order.
func resolveModules(dir string, names []string) (mods, builtin []string, err error) {
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, nil, fmt.Errorf("initramfs: %w (the modules tree needs its index: run `depmod -b <root> <version>`)", err)
	}
	defer f.Close()
	idx, err := ParseModulesDep(f)
	if err != nil {
		return nil, nil, fmt.Errorf("initramfs: %s: %w", f.Name(), err)
	}
	isBuiltin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			isBuiltin[ModuleName(l)] = true
		}
	}
	var load []string
	for _, n := range names {
		if _, ok := idx.Path(n); !ok && isBuiltin[ModuleName(n)] {
			builtin = append(builtin, n)
			continue
		}
		load = append(load, n)
	}
	mods, err = idx.Resolve(load)
	if err != nil {
		return nil, nil, fmt.Errorf("initramfs: %w", err)
	}
	return mods, builtin, nil
}

// readModule returns a module's bytes, decompressed when the kernel ships
// it compressed (.ko.xz/.ko.zst/.ko.gz): busybox's insmod may be built
// without decompression support, and a plain .ko always loads.
func readModule(p string) (data []byte, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("initramfs: module listed in modules.dep is missing: %w", err)
	}
	defer f.Close()
	base := filepath.Base(p)
	var r io.Reader = f
	switch {
	case strings.HasSuffix(base, ".ko.xz"):
		r, err = xz.NewReader(bufio.NewReader(f))
	case strings.HasSuffix(base, ".ko.zst"):
		var d *zstd.Decoder
		d, err = zstd.NewReader(f)
		if err == nil {
			defer d.Close()
			r = d
		}
	case strings.HasSuffix(base, ".ko.gz"):
		r, err = gzip.NewReader(f)
	}
	if err == nil {
		data, err = io.ReadAll(r)
	}
	if err != nil {
		return nil, fmt.Errorf("initramfs: reading module %s: %w", p, err)
	}
	return data, nil
}

// plainModuleName is a module's file name once decompressed.
func plainModuleName(base string) string {
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		if strings.HasSuffix(base, ".ko"+ext) {
			return strings.TrimSuffix(base, ext)
		}
	}
	return base
}

// readStaticBusybox insists on a statically linked x86-64 busybox: the
// initramfs has no C library.
func readStaticBusybox(p string) ([]byte, error) {
	fix := "install Debian's busybox-static package (apt-get install busybox-static)"
	f, err := elf.Open(p)
	if err != nil {
		return nil, fmt.Errorf("initramfs: busybox %s: %v; %s", p, err, fix)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("initramfs: busybox %s is for %v, not x86-64; %s", p, f.Machine, fix)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("initramfs: busybox %s is dynamically linked; %s", p, fix)
		}
	}
	return os.ReadFile(p)
}
