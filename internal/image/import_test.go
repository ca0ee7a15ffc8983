package image_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/image"
	"github.com/banger-dev/banger/internal/image/imagetest"
	"github.com/banger-dev/banger/internal/ociimage/registrytest"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sysexec"
)

// cachedBaseTree is the newest Debian base tree archive the shared test
// image was built from.
func cachedBaseTree(t *testing.T) string {
	t.Helper()
	tars, _ := filepath.Glob(filepath.Join(imagetest.CacheDir(), "build", "rootfs", "*.tar"))
	if len(tars) == 0 {
		t.Fatal("no cached base tree archive under " + imagetest.CacheDir())
	}
	sort.Slice(tars, func(i, j int) bool {
		a, _ := os.Stat(tars[i])
		b, _ := os.Stat(tars[j])
		return a.ModTime().After(b.ModTime())
	})
	return tars[0]
}

// appLayer is a small layer over the Debian base: a file, a hard link to
// it, a whiteout of a base file (/etc/issue.net) and a directory owned by
// a non-root user.
func appLayer(t *testing.T) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	body := "served by the imported image\n"
	for _, h := range []*tar.Header{
		{Name: "srv/", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 33, Gid: 33, ModTime: mt},
		{Name: "srv/index.html", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 33, Gid: 33, Size: int64(len(body)), ModTime: mt},
		{Name: "srv/index-link.html", Typeflag: tar.TypeLink, Linkname: "srv/index.html", ModTime: mt},
		{Name: "etc/.wh.issue.net", Typeflag: tar.TypeReg, ModTime: mt},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(body))
		}
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestImportFromRegistry pushes a Debian image (the cached base tree as one
// layer, an application layer above it) to a real registry and imports it:
// the ext4 image has the application files with their owners, the hard link
// as one inode, the whiteout applied, banger's guest layer, and the source
// and digest beside it, a package installed with the image's apt
// (--packages); a second import of the same digest reads no layer.
func TestImportFromRegistry(t *testing.T) {
	shared := imagetest.Get(t) // root, not -short; inputs ready
	addr := registrytest.Start(t)
	base, err := tarball.LayerFromFile(cachedBaseTree(t), tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64",
		Config: v1.Config{Cmd: []string{"/lib/systemd/systemd"}}})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, base, appLayer(t)); err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(addr + "/banger/debian:test")
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	digest, _ := img.Digest()

	root := t.TempDir()
	layout := paths.UnderRoot(root)
	layout.CacheDir = filepath.Join(root, "cache")
	b := &image.Builder{Layout: layout}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var steps []string
	progress := func(p api.Progress) { steps = append(steps, p.Step+": "+p.Message) }
	req := image.ImportRequest{Name: "deb", Packages: []string{"hello"}, PublicKeyPath: shared.PublicKeyPath, AgentPath: shared.AgentPath,
		OutputPath: filepath.Join(root, "images", "deb.ext4")}
	opened, err := b.OpenRef(ctx, ref.String())
	if err != nil {
		t.Fatal(err)
	}
	if opened.Digest != digest.String() {
		t.Errorf("opened digest %s, pushed %s", opened.Digest, digest)
	}
	out, err := b.Import(ctx, req, opened, progress)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, strings.Join(steps, "\n"))
	}
	if out.Source != ref.String() || out.Digest != digest.String() || out.Distro != "oci" {
		t.Errorf("imported %+v", out)
	}
	if o, ok := image.ReadOrigin(out.RootfsPath); !ok || o.Digest != digest.String() || o.Init != "systemd" {
		t.Errorf("origin beside the image: %+v, %v", o, ok)
	}

	debugfs := func(req string) string {
		res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: []string{"debugfs", "-R", req, out.RootfsPath}})
		if err != nil {
			t.Fatalf("debugfs %s: %v", req, err)
		}
		return string(res.Stdout) + string(res.Stderr)
	}
	inode := regexp.MustCompile(`Inode: (\d+)`)
	a, l := inode.FindStringSubmatch(debugfs("stat /srv/index.html")), inode.FindStringSubmatch(debugfs("stat /srv/index-link.html"))
	if a == nil || l == nil || a[1] != l[1] {
		t.Errorf("the hard link is not one inode: %v %v", a, l)
	}
	if st := debugfs("stat /srv"); !strings.Contains(st, "User:    33") || !strings.Contains(st, "Mode:  0750") {
		t.Errorf("/srv lost its owner or mode:\n%s", st)
	}
	if st := debugfs("stat /etc/issue.net"); !strings.Contains(st, "File not found") {
		t.Errorf("/etc/issue.net survived its whiteout:\n%s", st)
	}
	if st := debugfs("stat /etc/issue"); strings.Contains(st, "File not found") {
		t.Errorf("the base's /etc/issue is missing:\n%s", st)
	}
	for _, p := range []string{"/usr/bin/hello", "/usr/local/bin/banger-agent", "/etc/ssh/banger_authorized_keys", "/etc/systemd/system/multi-user.target.wants/banger-agent.service"} {
		if st := debugfs("stat " + p); strings.Contains(st, "File not found") {
			t.Errorf("banger's guest layer lacks %s", p)
		}
	}
	checks := b.VerifyOffline(ctx, out.RootfsPath, shared.PublicKeyPath)
	for _, c := range checks {
		if c.Status == api.CheckFail {
			t.Errorf("offline check %s: %s (fix: %s)", c.Name, c.Detail, c.Fix)
		}
	}

	// Same digest again: the flattened tree comes from the cache.
	steps = nil
	again, err := b.OpenRef(ctx, ref.String())
	if err != nil {
		t.Fatal(err)
	}
	req.OutputPath = filepath.Join(root, "images", "deb2.ext4")
	req.Name, req.Packages = "deb2", nil
	if _, err := b.Import(ctx, req, again, progress); err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(steps, "\n"); !strings.Contains(s, "reusing the cached tree of "+digest.String()) || strings.Contains(s, "reading the layers") {
		t.Errorf("the second import of %s read the layers again:\n%s", digest, s)
	}
}
