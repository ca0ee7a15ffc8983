package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/banger-dev/banger/internal/ociref"
)

// entry is one tar entry a test layer holds.
type entry struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	body     string
	link     string
	major    int64
	minor    int64
}

func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func file(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, mode: 0o644, body: body}
}
func hardlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeLink, mode: 0o644, link: target}
}
func whiteout(dirName, name string) entry { return file(filepath.Join(dirName, ".wh."+name), "") }
func opaqueMarker(dirName string) entry   { return file(filepath.Join(dirName, ".wh..wh..opq"), "") }
func symlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}
func (e entry) owned(uid, gid int) entry  { e.uid, e.gid = uid, gid; return e }
func (e entry) withMode(mode int64) entry { e.mode = mode; return e }
func charDev(name string, ma, mi int64) entry {
	return entry{name: name, typ: tar.TypeChar, mode: 0o666, major: ma, minor: mi}
}

// layerOf makes a layer from entries (in that order, as a tool would
// write them: "./"-prefixed names included).
func layerOf(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid, Linkname: e.link,
			Size: int64(len(e.body)), ModTime: mt, Devmajor: e.major, Devminor: e.minor}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
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

// imageOf makes a linux/amd64 image of layers, with a config.
func imageOf(t *testing.T, layers ...v1.Layer) v1.Image { return imageFor(t, "amd64", layers...) }

func imageFor(t *testing.T, arch string, layers ...v1.Layer) v1.Image {
	t.Helper()
	// The config first: AppendLayers adds the layers' diff ids to it.
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: arch,
		Config: v1.Config{Cmd: []string{"/bin/httpd", "-f"}, Env: []string{"PATH=/bin", "GREETING=hi"}, WorkingDir: "/srv"}})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layers...); err != nil {
		t.Fatal(err)
	}
	return img
}

// testImage has what Flatten must get right: whiteouts of a file and a
// directory, an opaque directory, a name replaced by an upper layer, hard
// links (one whose target an upper layer replaced), owners, a setuid mode,
// a device node and "./" names.
func testImage(t *testing.T) v1.Image {
	return imageOf(t,
		layerOf(t,
			dir("./etc"), file("./etc/keep", "kept\n").owned(1000, 1001).withMode(0o640), file("./etc/gone", "x"),
			dir("opt"), file("opt/a", "a"), file("opt/b", "b"),
			dir("var"), dir("var/lib"), file("var/lib/x", "x"),
			dir("bin"), file("bin/big", "big content\n").withMode(0o755), hardlink("bin/big-link", "bin/big"),
			dir("data"), file("data/orig", "old\n"), hardlink("data/link", "data/orig"),
			symlink("bin/sh", "busybox"),
		),
		layerOf(t,
			whiteout("etc", "gone"), opaqueMarker("opt"), file("opt/c", "c"),
			file("data/orig", "new\n"),
			dir("usr"), dir("usr/bin"), file("usr/bin/su", "su").withMode(0o4755),
		),
		layerOf(t,
			whiteout("", "var"), dir("dev"), charDev("dev/null", 1, 3),
		),
	)
}

type flatEntry struct {
	h    tar.Header
	body string
}

func flatten(t *testing.T, img v1.Image) ([]string, map[string]flatEntry) {
	t.Helper()
	var buf bytes.Buffer
	st, err := Flatten(img, &buf, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var order []string
	got := map[string]flatEntry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		name := strings.TrimSuffix(h.Name, "/")
		if _, dup := got[name]; dup {
			t.Errorf("%s written twice", name)
		}
		order = append(order, name)
		got[name] = flatEntry{*h, string(b)}
	}
	if st.Entries != len(order) {
		t.Errorf("stats say %d entries, the stream has %d", st.Entries, len(order))
	}
	return order, got
}

func TestFlattenAppliesWhiteoutsAndKeepsLinksAndOwners(t *testing.T) {
	order, got := flatten(t, testImage(t))
	for _, gone := range []string{"etc/gone", "opt/a", "opt/b", "var", "var/lib", "var/lib/x"} {
		if _, ok := got[gone]; ok {
			t.Errorf("%s survived its whiteout", gone)
		}
	}
	for name := range got {
		if strings.Contains(name, ".wh.") {
			t.Errorf("whiteout marker %s written", name)
		}
	}
	check := func(name string, typ byte, body string) tar.Header {
		t.Helper()
		e, ok := got[name]
		if !ok {
			t.Fatalf("%s missing; have %v", name, order)
		}
		if e.h.Typeflag != typ || e.body != body {
			t.Errorf("%s: type %c body %q; want %c %q", name, e.h.Typeflag, e.body, typ, body)
		}
		return e.h
	}
	if h := check("etc/keep", tar.TypeReg, "kept\n"); h.Uid != 1000 || h.Gid != 1001 || h.Mode != 0o640 {
		t.Errorf("etc/keep: owner %d:%d mode %o; want 1000:1001 0640", h.Uid, h.Gid, h.Mode)
	}
	check("opt/c", tar.TypeReg, "c")
	check("opt", tar.TypeDir, "")
	check("data/orig", tar.TypeReg, "new\n")
	// The link's target was replaced above it: it keeps what it linked to.
	check("data/link", tar.TypeReg, "old\n")
	if h := check("bin/big-link", tar.TypeLink, ""); h.Linkname != "bin/big" {
		t.Errorf("bin/big-link links to %q", h.Linkname)
	}
	if h := check("usr/bin/su", tar.TypeReg, "su"); h.Mode != 0o4755 {
		t.Errorf("usr/bin/su mode %o, want 04755", h.Mode)
	}
	if h := check("dev/null", tar.TypeChar, ""); h.Devmajor != 1 || h.Devminor != 3 {
		t.Errorf("dev/null %d,%d", h.Devmajor, h.Devminor)
	}
	if h := check("bin/sh", tar.TypeSymlink, ""); h.Linkname != "busybox" {
		t.Errorf("bin/sh -> %q", h.Linkname)
	}
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	if pos["bin/big-link"] < pos["bin/big"] {
		t.Errorf("the hard link comes before its target: %v", order)
	}
}

func TestFlattenRefusesNamesLeavingTheTree(t *testing.T) {
	for _, e := range []entry{file("../escape", "x"), hardlink("a", "../../etc/passwd")} {
		var buf bytes.Buffer
		if _, err := Flatten(imageOf(t, layerOf(t, e)), &buf, t.TempDir()); err == nil || !strings.Contains(err.Error(), "leaves the tree") {
			t.Errorf("%s: %v; want a refusal", e.name, err)
		}
	}
	var buf bytes.Buffer
	if _, err := Flatten(imageOf(t, layerOf(t, hardlink("a", "missing"))), &buf, t.TempDir()); err == nil || !strings.Contains(err.Error(), "does not hold") {
		t.Errorf("a link to nothing: %v", err)
	}
}

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Ref
		err  string
	}{
		{"debian:12", Ref{Transport: Registry, Name: "debian:12"}, ""},
		{"127.0.0.1:5000/app:v1", Ref{Transport: Registry, Name: "127.0.0.1:5000/app:v1"}, ""},
		{"oci:/tmp/layout", Ref{Transport: OCILayout, Name: "/tmp/layout"}, ""},
		{"oci:/tmp/layout:v2", Ref{Transport: OCILayout, Name: "/tmp/layout", Tag: "v2"}, ""},
		{"oci:./with:colon/dir", Ref{Transport: OCILayout, Name: "./with:colon/dir"}, ""},
		{"docker-archive:/tmp/app.tar", Ref{Transport: DockerArchive, Name: "/tmp/app.tar"}, ""},
		{"oci:", Ref{}, "no directory"},
		{"oci:/x:", Ref{}, "empty tag"},
		{"docker-archive:", Ref{}, "no file"},
		{"Bad Ref!", Ref{}, "not an image reference"},
		{"registry.example/Team/app:v1", Ref{}, "not an image reference"}, // the registry client's grammar
		{"", Ref{}, "no image reference"},
	} {
		got, err := ParseRef(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRef(%q) = %+v, %v; want an error saying %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.in {
			t.Errorf("ParseRef(%q) = %+v (%s), %v; want %+v", tc.in, got, got, err, tc.want)
		}
	}
}

// The CLI checks a registry reference with ociref.Parse alone (it does not
// link the registry client): that check must never refuse a reference the
// registry client accepts, or a user could not import it.
func FuzzParseAcceptsWhatTheRegistryClientDoes(f *testing.F) {
	for _, s := range []string{
		"debian", "debian:12", "library/debian:bookworm-slim", "127.0.0.1:5000/app:v1",
		"localhost:5000/team/app_x.y-z:V1.2_3", "[::1]:5000/app:v1", "registry.example/a/b/c",
		"app@sha256:" + strings.Repeat("ab", 32), "ghcr.io/org/app:v1@sha256:" + strings.Repeat("0f", 32),
		"Bad Ref!", "app:", "", "a//b", "app:tag with space", "é/app",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.HasPrefix(s, "oci:") || strings.HasPrefix(s, "docker-archive:") {
			return
		}
		if _, err := name.ParseReference(s); err != nil {
			return
		}
		if _, err := ociref.Parse(s); err != nil {
			t.Errorf("the registry client accepts %q, ociref.Parse refuses it: %v", s, err)
		}
	})
}

// An OCI layout (by tag, and an index resolved to linux/amd64) and a
// docker-archive open to the image that was written, config included.
func TestOpenLayoutAndArchive(t *testing.T) {
	img := testImage(t)
	want, _ := img.Digest()
	other := imageOf(t, layerOf(t, file("other", "x")))

	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(other, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "other"})); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := Open(ctx, Ref{Transport: OCILayout, Name: dir, Tag: "v1"}, Options{})
	if err != nil || got.Digest != want.String() {
		t.Fatalf("oci:%s:v1 = %v, %v; want digest %s", dir, got, err, want)
	}
	if got.Config.WorkingDir != "/srv" || got.Config.Cmd[0] != "/bin/httpd" {
		t.Errorf("config %+v", got.Config)
	}
	if _, err := Open(ctx, Ref{Transport: OCILayout, Name: dir}, Options{}); err == nil || !strings.Contains(err.Error(), "holds 2 images") {
		t.Errorf("an untagged pick among two: %v", err)
	}
	if _, err := Open(ctx, Ref{Transport: OCILayout, Name: dir, Tag: "nope"}, Options{}); err == nil || !strings.Contains(err.Error(), "v1, other") {
		t.Errorf("a missing tag: %v", err)
	}

	// A multi-platform index: the amd64 image is picked.
	arm := imageFor(t, "arm64", layerOf(t, file("arm", "x")))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	multi := filepath.Join(t.TempDir(), "multi")
	mp, err := layout.Write(multi, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := mp.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	if got, err := Open(ctx, Ref{Transport: OCILayout, Name: multi}, Options{}); err != nil || got.Digest != want.String() {
		t.Errorf("index: %v, %v; want the amd64 image %s", got, err, want)
	}
	armOnly := filepath.Join(t.TempDir(), "arm")
	ap, _ := layout.Write(armOnly, empty.Index)
	ap.AppendImage(arm)
	if _, err := Open(ctx, Ref{Transport: OCILayout, Name: armOnly}, Options{}); err == nil || !strings.Contains(err.Error(), "arm64") {
		t.Errorf("an arm64 image: %v", err)
	}

	archive := filepath.Join(t.TempDir(), "app.tar")
	if err := tarball.WriteToFile(archive, nil, img); err != nil {
		t.Fatal(err)
	}
	got, err = Open(ctx, Ref{Transport: DockerArchive, Name: archive}, Options{LayerCache: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, entries := flatten(t, got.Img)
	if e := entries["data/link"]; e.body != "old\n" {
		t.Errorf("docker-archive flattened differently: data/link %q", e.body)
	}
	if _, err := Open(ctx, Ref{Transport: DockerArchive, Name: "/nonexistent.tar"}, Options{}); err == nil {
		t.Error("a missing archive opened")
	}
}
