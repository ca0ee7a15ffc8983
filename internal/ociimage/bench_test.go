package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/banger-dev/banger/internal/ociimage/registrytest"
	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/testneed"
)

// BenchmarkImportVsSkopeo: what `image import` does before banger's guest
// layer (fetch a 200 MB image from a local registry, flatten its layers,
// unpack the tree with owners) against the plain way of the same work:
// `skopeo copy` to an OCI layout, then `tar -x` of each layer in order.
// Both start with empty caches each iteration.
//
//	BANGER_BENCH_IMAGE=1 go test -run '^$' -bench ImportVsSkopeo -benchtime=3x ./internal/ociimage/
func BenchmarkImportVsSkopeo(b *testing.B) {
	if os.Getenv("BANGER_BENCH_IMAGE") != "1" {
		b.Skip("set BANGER_BENCH_IMAGE=1 to run the image benchmarks (a registry, 200 MB pushed)")
	}
	skopeo := testneed.Program(b, "skopeo", "skopeo")
	addr := registrytest.Start(b)
	img := benchImage(b, 4, 50<<20)
	ref, _ := name.ParseReference(addr + "/bench/app:v1")
	if err := remote.Write(ref, img); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	untar := func(archive, dir string, gz bool) {
		argv := []string{"tar", "--extract", "--file", archive, "--directory", dir, "--same-owner", "--numeric-owner"}
		if gz {
			argv = append(argv, "--gzip")
		}
		if _, err := sysexec.Run(ctx, argv...); err != nil {
			b.Fatal(err)
		}
	}
	var ours, plain []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		work := b.TempDir()
		os.MkdirAll(filepath.Join(work, "ours"), 0o755)
		os.MkdirAll(filepath.Join(work, "plain"), 0o755)

		start := time.Now()
		r, _ := ParseRef(ref.String())
		opened, err := Open(ctx, r, Options{LayerCache: filepath.Join(work, "layers")})
		if err != nil {
			b.Fatal(err)
		}
		archive := filepath.Join(work, "flat.tar")
		f, _ := os.Create(archive)
		if _, err := Flatten(opened.Img, f, work); err != nil {
			b.Fatal(err)
		}
		f.Close()
		untar(archive, filepath.Join(work, "ours"), false)
		ours = append(ours, time.Since(start).Seconds())

		start = time.Now()
		lay := filepath.Join(work, "layout")
		if _, err := sysexec.Run(ctx, skopeo, "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref.String(), "oci:"+lay+":v1"); err != nil {
			b.Fatal(err)
		}
		p, err := layout.FromPath(lay)
		if err != nil {
			b.Fatal(err)
		}
		idx, _ := p.ImageIndex()
		im, _ := idx.IndexManifest()
		limg, err := idx.Image(im.Manifests[0].Digest)
		if err != nil {
			b.Fatal(err)
		}
		m, _ := limg.Manifest()
		for _, l := range m.Layers {
			blob := filepath.Join(lay, "blobs", l.Digest.Algorithm, l.Digest.Hex)
			untar(blob, filepath.Join(work, "plain"), true)
		}
		plain = append(plain, time.Since(start).Seconds())
	}
	b.StopTimer()
	b.ReportMetric(median(ours), "import-s")
	b.ReportMetric(median(plain), "skopeo-s")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// benchImage is layers layers of about size bytes each: 256 KiB files of
// random bytes (so compression cannot make the work vanish).
func benchImage(b *testing.B, layers int, size int) v1.Image {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var ls []v1.Layer
	for i := 0; i < layers; i++ {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		chunk := make([]byte, 256<<10)
		for n := 0; n*len(chunk) < size; n++ {
			for j := range chunk {
				chunk[j] = byte(rng.Uint32())
			}
			name := filepath.Join("data", string(rune('a'+i)), "f"+string(rune('a'+n%26))+string(rune('a'+n/26)))
			tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(chunk)), ModTime: time.Unix(1, 0)})
			tw.Write(chunk)
		}
		tw.Close()
		data := buf.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
			tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			b.Fatal(err)
		}
		ls = append(ls, l)
	}
	return imageForBench(b, ls)
}

func imageForBench(b *testing.B, ls []v1.Layer) v1.Image {
	b.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64"})
	if err != nil {
		b.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, ls...); err != nil {
		b.Fatal(err)
	}
	return img
}
