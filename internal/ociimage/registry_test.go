package ociimage

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/banger-dev/banger/internal/ociimage/registrytest"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/testneed"
)

// Images pushed to a real registry come back with the digest they were
// pushed with (a multi-platform index resolved to linux/amd64), and
// flatten as the same tree.
func TestRegistryPushOpenFlatten(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a registry")
	}
	addr := registrytest.Start(t)
	img := testImage(t)
	want, _ := img.Digest()
	ref, err := name.ParseReference(addr + "/banger/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	arm := imageFor(t, "arm64", layerOf(t, file("arm", "x")))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	multi, _ := name.ParseReference(addr + "/banger/app:multi")
	if err := remote.WriteIndex(multi, idx); err != nil {
		t.Fatalf("push the index: %v", err)
	}
	ctx := context.Background()
	for _, tag := range []string{"v1", "multi"} {
		r, err := ParseRef(addr + "/banger/app:" + tag)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Open(ctx, r, Options{LayerCache: filepath.Join(t.TempDir(), "layers")})
		if err != nil || got.Digest != want.String() {
			t.Fatalf("open %s: %v, %v; want digest %s", r, got, err, want)
		}
		_, entries := flatten(t, got.Img)
		if _, ok := entries["opt/a"]; ok || entries["data/link"].body != "old\n" || entries["opt/c"].body != "c" {
			t.Errorf("%s flattened wrong: %v", tag, entries)
		}
	}
	r, _ := ParseRef(addr + "/banger/none:v1")
	if _, err := Open(ctx, r, Options{}); err == nil || !strings.Contains(err.Error(), "fetch") {
		t.Errorf("a missing repository: %v", err)
	}
}

// The flattened stream unpacked with owners (as root) and packed with
// mkfs.ext4 -d gives a filesystem where debugfs sees the whiteouts applied,
// the hard link as one inode with two names, owners, setuid and the device.
func TestFlattenedTreeInExt4(t *testing.T) {
	if testing.Short() {
		t.Skip("packs an ext4 image")
	}
	if os.Geteuid() != 0 {
		t.Skip("unpacking with owners and device nodes needs root")
	}
	testneed.Program(t, "mkfs.ext4", "e2fsprogs")
	testneed.Program(t, "debugfs", "e2fsprogs")
	work := t.TempDir()
	archive := filepath.Join(work, "rootfs.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Flatten(testImage(t), f, work); err != nil {
		t.Fatal(err)
	}
	f.Close()
	tree := filepath.Join(work, "tree")
	os.Mkdir(tree, 0o755)
	ctx := context.Background()
	if _, err := sysexec.Run(ctx, "tar", "--extract", "--file", archive, "--directory", tree, "--same-owner", "--same-permissions", "--numeric-owner"); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(work, "rootfs.ext4")
	if _, err := sysexec.Run(ctx, "mkfs.ext4", "-F", "-q", "-d", tree, img, "16M"); err != nil {
		t.Fatal(err)
	}
	debugfs := func(req string) string {
		res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: []string{"debugfs", "-R", req, img}})
		if err != nil {
			t.Fatalf("debugfs %s: %v", req, err)
		}
		return string(res.Stdout) + string(res.Stderr) // "File not found" is on stderr
	}
	inode := func(p string) string {
		m := regexp.MustCompile(`Inode: (\d+)`).FindStringSubmatch(debugfs("stat " + p))
		if m == nil {
			t.Fatalf("debugfs stat %s: no inode", p)
		}
		return m[1]
	}
	if a, b := inode("/bin/big"), inode("/bin/big-link"); a != b {
		t.Errorf("/bin/big (inode %s) and /bin/big-link (inode %s) are not one file", a, b)
	}
	if !strings.Contains(debugfs("stat /bin/big"), "Links: 2") {
		t.Errorf("/bin/big does not have 2 links:\n%s", debugfs("stat /bin/big"))
	}
	if a, b := inode("/data/orig"), inode("/data/link"); a == b {
		t.Errorf("/data/link still links to the replaced /data/orig")
	}
	for _, p := range []string{"/etc/gone", "/opt/a", "/var", "/etc/.wh.gone", "/opt/.wh..wh..opq"} {
		if out := debugfs("stat " + p); !strings.Contains(out, "File not found") {
			t.Errorf("%s is in the image:\n%s", p, out)
		}
	}
	if out := debugfs("stat /etc/keep"); !strings.Contains(out, "User:  1000") || !strings.Contains(out, "Group:  1001") {
		t.Errorf("/etc/keep owners:\n%s", out)
	}
	if out := debugfs("stat /usr/bin/su"); !strings.Contains(out, "Mode:  04755") {
		t.Errorf("/usr/bin/su mode:\n%s", out)
	}
	if out := debugfs("stat /dev/null"); !strings.Contains(out, "Type: character special") {
		t.Errorf("/dev/null:\n%s", out)
	}
}
