package image

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/sysexec"
)

// TestArchiveDevicesIntoImage: the device nodes of a base tree archive are
// found, left out of the unpack list, and written into an ext4 image with
// their type, numbers, mode and owner; no root needed.
func TestArchiveDevicesIntoImage(t *testing.T) {
	for _, tool := range []string{"mkfs.ext4", "debugfs"} {
		if _, err := sysexec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install e2fsprogs)", tool)
		}
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "base.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, h := range []*tar.Header{
		{Name: "./dev/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Name: "./dev/console", Typeflag: tar.TypeChar, Mode: 0o600, Devmajor: 5, Devminor: 1},
		{Name: "./dev/loop0", Typeflag: tar.TypeBlock, Mode: 0o660, Devmajor: 7, Devminor: 0, Gid: 6},
		{Name: "./etc/hostname", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("host\n"))
		}
	}
	tw.Close()
	f.Close()

	info, err := readArchive(archive)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Devices) != 3 || info.Bytes < 4096+128<<20 {
		t.Fatalf("archive info %+v", info)
	}
	if got := excludeList(info.Devices); got != "./dev/null\n./dev/console\n./dev/loop0\n" {
		t.Errorf("exclude list %q", got)
	}

	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "img.ext4")
	if _, err := sysexec.Run(context.Background(), MkfsArgv(tree, img, 16<<20)...); err != nil {
		t.Fatal(err)
	}
	if err := writeDevices(context.Background(), sysexec.Exec{}, img, info.Devices); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string][]string{
		"/dev/null":    {"Type: character special", "Mode:  0666", "User:     0   Group:     0", "major/minor number: 01:03"},
		"/dev/console": {"Type: character special", "Mode:  0600", "major/minor number: 05:01"},
		"/dev/loop0":   {"Type: block special", "Mode:  0660", "Group:     6", "major/minor number: 07:00"},
	} {
		out, err := sysexec.Output(context.Background(), "debugfs", "-R", "stat "+p, img)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s lacks %q:\n%s", p, w, out)
			}
		}
	}
	// A second write of the same nodes fails loudly instead of passing.
	if err := writeDevices(context.Background(), sysexec.Exec{}, img, info.Devices[:1]); err == nil {
		t.Error("writing an existing device node again succeeded")
	}
}
