package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/banger-dev/banger/internal/e2etest"
	"github.com/banger-dev/banger/internal/ociimage/ocitest"
)

// TestInitlessImageBootsWithAgent is issue 19's proof for images without an
// init: a one-layer image of the host's static busybox (no /sbin/init, no
// systemd, no sshd) whose CMD is busybox's HTTP server is imported from an
// OCI layout; the VM boots with banger-agent as PID 1, the CMD answers on
// the guest IP with the image's WORKDIR and ENV, `vm exec` works (exit
// statuses intact beside PID 1's reaper), and `vm stop` ends it through the
// agent's power-off path (sync, unmount, reboot).
func TestInitlessImageBootsWithAgent(t *testing.T) {
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		t.Fatalf("%s (Debian's busybox-static) is needed to build the test image: %v", busybox, err)
	}
	env := e2etest.New(t, e2etest.Options{Subnet: "172.30.97.0/24", Bridge: "bangerinit", Config: "nat = false\n"})

	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	entries := []ocitest.Entry{ocitest.Dir("bin", 0o755), ocitest.Dir("etc", 0o755), ocitest.Dir("www", 0o755),
		ocitest.File("bin/busybox", string(bin), 0o755)}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || applet == "init" || applet == "linuxrc" {
			continue // an image without an init
		}
		entries = append(entries, ocitest.Symlink("bin/"+applet, "busybox"))
	}
	const page = "served by the image's CMD\n"
	entries = append(entries,
		ocitest.File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/www:/bin/false\n", 0o644),
		ocitest.File("etc/group", "root:x:0:\nwww:x:33:\n", 0o644),
		ocitest.File("www/index.html", page, 0o644))
	layoutDir := ocitest.Layout(t, "v1", ocitest.Image(t, v1.Config{
		Entrypoint: []string{"/bin/sh", "-c", `env > /tmp/service.env; pwd > /tmp/service.pwd; exec "$@"`, "sh"},
		Cmd:        []string{"httpd", "-f", "-p", "8080", "-h", "/www"},
		Env:        []string{"PATH=/bin", "GREETING=from-the-image"},
		WorkingDir: "/www",
	}, ocitest.Layer(t, entries...)))

	env.MustBanger("image", "import", "oci:"+layoutDir+":v1", "--name", "tiny")
	env.MustBanger("vm", "create", "--name", "tiny", "--image", "tiny")
	vm := env.VM("tiny")

	// The CMD is started by PID 1 after the network is up; the VM is
	// running once the agent answers, so the server may need a moment.
	var got string
	var lastErr error
	for i := 0; i < 60; i++ {
		got, lastErr = env.InNS("/usr/bin/curl", "-sS", "--max-time", "5", "http://"+vm.IP+":8080/index.html")
		if lastErr == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if lastErr != nil || got != page {
		t.Fatalf("GET http://%s:8080/index.html: %q, %v\nconsole:\n%s", vm.IP, got, lastErr, env.MustBanger("vm", "logs", "tiny"))
	}

	if out := env.MustBanger("vm", "exec", "tiny", "--", "readlink", "/proc/1/exe"); strings.TrimSpace(out) != "/usr/local/bin/banger-agent" {
		t.Errorf("PID 1 is %q, want /usr/local/bin/banger-agent", out)
	}
	if out := env.MustBanger("vm", "exec", "tiny", "--", "cat", "/tmp/service.env", "/tmp/service.pwd"); !strings.Contains(out, "GREETING=from-the-image") || !strings.HasSuffix(out, "/www\n") {
		t.Errorf("the CMD's environment and working directory:\n%s", out)
	}
	// An exit status reaches the host although PID 1 reaps every orphan.
	if _, _, code := env.Banger("vm", "exec", "tiny", "--", "sh", "-c", "sleep 30 </dev/null >/dev/null 2>&1 & exit 7"); code != 7 {
		t.Errorf("vm exec sh -c 'exit 7': exit %d", code)
	}
	if out := env.MustBanger("vm", "exec", "tiny", "--", "hostname"); strings.TrimSpace(out) != "tiny" {
		t.Errorf("hostname %q, want tiny", out)
	}
	if out := env.MustBanger("vm", "exec", "tiny", "--", "cat", "/proc/mounts"); !strings.Contains(out, " /root ext4 ") || !strings.Contains(out, " /dev/pts devpts ") {
		t.Errorf("mounts in the guest (want the work disk on /root and /dev/pts):\n%s", out)
	}

	env.MustBanger("vm", "stop", "tiny")
	if st := env.VM("tiny").State; st != "stopped" {
		t.Errorf("after vm stop: state %s", st)
	}
	if logs := env.MustBanger("vm", "logs", "tiny"); !strings.Contains(logs, "power button: powering off") || !strings.Contains(logs, "shutdown: rebooting") {
		t.Errorf("the console does not show PID 1 powering off on the power button:\n%s", logs)
	}
}
