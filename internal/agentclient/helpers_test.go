package agentclient

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"net/http"

	"github.com/banger-dev/banger/internal/agent"
)

const testBootID = "0b5e6c1d-1111-2222-3333-444455556666"

// agentHandler is the real agent handler over a fabricated /proc tree.
func agentHandler(t testing.TB) http.Handler {
	t.Helper()
	base := t.TempDir()
	proc := filepath.Join(base, "proc")
	work := filepath.Join(base, "work")
	files := map[string]string{
		"uptime":                    "42.50 80.00\n",
		"sys/kernel/random/boot_id": testBootID + "\n",
		"mounts":                    "/dev/vda / ext4 rw 0 0\n/dev/vdb " + work + " ext4 rw 0 0\n",
		"loadavg":                   "1.00 0.50 0.25 1/99 123\n",
		"meminfo":                   "MemTotal: 1000 kB\nMemAvailable: 600 kB\n",
	}
	for name, content := range files {
		path := filepath.Join(proc, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	return agent.NewHandler(agent.Options{
		Version:  "test-1",
		Hostname: func() (string, error) { return "devbox", nil },
		ProcRoot: proc,
		RootDir:  base,
		WorkDir:  work,
		Now:      time.Now,
	})
}

// shortDir returns a directory whose socket paths stay well under the
// 108-byte Unix socket limit (t.TempDir embeds the test name).
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bgac")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
