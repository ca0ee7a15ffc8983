package agentclient

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/agentclient/hvsocktest"
)

// The figures are the host-side cost of one health check, agent included,
// without a VM: what remains is the guest's share (vsock or virtio-serial
// transit, 10-30 ms per round trip under QEMU TCG).

func BenchmarkHealthHybridVsock(b *testing.B) {
	m := hvsocktest.NewMuxer(b, filepath.Join(shortDir(b), "v.sock"), agentHandler(b))
	benchHealth(b, hybridClient(m.Path(), 1024))
}

func BenchmarkHealthSerial(b *testing.B) {
	f := newFakeChardev(b)
	startGuestAgent(b, f)
	s := NewSerialSession(f.path())
	b.Cleanup(func() { s.Close() })
	benchHealth(b, Client{Dial: s.Dial})
}

func benchHealth(b *testing.B, c Client) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var total time.Duration
	for b.Loop() {
		_, rtt, err := c.Health(ctx)
		if err != nil {
			b.Fatal(err)
		}
		total += rtt
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "rtt-µs/op")
}
