package guestinit

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExt4Label(t *testing.T) {
	head := make([]byte, 2048)
	binary.LittleEndian.PutUint16(head[1024+0x38:], 0xEF53)
	copy(head[1024+0x78:], "banger-root")
	if l, ok := ext4Label(head); !ok || l != "banger-root" {
		t.Errorf("ext4Label = %q, %v", l, ok)
	}
	binary.LittleEndian.PutUint16(head[1024+0x38:], 0)
	if _, ok := ext4Label(head); ok {
		t.Error("a header without the ext4 magic has a label")
	}
	if _, ok := ext4Label(head[:100]); ok {
		t.Error("a short header has a label")
	}
}

func TestFindByLabel(t *testing.T) {
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev")
	os.MkdirAll(sys, 0o755)
	os.MkdirAll(dev, 0o755)
	disk := func(name, label string) {
		os.Mkdir(filepath.Join(sys, name), 0o755)
		head := make([]byte, 4096)
		binary.LittleEndian.PutUint16(head[1024+0x38:], 0xEF53)
		copy(head[1024+0x78:], label)
		os.WriteFile(filepath.Join(dev, name), head, 0o644)
	}
	disk("vda", "rootfs")
	disk("vdb", "banger-root")
	os.Mkdir(filepath.Join(sys, "loop0"), 0o755) // no device node
	if got, err := findByLabel(sys, dev, "banger-root"); err != nil || got != filepath.Join(dev, "vdb") {
		t.Errorf("findByLabel = %q, %v", got, err)
	}
	if _, err := findByLabel(sys, dev, "other"); err == nil {
		t.Error("found a label no disk has")
	}
}

func TestParseMountInfo(t *testing.T) {
	in := "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n" +
		"23 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw\n" +
		"30 22 0:30 / /mnt/with\\040space rw - tmpfs tmpfs rw\n"
	got := parseMountInfo(strings.NewReader(in))
	for _, p := range []string{"/", "/dev", "/mnt/with space"} {
		if !got[p] {
			t.Errorf("%s not seen as mounted in %v", p, got)
		}
	}
	if got["/proc"] {
		t.Error("/proc seen as mounted")
	}
}

func TestSeedHome(t *testing.T) {
	root := t.TempDir()
	keys := filepath.Join(root, "keys")
	os.WriteFile(keys, []byte("ssh-ed25519 AAAA test\n"), 0o644)
	home := filepath.Join(root, "home")
	os.Mkdir(home, 0o700)
	if err := seedHome(home, keys); err != nil {
		t.Fatal(err)
	}
	ak := filepath.Join(home, ".ssh", "authorized_keys")
	if data, _ := os.ReadFile(ak); string(data) != "ssh-ed25519 AAAA test\n" {
		t.Errorf("authorized_keys %q", data)
	}
	// A home that has keys keeps them.
	os.WriteFile(ak, []byte("mine\n"), 0o600)
	seedHome(home, keys)
	if data, _ := os.ReadFile(ak); string(data) != "mine\n" {
		t.Errorf("existing authorized_keys replaced: %q", data)
	}
	if err := seedHome(filepath.Join(root, "other"), filepath.Join(root, "none")); err != nil {
		t.Errorf("no trusted keys in the image: %v", err)
	}
	// A group- or world-writable home would make sshd refuse the key.
	loose := filepath.Join(root, "loose")
	os.Mkdir(loose, 0o777)
	os.Chmod(loose, 0o777)
	if err := seedHome(loose, keys); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(loose); st.Mode().Perm() != 0o700 {
		t.Errorf("seeded home has mode %v, want 0700", st.Mode().Perm())
	}
}

func TestSSHDServices(t *testing.T) {
	root := t.TempDir()
	if _, _, ok := sshdServices(root); ok {
		t.Fatal("an image without /usr/sbin/sshd gets an sshd service")
	}
	os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/sbin/sshd"), []byte("#!/bin/sh\n"), 0o755)
	keygen, sshd, ok := sshdServices(root)
	if !ok || keygen != nil {
		t.Fatalf("sshd without ssh-keygen: ok %v, keygen %+v", ok, keygen)
	}
	want := []string{"/usr/sbin/sshd", "-D", "-e", "-o", "PubkeyAuthentication=yes", "-o", "PermitRootLogin=prohibit-password",
		"-o", "AuthorizedKeysFile=.ssh/authorized_keys /etc/ssh/banger_authorized_keys"}
	if strings.Join(sshd.Argv, "|") != strings.Join(want, "|") || sshd.Once {
		t.Errorf("sshd service %+v, want argv %q restarted when it dies", sshd, want)
	}
	// With ssh-keygen: one ed25519 key made once, and sshd told to use it.
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/ssh-keygen"), []byte("#!/bin/sh\n"), 0o755)
	keygen, sshd, _ = sshdServices(root)
	if keygen == nil || !keygen.Once || strings.Join(keygen.Argv, " ") != "/usr/bin/ssh-keygen -q -t ed25519 -N  -C root@banger -f /etc/ssh/ssh_host_ed25519_key" {
		t.Errorf("host keys: %+v, want a run-once ssh-keygen of the ed25519 key", keygen)
	}
	if got := strings.Join(sshd.Argv, "|"); got != strings.Join(append(want, "-o", "HostKey=/etc/ssh/ssh_host_ed25519_key"), "|") {
		t.Errorf("sshd argv %q: want the HostKey option after %q", got, want)
	}
	// The next boot finds the key and makes none.
	os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key"), []byte("key"), 0o600)
	if keygen, _, _ = sshdServices(root); keygen != nil {
		t.Errorf("a VM with its host key makes another: %+v", keygen)
	}
}

func TestPowerHelpers(t *testing.T) {
	ev := make([]byte, eventBytes)
	binary.LittleEndian.PutUint16(ev[16:], evKey)
	binary.LittleEndian.PutUint16(ev[18:], keyPower)
	binary.LittleEndian.PutUint32(ev[20:], 1)
	if !isPowerPress(ev) {
		t.Error("KEY_POWER press not recognised")
	}
	binary.LittleEndian.PutUint32(ev[20:], 0)
	if isPowerPress(ev) {
		t.Error("a release taken for a press")
	}
	dep := []byte("kernel/drivers/input/evdev.ko.xz:\nkernel/drivers/acpi/button.ko:\nkernel/drivers/acpi/button_extra.ko: kernel/x.ko\n")
	if rel, ok := findModule(dep, "button"); !ok || rel != "kernel/drivers/acpi/button.ko" {
		t.Errorf("findModule button = %q, %v", rel, ok)
	}
	if rel, ok := findModule(dep, "evdev"); !ok || rel != "kernel/drivers/input/evdev.ko.xz" {
		t.Errorf("findModule evdev = %q, %v", rel, ok)
	}
	if _, ok := findModule(dep, "missing"); ok {
		t.Error("found a module modules.dep does not list")
	}
	sys := t.TempDir()
	for n, name := range map[string]string{"event0": "AT Translated Set 2 keyboard", "event3": "Power Button"} {
		os.MkdirAll(filepath.Join(sys, n, "device"), 0o755)
		os.WriteFile(filepath.Join(sys, n, "device", "name"), []byte(name+"\n"), 0o644)
	}
	if got := findPowerButton(sys); got != "/dev/input/event3" {
		t.Errorf("findPowerButton = %q", got)
	}
}
