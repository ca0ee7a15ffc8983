package disk

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkProvisionRootfs measures making one VM's root disk from images of
// growing size: the qcow2 overlay should cost the same whatever the size;
// the sparse copy grows with the data the image holds (here an eighth of its
// size, like a packed rootfs with free space left as holes).
func BenchmarkProvisionRootfs(b *testing.B) {
	needTools(b, "qemu-img")
	dir := b.TempDir()
	for _, size := range []int64{256 << 20, 1 << 30, 4 << 30} {
		img := filepath.Join(dir, fmt.Sprintf("image-%d.ext4", size))
		writeImage(b, img, size, size/8)
		label := fmt.Sprintf("%dMiB", size>>20)
		b.Run("overlay/"+label, func(b *testing.B) {
			benchProvision(b, img, func(dst string) error { return CreateOverlay(context.Background(), img, dst) })
		})
		b.Run("sparse-copy/"+label, func(b *testing.B) {
			benchProvision(b, img, func(dst string) error {
				_, err := CloneRootfs(context.Background(), img, dst)
				return err
			})
		})
		os.Remove(img)
	}
}

func benchProvision(b *testing.B, img string, make func(dst string) error) {
	dst := filepath.Join(b.TempDir(), "vm-disk")
	var alloc int64
	for i := 0; i < b.N; i++ {
		if err := make(dst); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		alloc = AllocatedBytes(dst)
		os.Remove(dst)
		b.StartTimer()
	}
	b.ReportMetric(float64(alloc)/(1<<20), "MiB-allocated")
	b.ReportMetric(float64(AllocatedBytes(img))/(1<<20), "MiB-image-data")
}

// writeImage makes a sparse file of size bytes whose first dataBytes hold
// non-zero data.
func writeImage(b *testing.B, path string, size, dataBytes int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 1<<20)
	rand.Read(block)
	for off := int64(0); off < dataBytes; off += int64(len(block)) {
		if _, err := f.Write(block); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
}
