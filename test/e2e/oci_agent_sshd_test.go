package e2e

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/banger-dev/banger/internal/e2etest"
	"github.com/banger-dev/banger/internal/ociimage/ocitest"
)

// TestInitlessImageStartsSSHD: the cached Debian tree with its systemd
// whited out (a slim image with openssh-server but no init) boots with
// banger-agent as PID 1, which starts the image's sshd with the ed25519
// host key its ssh-keygen made: `vm create` waits for sshd as for the systemd
// images, `vm ssh` logs in with the bundle key PID 1 put in
// /root/.ssh/authorized_keys, and an sshd that dies is started again.
func TestInitlessImageStartsSSHD(t *testing.T) {
	env := e2etest.New(t, e2etest.Options{Subnet: "172.30.98.0/24", Bridge: "bangerinitssh", Config: "nat = false\n"})
	base, err := tarball.LayerFromFile(e2etest.NewestBaseTree(t), tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		t.Fatal(err)
	}
	top := ocitest.Layer(t, ocitest.Whiteout("usr/lib/systemd/systemd"))
	dir := ocitest.Layout(t, "v1", ocitest.Image(t, v1.Config{Cmd: []string{"sleep", "infinity"}}, base, top))
	env.MustBanger("image", "import", "oci:"+dir+":v1", "--name", "slim")
	var origin struct {
		Init  string `json:"init"`
		NoSSH bool   `json:"no_ssh"`
	}
	raw, err := os.ReadFile(filepath.Join(env.DataDir, "images", "slim.ext4.origin.json"))
	if err == nil {
		err = json.Unmarshal(raw, &origin)
	}
	if err != nil || origin.Init != "agent" || origin.NoSSH {
		t.Fatalf("origin of the slim image: %+v, %v; want init agent with ssh", origin, err)
	}
	t.Cleanup(func() { env.Banger("image", "delete", "slim") })

	if out, errOut, code := env.Banger("vm", "create", "--name", "slim", "--image", "slim"); code != 0 {
		logs, _, _ := env.Banger("vm", "logs", "slim")
		t.Fatalf("vm create: exit %d\n%s%s\nconsole:\n%s", code, out, errOut, logs)
	}
	ssh := func(command ...string) string {
		t.Helper()
		out, errOut, code := env.SSH("slim", command...)
		if code != 0 {
			logs, _, _ := env.Banger("vm", "logs", "slim")
			t.Fatalf("vm ssh slim -- %s: exit %d\nstdout:\n%s\nstderr:\n%s\nconsole:\n%s", strings.Join(command, " "), code, out, errOut, logs)
		}
		return out
	}
	if out := ssh("readlink", "/proc/1/exe"); strings.TrimSpace(out) != "/usr/local/bin/banger-agent" {
		t.Errorf("PID 1 over ssh: %q", out)
	}
	if out := ssh("cat", "/root/.ssh/authorized_keys"); !strings.HasPrefix(out, "ssh-") {
		t.Errorf("root's authorized_keys: %q", out)
	}
	if out := env.MustBanger("vm", "exec", "slim", "--", "pgrep", "-x", "sleep"); strings.TrimSpace(out) == "" {
		t.Error("the image's CMD (sleep infinity) is not running")
	}
	if out := ssh("sh", "-c", "ls /etc/ssh/ssh_host_*_key.pub"); !strings.Contains(out, "ssh_host_ed25519_key.pub") {
		t.Errorf("host keys made at boot: %q", out)
	}

	// sshd killed: PID 1 starts it again and ssh logs in again (with the
	// same host key: banger's known_hosts would refuse another).
	before := strings.TrimSpace(env.MustBanger("vm", "exec", "slim", "--", "pgrep", "-o", "-x", "sshd"))
	env.MustBanger("vm", "exec", "slim", "--", "kill", before)
	var after string
	for i := 0; i < 60; i++ {
		time.Sleep(time.Second)
		out, _, code := env.Banger("vm", "exec", "slim", "--", "pgrep", "-o", "-x", "sshd")
		if after = strings.TrimSpace(out); code == 0 && after != "" && after != before {
			break
		}
	}
	if after == "" || after == before {
		logs, _, _ := env.Banger("vm", "logs", "slim")
		t.Fatalf("sshd (pid %s) was not started again after it was killed\nconsole:\n%s", before, logs)
	}
	// The new sshd listens a moment after it is started.
	var out, errOut string
	code := -1
	for i := 0; i < 30 && code != 0; i++ {
		if i > 0 {
			time.Sleep(time.Second)
		}
		out, errOut, code = env.SSH("slim", "echo", "back")
	}
	if code != 0 || strings.TrimSpace(out) != "back" {
		logs, _, _ := env.Banger("vm", "logs", "slim")
		t.Fatalf("ssh after sshd's restart: exit %d, %q %s\nconsole:\n%s", code, out, errOut, logs)
	}
	logs := env.MustBanger("vm", "logs", "slim")
	if !strings.Contains(logs, "ssh-keygen (/etc/ssh/ssh_host_ed25519_key): exited with status 0") || !strings.Contains(logs, "sshd: restarting in") {
		t.Errorf("the console does not show the host keys made and sshd restarted:\n%s", logs)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "ssh-keygen (") {
			t.Log(strings.TrimSpace(line)) // how long the host keys took under emulation
		}
	}
	env.MustBanger("vm", "stop", "slim")
}
