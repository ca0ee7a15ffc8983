package initramfs

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/banger-dev/banger/internal/kernel/kerneltest"
	"github.com/banger-dev/banger/internal/sysexec"
)

const fabricatedDep = `kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/crypto/crc32c_generic.ko.xz:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/net/virtio_net.ko.zst: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/sound/unrelated.ko: kernel/drivers/virtio/virtio.ko
`

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/arch/x86/crypto/crc32c-intel.ko": "crc32c_intel",
		"kernel/fs/ext4/ext4.ko.xz":              "ext4",
		"virtio-net":                             "virtio_net",
		"vsock.ko.zst":                           "vsock",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResolveFabricated(t *testing.T) {
	idx, err := ParseModulesDep(strings.NewReader(fabricatedDep))
	if err != nil {
		t.Fatal(err)
	}
	got, err := idx.Resolve([]string{"virtio_net", "ext4", "virtio-blk", "ext4"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko",
		"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/net/virtio_net.ko.zst",
		"kernel/lib/crc16.ko", "kernel/fs/mbcache.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/ext4/ext4.ko",
		"kernel/drivers/block/virtio_blk.ko",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Resolve order:\n got %q\nwant %q", got, want)
	}

	if _, err := idx.Resolve([]string{"btrfs"}); err == nil || !strings.Contains(err.Error(), "btrfs is not in modules.dep") {
		t.Fatalf("unknown module: %v", err)
	}
	cyc, err := ParseModulesDep(strings.NewReader("a.ko: b.ko\nb.ko: a.ko\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cyc.Resolve([]string{"a"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("cycle: %v", err)
	}
	dangling, _ := ParseModulesDep(strings.NewReader("a.ko: gone.ko\n"))
	if _, err := dangling.Resolve([]string{"a"}); err == nil || !strings.Contains(err.Error(), "no line of its own") {
		t.Fatalf("dangling: %v", err)
	}
	for _, bad := range []string{"no colon here\n", "/abs/a.ko:\n", "a.ko: ../../etc/passwd\n"} {
		if _, err := ParseModulesDep(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseModulesDep(%q) accepted", bad)
		}
	}
}

func TestCpioRoundTripAndCpio1(t *testing.T) {
	entries := []Entry{
		{Name: "bin", Mode: TypeDir | 0o755},
		{Name: "bin/hello", Mode: TypeReg | 0o755, Data: []byte("#!/bin/sh\necho hi\n")},
		{Name: "bin/sh", Mode: TypeSymlink | 0o777, Data: []byte("busybox")},
		{Name: "dev", Mode: TypeDir | 0o755},
		{Name: "dev/console", Mode: TypeChar | 0o600, RdevMaj: 5, RdevMin: 1},
		{Name: "empty", Mode: TypeReg | 0o644},
		{Name: "odd-name-len", Mode: TypeReg | 0o600, Data: []byte("abc")},
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, e := range entries {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(entries) {
		t.Fatalf("read %d entries, wrote %d", len(got), len(entries))
	}
	for i := range entries {
		g, e := got[i], entries[i]
		if g.Name != e.Name || g.Mode != e.Mode || !bytes.Equal(g.Data, e.Data) || g.RdevMaj != e.RdevMaj || g.RdevMin != e.RdevMin {
			t.Errorf("entry %d: got %+v, want %+v", i, g, e)
		}
	}
	if _, err := Read(bytes.NewReader(buf.Bytes()[:buf.Len()-20])); err == nil {
		t.Error("truncated archive accepted")
	}

	// GNU cpio must agree on the listing and the types.
	if _, err := sysexec.LookPath("cpio"); err != nil {
		t.Skip("cpio(1) not installed; skipping the cross-check")
	}
	res, err := sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{Argv: []string{"cpio", "-t", "-v", "--quiet"}, Stdin: bytes.NewReader(buf.Bytes())})
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.Stdout)
	for _, want := range []string{"drwxr-xr-x", "-rwxr-xr-x", "lrwxrwxrwx", "bin/sh -> busybox", "crw-------", "5,", "odd-name-len"} {
		if !strings.Contains(out, want) {
			t.Errorf("cpio -tv output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != len(entries) {
		t.Errorf("cpio -t lists %d entries, want %d:\n%s", n, len(entries), out)
	}
}

// readInitrd decompresses and parses a built initrd.
func readInitrd(t *testing.T, p string) map[string]Entry {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := Read(zr)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]Entry{}
	for _, e := range entries {
		if _, dup := m[e.Name]; dup {
			t.Errorf("duplicate entry %s", e.Name)
		}
		m[e.Name] = e
	}
	return m
}

func kos(m map[string]Entry) []string {
	var out []string
	for n, e := range m {
		if e.IsRegular() && strings.HasSuffix(n, ".ko") {
			out = append(out, strings.TrimPrefix(n, "lib/modules/"))
		}
	}
	sort.Strings(out)
	return out
}

func TestBuildFabricatedTree(t *testing.T) {
	mods := filepath.Join(t.TempDir(), "6.1.0-test")
	contents := map[string][]byte{}
	for _, line := range strings.Split(strings.TrimSpace(fabricatedDep), "\n") {
		p, _, _ := strings.Cut(line, ":")
		plain := []byte("module " + p)
		contents[p] = plain
		var data []byte
		switch {
		case strings.HasSuffix(p, ".xz"):
			var b bytes.Buffer
			w, _ := xz.NewWriter(&b)
			w.Write(plain)
			w.Close()
			data = b.Bytes()
		case strings.HasSuffix(p, ".zst"):
			enc, _ := zstd.NewWriter(nil)
			data = enc.EncodeAll(plain, nil)
		default:
			data = plain
		}
		if err := os.MkdirAll(filepath.Join(mods, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mods, p), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(mods, "modules.dep"), []byte(fabricatedDep), 0o644)
	os.WriteFile(filepath.Join(mods, "modules.builtin"), []byte("kernel/drivers/virtio/virtio_mmio.ko\n"), 0o644)

	out := filepath.Join(t.TempDir(), "initrd.img")
	res, err := Build(Options{ModulesDir: mods, Output: out,
		Modules: []string{"virtio_mmio", "virtio_net", "crc32c_generic", "ext4"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Builtin, []string{"virtio_mmio"}) {
		t.Errorf("Builtin = %q", res.Builtin)
	}
	arc := readInitrd(t, out)
	want := []string{
		"6.1.0-test/kernel/crypto/crc32c_generic.ko", "6.1.0-test/kernel/drivers/net/net_failover.ko",
		"6.1.0-test/kernel/drivers/net/virtio_net.ko", "6.1.0-test/kernel/drivers/virtio/virtio.ko",
		"6.1.0-test/kernel/drivers/virtio/virtio_ring.ko", "6.1.0-test/kernel/fs/ext4/ext4.ko",
		"6.1.0-test/kernel/fs/jbd2/jbd2.ko", "6.1.0-test/kernel/fs/mbcache.ko",
		"6.1.0-test/kernel/lib/crc16.ko", "6.1.0-test/kernel/net/core/failover.ko",
	}
	if got := kos(arc); !reflect.DeepEqual(got, want) {
		t.Fatalf("modules in archive:\n got %q\nwant %q", got, want)
	}
	// Compressed modules are stored decompressed.
	if got := string(arc["lib/modules/6.1.0-test/kernel/drivers/net/virtio_net.ko"].Data); got != string(contents["kernel/drivers/net/virtio_net.ko.zst"]) {
		t.Errorf("virtio_net.ko holds %q", got)
	}
	if got := string(arc["lib/modules/6.1.0-test/kernel/crypto/crc32c_generic.ko"].Data); got != string(contents["kernel/crypto/crc32c_generic.ko.xz"]) {
		t.Errorf("crc32c_generic.ko holds %q", got)
	}
	list := strings.Fields(string(arc[ModuleListPath].Data))
	if !reflect.DeepEqual(list, res.Modules) || len(list) != len(want) {
		t.Errorf("module list %q, result %q", list, res.Modules)
	}
	if slices.Index(list, "6.1.0-test/kernel/fs/jbd2/jbd2.ko") > slices.Index(list, "6.1.0-test/kernel/fs/ext4/ext4.ko") {
		t.Error("jbd2 must load before ext4")
	}
	checkBase(t, arc)

	// A failed build leaves no output behind.
	out2 := filepath.Join(t.TempDir(), "initrd.img")
	if _, err := Build(Options{ModulesDir: mods, Output: out2, Modules: []string{"nonexistent"}}); err == nil {
		t.Fatal("unknown module accepted")
	}
	if left, _ := filepath.Glob(filepath.Dir(out2) + "/*"); len(left) != 0 {
		t.Fatalf("failed build left %q", left)
	}
	if _, err := Build(Options{ModulesDir: mods, Output: out2, Busybox: "/bin/true"}); err == nil || !strings.Contains(err.Error(), "busybox-static") {
		t.Fatalf("dynamic busybox: %v", err)
	}
}

// checkBase asserts what /init needs is present.
func checkBase(t *testing.T, arc map[string]Entry) {
	t.Helper()
	if e := arc["init"]; !e.IsRegular() || e.Mode&0o111 == 0 || !bytes.HasPrefix(e.Data, []byte("#!/bin/sh")) {
		t.Errorf("/init missing or not an executable script: %+v", e.Mode)
	}
	if e := arc["bin/busybox"]; !e.IsRegular() || !bytes.HasPrefix(e.Data, []byte("\x7fELF")) {
		t.Error("bin/busybox missing")
	}
	for _, a := range []string{"sh", "mount", "insmod", "switch_root", "sleep", "reboot", "setsid", "cttyhack", "findfs"} {
		if e := arc["bin/"+a]; !e.IsSymlink() || e.Linkname != "busybox" {
			t.Errorf("bin/%s is not a busybox symlink", a)
		}
	}
	if e := arc["dev/console"]; e.Mode&0o170000 != TypeChar || e.RdevMaj != 5 || e.RdevMin != 1 {
		t.Errorf("dev/console is not the console device: %+v", e)
	}
}

// TestBuildDebianModules builds from the real Debian kernel's modules tree
// and checks the archive holds exactly the modules kmod itself would load.
func TestBuildDebianModules(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the real kernel")
	}
	u := kerneltest.Unpacked(t)
	out := filepath.Join(t.TempDir(), "initrd.img")
	res, err := Build(Options{ModulesDir: u.ModulesDir, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("initrd %d bytes, %d modules", res.Size, len(res.Modules))
	if res.Size > 8<<20 {
		t.Errorf("initrd is %d bytes, want < 8 MiB", res.Size)
	}
	arc := readInitrd(t, out)
	checkBase(t, arc)

	modprobe := "/usr/sbin/modprobe"
	if p, err := sysexec.LookPath("modprobe"); err == nil {
		modprobe = p
	}
	if _, err := os.Stat(modprobe); err != nil {
		t.Skip("modprobe (kmod) not installed; cannot cross-check the module set")
	}
	base := filepath.Dir(filepath.Dir(filepath.Dir(u.ModulesDir)))
	want := map[string]bool{}
	for _, m := range DefaultModules {
		res, err := sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{Argv: []string{modprobe, "--show-depends", "-d", base, "-S", u.Version, m}})
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "insmod" {
				continue
			}
			rel, err := filepath.Rel(filepath.Dir(u.ModulesDir), f[1])
			if err != nil {
				t.Fatal(err)
			}
			// modprobe also follows ext4's softdep on crypto-crc32c to every
			// provider; we ship the generic one only (always usable).
			if ModuleName(rel) == "crc32c_intel" {
				continue
			}
			want[rel] = true
		}
	}
	var wantList []string
	for k := range want {
		wantList = append(wantList, k)
	}
	sort.Strings(wantList)
	if got := kos(arc); !reflect.DeepEqual(got, wantList) {
		t.Fatalf("modules in archive:\n got %q\nwant %q (from modprobe --show-depends)", got, wantList)
	}
}

// BenchmarkBuildDebian reports how long the initramfs for the real Debian
// kernel takes to build and how big it is.
func BenchmarkBuildDebian(b *testing.B) {
	u := kerneltest.Unpacked(b)
	out := filepath.Join(b.TempDir(), "initrd.img")
	var size int64
	for b.Loop() {
		res, err := Build(Options{ModulesDir: u.ModulesDir, Output: out})
		if err != nil {
			b.Fatal(err)
		}
		size = res.Size
	}
	b.ReportMetric(float64(size), "bytes")
}
