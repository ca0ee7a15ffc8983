// Package registrytest runs a real OCI registry for tests: Debian's
// docker-registry package (the distribution registry) on 127.0.0.1, its
// storage in a temporary directory, until the test ends.
package registrytest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/sysexec"
	"github.com/banger-dev/banger/internal/testneed"
)

// Start runs a registry and returns its host:port once it answers.
func Start(t testing.TB) string {
	t.Helper()
	bin := testneed.Program(t, "docker-registry", "docker-registry")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n"+
		"http:\n  addr: %s\n", filepath.Join(dir, "data"), addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := sysexec.StartChild(sysexec.Cmd{Argv: []string{bin, "serve", cfg}, Stdout: logf, Stderr: logf}, syscall.SIGKILL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if i == 100 {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("the registry did not answer on %s: %v\n%s", addr, err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
