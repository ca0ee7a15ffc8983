// Package ocitest builds OCI images for tests: layers from tar entries
// held in memory, a linux/amd64 image of them, and an OCI image layout on
// disk that `banger image import oci:DIR:TAG` and ociimage.Open read.
package ocitest

import (
	"archive/tar"
	"bytes"
	"io"
	pathpkg "path"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// MTime is every entry's modification time: layers of the same entries
// have the same digest from run to run.
var MTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// Entry is one tar entry of a layer; Body is a regular file's content.
type Entry struct {
	Header tar.Header
	Body   string
}

// Dir, File, Symlink and Whiteout are the entries tests use most.
func Dir(name string, mode int64) Entry {
	return Entry{Header: tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: mode}}
}

func File(name, body string, mode int64) Entry {
	return Entry{Header: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode}, Body: body}
}

func Symlink(name, target string) Entry {
	return Entry{Header: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}}
}

// Whiteout hides p of the layers below ("dir/.wh.name").
func Whiteout(p string) Entry {
	return Entry{Header: tar.Header{Name: pathpkg.Join(pathpkg.Dir(p), ".wh."+pathpkg.Base(p)), Typeflag: tar.TypeReg}}
}

// Layer is an uncompressed layer of entries, in order, each stamped with
// MTime (and its Size for regular files).
func Layer(t testing.TB, entries ...Entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Header
		h.ModTime = MTime
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.Body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image is a linux/amd64 image of layers (bottom first) with cfg.
func Image(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	// The config first: AppendLayers adds the layers' diff ids to it.
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layers...); err != nil {
		t.Fatal(err)
	}
	return img
}

// Layout writes img to a new OCI image layout under the test's temporary
// directory, named tag (the org.opencontainers.image.ref.name annotation
// oci:DIR:TAG picks), and returns the layout's directory.
func Layout(t testing.TB, tag string, img v1.Image) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
		t.Fatal(err)
	}
	return dir
}
