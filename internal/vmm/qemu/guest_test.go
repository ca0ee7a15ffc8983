package qemu

// Helpers that assemble a tiny real guest for the boot tests: the Debian
// kernel (bzImage, which QEMU microvm boots directly) plus a busybox
// initramfs written here, so no root and no loop mounts are needed.

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/kernel/kerneltest"
	"github.com/banger-dev/banger/internal/sysexec"
)

// guestModules are loaded in this order by the test init: the Debian kernel
// has virtio, virtio-mmio, virtio-blk, virtio-console, the ACPI power button
// and the input event device as modules.
var guestModules = []string{"virtio_ring", "virtio", "virtio_mmio", "virtio_blk", "virtio_console", "button", "evdev"}

// testKernel returns a bzImage and the directory holding guestModules,
// extracted from the Debian kernel package kerneltest fetches into the test
// cache shared by every package (kernel packages are 70 MB). A kernel that
// cannot be fetched skips the test, or fails it with
// BANGER_TEST_REQUIRE_KERNEL=1 (CI).
func testKernel(t *testing.T) (kernel, modDir string) {
	t.Helper()
	deb := kerneltest.Deb(t)
	// The suffix names the module set, so adding a module re-extracts.
	dir := filepath.Join(filepath.Dir(deb), "qemu-test-"+strings.TrimSuffix(filepath.Base(deb), ".deb")+"-m"+strconv.Itoa(len(guestModules)))
	if _, err := os.Stat(filepath.Join(dir, "vmlinuz")); err != nil {
		if err := extractKernel(deb, dir); err != nil {
			t.Fatalf("extract %s: %v", deb, err)
		}
	}
	return filepath.Join(dir, "vmlinuz"), dir
}

// extractKernel pulls vmlinuz and guestModules out of the package into dir,
// through a temporary directory renamed into place (concurrent runs share
// the cache).
func extractKernel(deb, dir string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".extract-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	pr, pw := io.Pipe()
	cmd, err := sysexec.Start(sysexec.Cmd{Argv: []string{"dpkg-deb", "--fsys-tarfile", deb}, Stdout: pw}, false)
	if err != nil {
		return err
	}
	go func() { pw.CloseWithError(cmd.Wait()) }()
	defer pr.Close()
	want := map[string]bool{}
	for _, m := range guestModules {
		want[m+".ko"] = true
	}
	found := 0
	tr := tar.NewReader(pr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := filepath.Base(h.Name)
		out := ""
		switch {
		case strings.HasPrefix(h.Name, "./boot/vmlinuz-"):
			out = "vmlinuz"
		case strings.Contains(h.Name, "/kernel/drivers/") && want[name]:
			out = name
		default:
			continue
		}
		f, err := os.Create(filepath.Join(tmp, out))
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		f.Close()
		if err != nil {
			return err
		}
		found++
	}
	if found != len(guestModules)+1 {
		return fmt.Errorf("found %d of the %d files needed", found, len(guestModules)+1)
	}
	if err := os.Rename(tmp, dir); err != nil && !isExist(dir) {
		return err
	}
	return nil
}

func isExist(path string) bool { _, err := os.Stat(path); return err == nil }

// guestInit runs as PID 1: it loads the modules, reports the block devices'
// sizes and the agent port on the console, writes a greeting to the
// banger.agent port, prints the marker, then by banger.test=:
//   - (absent): powers off at once;
//   - hold: waits forever (Stop must escalate past the power button);
//   - counter: prints "BANGER-COUNT i boot_id" twice a second forever (the
//     snapshot tests check it continues after a restore, without a boot);
//   - button: powers off when the ACPI power button is pressed, as systemd
//     does (any event on the power button's input device).
var guestInit = `#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in ` + strings.Join(guestModules, " ") + `; do $B insmod /lib/modules/$m.ko; done
n=0
while [ ! -e /sys/block/vdb ] && [ $n -lt 50 ]; do $B sleep 0.1; n=$((n+1)); done
echo "BANGER-DISKS vda=$($B cat /sys/block/vda/size) vdb=$($B cat /sys/block/vdb/size)"
port=none
for p in /sys/class/virtio-ports/*; do
  if [ "$($B cat $p/name)" = banger.agent ]; then port=/dev/$($B basename $p); fi
done
echo "BANGER-PORT $port"
[ -e "$port" ] && echo hello-from-guest > "$port"
if $B grep -q banger.test=button /proc/cmdline; then
  # Open the power button's event device before the marker: the host
  # presses the button as soon as it sees the marker, and an event is only
  # delivered to readers that already have the device open.
  n=0
  while [ ! -e /dev/input/event0 ] && [ $n -lt 50 ]; do $B sleep 0.1; n=$((n+1)); done
  exec 3< /dev/input/event0
fi
echo BANGER-BOOT-MARKER
if $B grep -q banger.test=counter /proc/cmdline; then
  boot=$($B cat /proc/sys/kernel/random/boot_id)
  i=0
  while true; do i=$((i+1)); echo "BANGER-COUNT $i $boot"; $B sleep 0.5; done
fi
if $B grep -q banger.test=hold /proc/cmdline; then
  while true; do $B sleep 1; done
fi
if $B grep -q banger.test=button /proc/cmdline; then
  $B head -c 24 <&3 > /dev/null
  echo BANGER-POWER-BUTTON
fi
$B poweroff -f
`

// buildInitramfs writes an uncompressed newc cpio archive.
func buildInitramfs(t *testing.T, modDir, out string) {
	t.Helper()
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("busybox-static needed for the test guest (apt-get install busybox-static): %v", err)
	}
	var w cpioWriter
	for _, d := range []string{"dev", "proc", "sys", "bin", "lib", "lib/modules"} {
		w.add(d, 0o040755, nil, 0, 0)
	}
	w.add("dev/console", 0o020600, nil, 5, 1)
	w.add("bin/busybox", 0o100755, busybox, 0, 0)
	w.add("init", 0o100755, []byte(guestInit), 0, 0)
	for _, m := range guestModules {
		b, err := os.ReadFile(filepath.Join(modDir, m+".ko"))
		if err != nil {
			t.Fatal(err)
		}
		w.add("lib/modules/"+m+".ko", 0o100644, b, 0, 0)
	}
	w.add("TRAILER!!!", 0, nil, 0, 0)
	if err := os.WriteFile(out, w.buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

type cpioWriter struct {
	buf bytes.Buffer
	ino int
}

func (w *cpioWriter) add(name string, mode int, data []byte, rmaj, rmin int) {
	w.ino++
	fmt.Fprintf(&w.buf, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		w.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rmaj, rmin, len(name)+1, 0)
	w.buf.WriteString(name)
	w.buf.WriteByte(0)
	w.pad()
	w.buf.Write(data)
	w.pad()
}

func (w *cpioWriter) pad() {
	for w.buf.Len()%4 != 0 {
		w.buf.WriteByte(0)
	}
}
