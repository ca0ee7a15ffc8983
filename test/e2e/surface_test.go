package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/e2etest"
	"github.com/banger-dev/banger/internal/sysexec"
)

// start runs argv in a fresh session of x's private tmux server; the
// pane stays after argv exits so its last screen and status can be read.
// (remain-on-exit is set server-wide first, by a session that only keeps
// the server up: set on the new session it would come too late for a
// command that exits at once.)
func (x tmux) start(t *testing.T, name string, argv []string) {
	t.Helper()
	if _, err := x.run("has-session", "-t", "keeper"); err != nil {
		if out, err := x.run("new-session", "-d", "-s", "keeper", "cat"); err != nil {
			t.Fatalf("tmux new-session: %v\n%s", err, out)
		}
		if out, err := x.run("set-option", "-g", "remain-on-exit", "on"); err != nil {
			t.Fatalf("tmux set-option: %v\n%s", err, out)
		}
	}
	if out, err := x.run(append([]string{"new-session", "-d", "-x", "160", "-y", "40", "-s", name}, argv...)...); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
}

// waitScreen waits until the pane of session shows all of wants, and
// returns that screen (with colour escapes when escapes is set).
func (x tmux) waitScreen(t *testing.T, session string, escapes bool, wants ...string) string {
	t.Helper()
	args := []string{"capture-pane", "-p", "-t", session}
	if escapes {
		args = append(args, "-e")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		screen, _ := x.run(args...)
		all := true
		for _, w := range wants {
			all = all && strings.Contains(screen, w)
		}
		if all {
			return screen
		}
		if time.Now().After(deadline) {
			t.Fatalf("the terminal did not show %q within 60s; screen:\n%s", wants, screen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitDead waits until the program in session's pane has exited (the
// pane stays: remain-on-exit) and returns its exit status, with known false
// when tmux saw the pane close but did not record a status (it can notice
// the closed terminal before it reaps the process). It asks tmux for the
// pane's state rather than reading the "Pane is dead" line, which tmux
// draws only when it redraws the pane.
func (x tmux) waitDead(t *testing.T, session string) (status int, known bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var deadSince time.Time
	for {
		out, _ := x.run("display-message", "-p", "-t", session, "#{pane_dead} #{pane_dead_status}")
		var dead int
		n, _ := fmt.Sscanf(strings.TrimSpace(out), "%d %d", &dead, &status)
		if dead == 1 {
			if n == 2 {
				return status, true
			}
			if deadSince.IsZero() {
				deadSince = time.Now()
			} else if time.Since(deadSince) > 5*time.Second {
				return 0, false
			}
		}
		if time.Now().After(deadline) {
			screen, _ := x.run("capture-pane", "-p", "-t", session)
			t.Fatalf("the program in tmux session %s did not exit within 60s (%q); screen:\n%s", session, out, screen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// argvWithout is env.Argv with the named variables left out of the
// environment (e.g. NO_COLOR, which the harness sets for every command).
func argvWithout(env *e2etest.Env, drop []string, argv ...string) []string {
	out := []string{"ip", "netns", "exec", env.NS, "env"}
	for _, kv := range env.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, d := range drop {
			keep = keep && name != d
		}
		if keep {
			out = append(out, kv)
		}
	}
	return append(out, argv...)
}

// The CLI's verbs around VMs, images, the bundle and the host, against the
// real daemon (VMs on the fake Firecracker: none of these needs a guest):
// vm health's exit status, vm stop --force, vm delete's prompt on a
// terminal, image show and delete (in use and not), bundle show, host
// resources, shell completion loaded in a real bash completing VM names,
// and colour on a terminal but none with NO_COLOR.
func TestCLISurface(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (apt-get install tmux): the terminal checks need it")
	}
	env := newFakeFCEnv(t, "172.30.95.0/24", "bangerd6")
	bin := filepath.Join(env.Bin, "banger")
	must(t, env, "vm", "create", "--name", "run1")
	must(t, env, "vm", "create", "--no-start", "--name", "cold")

	t.Run("health-exit-status", func(t *testing.T) {
		if out, errOut, code := env.Banger("vm", "health", "run1"); code != 0 || !strings.Contains(out, "true") {
			t.Errorf("vm health of a healthy VM: exit %d, want 0\n%s%s", code, out, errOut)
		}
		out, errOut, code := env.Banger("vm", "health", "cold")
		if code != 1 || !strings.Contains(out, "false") || !strings.Contains(out, "VM is stopped") {
			t.Errorf("vm health of a stopped VM: exit %d, want 1 with healthy false and why\n%s%s", code, out, errOut)
		}
		if _, _, code := env.Banger("vm", "health", "cold", "--output", "json"); code != 1 {
			t.Errorf("vm health --output json of a stopped VM: exit %d, want 1", code)
		}
	})

	t.Run("stop-force", func(t *testing.T) {
		must(t, env, "vm", "create", "--name", "hard")
		v, _ := findVM(listVMs(t, env), "hard")
		must(t, env, "vm", "stop", "--force", "hard")
		v2, _ := findVM(listVMs(t, env), "hard")
		if v2.State != api.VMStopped || v2.PID != 0 {
			t.Errorf("after vm stop --force: %+v", v2)
		}
		waitGone(t, v.PID, 10*time.Second)
		checkNoLeaks(t, env, listVMs(t, env))
		must(t, env, "vm", "delete", "--yes", "hard")
	})

	x := tmux{t: t, sock: filepath.Join(env.Root, "tmux.sock")}
	t.Cleanup(func() { _, _ = x.run("kill-server") })

	t.Run("delete-prompt", func(t *testing.T) {
		must(t, env, "vm", "create", "--no-start", "--name", "asked")
		x.start(t, "del1", env.Argv(bin, "vm", "delete", "asked"))
		x.waitScreen(t, "del1", false, "Delete VM asked and its disks (including /root)? [y/N]")
		if _, err := x.run("send-keys", "-t", "del1", "n", "Enter"); err != nil {
			t.Fatal(err)
		}
		x.waitScreen(t, "del1", false, "not deleted")
		if status, known := x.waitDead(t, "del1"); known && status == 0 {
			t.Errorf("answering n: exit 0, want non-zero")
		}
		if _, ok := findVM(listVMs(t, env), "asked"); !ok {
			t.Fatal("answering n deleted the VM")
		}
		x.start(t, "del2", env.Argv(bin, "vm", "delete", "asked"))
		x.waitScreen(t, "del2", false, "[y/N]")
		if _, err := x.run("send-keys", "-t", "del2", "y", "Enter"); err != nil {
			t.Fatal(err)
		}
		x.waitScreen(t, "del2", false, "deleted VM asked")
		if status, known := x.waitDead(t, "del2"); known && status != 0 {
			t.Errorf("answering y: exit %d, want 0", status)
		}
		if _, ok := findVM(listVMs(t, env), "asked"); ok {
			t.Fatal("answering y left the VM")
		}
		// Without a terminal there is no prompt: a refusal saying --yes.
		if _, errOut, code := env.Banger("vm", "delete", "cold"); code == 0 || !strings.Contains(errOut, "--yes") {
			t.Errorf("vm delete without a terminal: exit %d, want a refusal naming --yes\n%s", code, errOut)
		}
	})

	t.Run("colour", func(t *testing.T) {
		x.start(t, "colour", argvWithout(env, []string{"NO_COLOR"}, bin, "vm", "list"))
		screen := x.waitScreen(t, "colour", true, "run1", "cold")
		if !strings.Contains(screen, "\x1b[32mrunning") {
			t.Errorf("vm list on a terminal: the running state is not green:\n%q", screen)
		}
		x.start(t, "nocolour", argvWithout(env, nil, bin, "vm", "list")) // the harness sets NO_COLOR=1
		screen = x.waitScreen(t, "nocolour", true, "run1", "cold")
		for _, line := range strings.Split(screen, "\n") {
			if strings.Contains(line, "run1") && strings.Contains(line, "\x1b[") {
				t.Errorf("vm list with NO_COLOR on a terminal printed escapes: %q", line)
			}
		}
		// Not a terminal: no colour either, even without NO_COLOR.
		res, _ := sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{Argv: argvWithout(env, []string{"NO_COLOR"}, bin, "vm", "list")})
		if strings.Contains(string(res.Stdout), "\x1b[") || !strings.Contains(string(res.Stdout), "run1") {
			t.Errorf("vm list into a pipe printed escapes (or no list):\n%q", res.Stdout)
		}
	})

	// The TUI against this daemon: the create form makes a VM, s stops and
	// starts it, d asks before deleting (n keeps it, y deletes it).
	t.Run("tui", func(t *testing.T) {
		keys := func(k ...string) {
			t.Helper()
			if out, err := x.run(append([]string{"send-keys", "-t", "tui"}, k...)...); err != nil {
				t.Fatalf("tmux send-keys %q: %v\n%s", k, err, out)
			}
		}
		state := func(name string) (api.VMState, bool) {
			v, ok := findVM(listVMs(t, env), name)
			return v.State, ok
		}
		waitState := func(name string, want api.VMState, present bool) {
			t.Helper()
			deadline := time.Now().Add(60 * time.Second)
			for {
				st, ok := state(name)
				if ok == present && (!present || st == want) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("VM %s: state %q (present %v), want %q (present %v); screen:\n%s", name, st, ok, want, present, x.capture2("tui"))
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		x.start(t, "tui", env.Argv(bin, "tui", "--poll", "500ms"))
		x.waitScreen(t, "tui", false, "run1", "connected")

		keys("c")
		x.waitScreen(t, "tui", false, "name", "image", "vcpus")
		keys("-l", "tuinew")
		keys("Enter")
		waitState("tuinew", api.VMRunning, true)
		x.waitScreen(t, "tui", false, "tuinew")

		// Filter down to the new VM so it is the selected one.
		keys("/")
		keys("-l", "tuinew")
		keys("Enter")
		keys("s")
		waitState("tuinew", api.VMStopped, true)
		keys("s")
		waitState("tuinew", api.VMRunning, true)
		keys("s")
		waitState("tuinew", api.VMStopped, true)

		keys("d")
		x.waitScreen(t, "tui", false, "delete tuinew and its disks? y/n")
		keys("n")
		time.Sleep(time.Second) // a wrong delete would happen now; the check below is the assertion
		if _, ok := state("tuinew"); !ok {
			t.Fatal("answering n in the TUI deleted the VM")
		}
		keys("d")
		x.waitScreen(t, "tui", false, "delete tuinew and its disks? y/n")
		keys("y")
		waitState("tuinew", "", false)
		keys("q") // (an Escape right before it would arrive as alt+q)
		x.waitDead(t, "tui")
		checkNoLeaks(t, env, listVMs(t, env))
	})

	t.Run("image-show-delete", func(t *testing.T) {
		out := must(t, env, "image", "show", "tiny")
		for _, want := range []string{"name", "tiny", "rootfs", "sha256"} {
			if !strings.Contains(out, want) {
				t.Errorf("image show tiny lacks %q:\n%s", want, out)
			}
		}
		var img api.Image
		jsonOf(t, env, &img, "image", "show", "tiny")
		if img.Name != "tiny" || img.RootfsPath == "" {
			t.Errorf("image show tiny --output json: %+v", img)
		}
		if _, errOut, code := env.Banger("image", "show", "nosuch"); code == 0 || !strings.Contains(errOut, "nosuch") {
			t.Errorf("image show of an unknown image: exit %d\n%s", code, errOut)
		}
		// In use: refused, and it says by which VM.
		_, errOut, code := env.Banger("image", "delete", "tiny")
		if code == 0 || !strings.Contains(errOut, "run1") {
			t.Errorf("image delete of an image VMs use: exit %d, want a refusal naming a VM\n%s", code, errOut)
		}
		jsonOf(t, env, &img, "image", "show", "tiny")
		if _, err := os.Stat(img.RootfsPath); err != nil {
			t.Errorf("a refused image delete removed the rootfs: %v", err)
		}
		// Not in use: a second registration of the same tree goes.
		must(t, env, "image", "register", "--name", "spare", "--rootfs", filepath.Join(env.Root, "tiny.ext4"))
		var spare api.Image
		jsonOf(t, env, &spare, "image", "show", "spare")
		if out := must(t, env, "image", "delete", "spare"); !strings.Contains(out, "deleted image spare") {
			t.Errorf("image delete spare: %q", out)
		}
		if _, _, code := env.Banger("image", "show", "spare"); code == 0 {
			t.Error("image show after delete succeeded")
		}
		if strings.HasPrefix(spare.RootfsPath, env.Root+"/state") {
			if _, err := os.Stat(spare.RootfsPath); err == nil {
				t.Errorf("image delete left banger's copy %s", spare.RootfsPath)
			}
		}
		if _, err := os.Stat(filepath.Join(env.Root, "tiny.ext4")); err != nil {
			t.Errorf("image delete removed the user's own file: %v", err)
		}
	})

	t.Run("bundle-show", func(t *testing.T) {
		out := must(t, env, "bundle", "show")
		var info api.BundleInfo
		jsonOf(t, env, &info, "bundle", "show")
		for _, p := range []string{info.Dir, info.KernelPath, info.AgentPath, info.SSHKeyPath} {
			if p == "" || !strings.Contains(out, p) {
				t.Errorf("bundle show lacks %q:\n%s", p, out)
				continue
			}
			if _, err := os.Stat(p); err != nil {
				t.Errorf("bundle show names %s: %v", p, err)
			}
		}
	})

	t.Run("host-resources", func(t *testing.T) {
		var r api.HostResources
		jsonOf(t, env, &r, "host", "resources")
		if r.CPUs < 1 || r.MemoryBytes <= 0 || r.FSBytes <= 0 {
			t.Errorf("host resources: %+v", r)
		}
		var running []api.VM
		for _, v := range listVMs(t, env) {
			if v.State == api.VMRunning {
				running = append(running, v)
			}
		}
		var vcpus int
		var mem int64
		for _, v := range running {
			vcpus += v.VCPUs
			mem += int64(v.MemoryMiB) << 20
		}
		if r.VCPUsReserved != vcpus || r.MemoryReservedBytes != mem {
			t.Errorf("host resources reserves %d vCPUs / %d bytes, the running VMs hold %d / %d", r.VCPUsReserved, r.MemoryReservedBytes, vcpus, mem)
		}
		if table := must(t, env, "host", "resources"); !strings.Contains(table, fmt.Sprint(r.CPUs)) {
			t.Errorf("host resources table lacks the CPU count %d:\n%s", r.CPUs, table)
		}
	})

	t.Run("completion", func(t *testing.T) {
		for shell, want := range map[string]string{"bash": "complete -o default -F __start_banger banger", "zsh": "#compdef banger", "fish": "complete -c banger"} {
			out := must(t, env, "completion", shell)
			if !strings.Contains(out, want) {
				t.Errorf("completion %s lacks %q", shell, want)
			}
		}
		for shell, check := range map[string][]string{
			"zsh":  {"zsh", "-n"},
			"fish": {"fish", "--no-execute"},
		} {
			if _, err := exec.LookPath(shell); err != nil {
				continue // syntax-checked only where the shell is installed
			}
			f := filepath.Join(env.Root, "completion."+shell)
			if err := os.WriteFile(f, []byte(must(t, env, "completion", shell)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := sysexec.Run(t.Context(), append(check, f)...); err != nil {
				t.Errorf("%s rejects banger's completion script: %v\n%s", shell, err, out)
			}
		}
		// bash loads the script and completes `banger vm ssh r<TAB>` from
		// the daemon's VMs, through the real binary.
		script := filepath.Join(env.Root, "completion.bash")
		if err := os.WriteFile(script, []byte(must(t, env, "completion", "bash")), 0o644); err != nil {
			t.Fatal(err)
		}
		// The script needs bash-completion's helpers, as in a user's shell.
		const bashCompletion = "/usr/share/bash-completion/bash_completion"
		if _, err := os.Stat(bashCompletion); err != nil {
			t.Skip("bash-completion is not installed (apt-get install bash-completion)")
		}
		const drive = `source ` + bashCompletion + `; source "$1"
COMP_WORDS=(banger vm ssh "$2"); COMP_CWORD=3; COMP_LINE="banger vm ssh $2"; COMP_POINT=${#COMP_LINE}
__start_banger banger "$2" ssh 2>/dev/null # compopt objects outside a real TAB
printf '%s\n' "${COMPREPLY[@]}"`
		for prefix, want := range map[string]string{"r": "run1", "c": "cold"} {
			out, err := env.InNS(append(append([]string{"env"}, env.Environ()...), "bash", "-c", drive, "bash", script, prefix)...)
			if err != nil {
				t.Fatalf("bash completion: %v\n%s", err, out)
			}
			if got := strings.Fields(out); len(got) != 1 || got[0] != want {
				t.Errorf("bash completes `banger vm ssh %s` to %q, want [%s]", prefix, got, want)
			}
		}
	})
}
