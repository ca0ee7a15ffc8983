package image_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/image"
	"github.com/banger-dev/banger/internal/image/imagetest"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/sysexec"
)

// The image benchmarks fetch and unpack hundreds of packages (minutes each):
//
//	BANGER_BENCH_IMAGE=1 go test -run '^$' -bench Image -benchtime=1x ./internal/image/
func benchInputs(b *testing.B) imagetest.Image {
	if !envknob.BenchImage.On() {
		b.Skip("set BANGER_BENCH_IMAGE=1 to run the image build benchmarks (minutes, network)")
	}
	return imagetest.Get(b)
}

func allocated(b *testing.B, p string) float64 {
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	return float64(st.Sys().(*syscall.Stat_t).Blocks * 512)
}

// BenchmarkImageFullBuild: an uncached build (mmdebstrap, nothing cached:
// every package downloaded) against a plain debootstrap of the same package
// set from the same mirror, measured in the same run.
func BenchmarkImageFullBuild(b *testing.B) {
	in := benchInputs(b)
	ctx := context.Background()
	pk, err := image.DebianPackages(nil)
	if err != nil {
		b.Fatal(err)
	}
	mirror := image.HostDebianMirror()
	if mirror == "" {
		mirror = image.DefaultMirror
	}
	for b.Loop() {
		root := b.TempDir()
		start := time.Now()
		plain := filepath.Join(root, "plain")
		if _, err := sysexec.Run(ctx, "debootstrap", "--variant=minbase", "--components=main", "--merged-usr",
			"--include="+strings.Join(pk, ","), image.DefaultSuite, plain, mirror); err != nil {
			b.Fatal(err)
		}
		plainS := time.Since(start).Seconds()
		os.RemoveAll(plain)

		builder := &image.Builder{Layout: paths.UnderRoot(root)}
		start = time.Now()
		img, err := builder.Build(ctx, image.BuildRequest{Name: "bench", PublicKeyPath: in.PublicKeyPath, AgentPath: in.AgentPath}, nil)
		if err != nil {
			b.Fatal(err)
		}
		buildS := time.Since(start).Seconds()
		b.ReportMetric(plainS, "debootstrap-s")
		b.ReportMetric(buildS, "build-s")
		b.ReportMetric(buildS/plainS, "build/debootstrap")
		b.ReportMetric(allocated(b, img.RootfsPath)/(1<<20), "image-alloc-MiB")
	}
}

// stepTimer stamps a build's progress steps: seconds spent in each.
type stepTimer struct {
	step  string
	since time.Time
	secs  map[string]float64
}

func newStepTimer() *stepTimer {
	return &stepTimer{step: "start", since: time.Now(), secs: map[string]float64{}}
}

func (s *stepTimer) progress(p api.Progress) {
	if p.Step == s.step {
		return
	}
	now := time.Now()
	s.secs[s.step] += now.Sub(s.since).Seconds()
	s.step, s.since = p.Step, now
}

// BenchmarkImageCachedRebuild: an unchanged recipe reuses the base tree
// archive; only unpack, customize, mkfs and checksum run (each reported).
func BenchmarkImageCachedRebuild(b *testing.B) {
	in := benchInputs(b)
	builder := &image.Builder{Layout: imagetest.Layout()}
	for b.Loop() {
		out := filepath.Join(b.TempDir(), "rebuild.ext4")
		steps := newStepTimer()
		start := time.Now()
		img, err := builder.Build(context.Background(), image.BuildRequest{
			Name: "bench", PublicKeyPath: in.PublicKeyPath, AgentPath: in.AgentPath, OutputPath: out,
		}, steps.progress)
		if err != nil {
			b.Fatal(err)
		}
		steps.progress(api.Progress{Step: "end"})
		b.ReportMetric(time.Since(start).Seconds(), "rebuild-s")
		for _, st := range []string{image.StepUnpack, image.StepCustomize, image.StepPack, image.StepChecksum, image.StepCleanup} {
			b.ReportMetric(steps.secs[st], st+"-s")
		}
		b.ReportMetric(allocated(b, img.RootfsPath)/(1<<20), "image-alloc-MiB")
		b.ReportMetric(float64(img.SizeBytes)/(1<<20), "image-size-MiB")
	}
}

// BenchmarkImageRebuildOneMorePackage: a cached rebuild, then the same
// build with one more package (installed with apt over the cached base
// tree), in the same run. The package's .deb is dropped from the shared
// cache first, so the second build downloads exactly one package. apt's
// parsed index of the base tree's lists (image.AptIndexDir) is made by
// the first build with extra packages over a tree and reused after that:
// index-warm says whether this run found it (1) or made it (0).
func BenchmarkImageRebuildOneMorePackage(b *testing.B) {
	in := benchInputs(b)
	ctx := context.Background()
	layout := imagetest.Layout()
	builder := &image.Builder{Layout: layout}
	debs := image.AptCacheDir(layout)
	for b.Loop() {
		root := b.TempDir()
		var prepare string
		start := time.Now()
		if _, err := builder.Build(ctx, image.BuildRequest{
			Name: "bench", PublicKeyPath: in.PublicKeyPath, AgentPath: in.AgentPath, OutputPath: filepath.Join(root, "rebuild.ext4"),
		}, func(p api.Progress) {
			if p.Step == image.StepPrepare {
				prepare = p.Message
			}
		}); err != nil {
			b.Fatal(err)
		}
		rebuildS := time.Since(start).Seconds()
		// The prepare line ends with the cache key's first 12 digits.
		warm := 0.0
		if i := strings.LastIndex(prepare, "cache key "); i >= 0 {
			idx, _ := filepath.Glob(filepath.Join(layout.BuildCacheDir(), "apt-index", prepare[i+len("cache key "):]+"*", "srcpkgcache.bin"))
			if len(idx) > 0 {
				warm = 1
			}
		}

		old, _ := filepath.Glob(filepath.Join(debs, "hello_*.deb"))
		for _, f := range old {
			os.Remove(f)
		}
		before, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
		steps := newStepTimer()
		start = time.Now()
		if _, err := builder.Build(ctx, image.BuildRequest{
			Name: "bench", ExtraPackages: []string{"hello"}, PublicKeyPath: in.PublicKeyPath, AgentPath: in.AgentPath,
			OutputPath: filepath.Join(root, "plus-one.ext4"),
		}, steps.progress); err != nil {
			b.Fatal(err)
		}
		steps.progress(api.Progress{Step: "end"})
		plusS := time.Since(start).Seconds()
		after, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
		b.ReportMetric(rebuildS, "rebuild-s")
		b.ReportMetric(plusS, "plus-one-s")
		b.ReportMetric(plusS/rebuildS, "plus-one/rebuild")
		b.ReportMetric(float64(len(after)-len(before)), "debs-downloaded")
		b.ReportMetric(warm, "index-warm")
		// Where the one-more-package build's time goes (apt and dpkg are
		// the packages step).
		for _, st := range []string{image.StepPackages, image.StepCustomize, image.StepPack, image.StepChecksum} {
			b.ReportMetric(steps.secs[st], "plus-one-"+st+"-s")
		}
	}
}
