package guestinit

import (
	"errors"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Paths of the programs PID 1 starts when the image has them.
const (
	sshdPath   = "/usr/sbin/sshd"
	keygenPath = "/usr/bin/ssh-keygen"
)

// Run is PID 1. The agent's exec/cp server runs as a child (the same
// binary, started again: not PID 1, it serves), so its exec children are its
// own to wait for. Run never returns: the machine restarts at its end.
func Run() {
	logger := log.New(os.Stderr, "banger-agent (init): ", 0)
	logf := logger.Printf
	// SIGINT is what the kernel sends PID 1 on ctrl-alt-del once it is
	// told not to reboot at once (Firecracker's SendCtrlAltDel).
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPWR, syscall.SIGUSR2)

	for _, err := range mountSystem() {
		logf("%v", err)
	}
	_ = os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	cmdline, _ := os.ReadFile("/proc/cmdline")
	if cfg, ok, err := ParseIPArg(string(cmdline)); err != nil {
		logf("network: %v", err)
	} else if ok {
		if err := setupNetwork(cfg, "/etc", logf); err != nil {
			logf("%v", err)
		}
	} else {
		logf("network: no static ip= on the kernel command line")
	}
	mountWorkDisk(logf)

	sup := NewSupervisor(logger, os.Stdout)
	stop := make(chan struct{})
	go sup.Reap(stop)

	power := make(chan struct{}, 1)
	watchPowerButton(logf, func() {
		select {
		case power <- struct{}{}:
		default:
		}
	})

	exe, err := os.Executable()
	if err != nil {
		exe = "/usr/local/bin/banger-agent"
	}
	if err := sup.Start(Service{Name: "banger-agent", Argv: []string{exe}, Env: os.Environ(), Dir: "/"}); err != nil {
		logf("banger-agent: %v", err)
	}
	startSSHD(sup, logf)
	startImageService(sup, logf)

	select {
	case s := <-sigs:
		logf("%s: powering off", s)
	case <-power:
		logf("power button: powering off")
	}
	shutdown(sup, logf)
}

// startImageService runs the image's ENTRYPOINT/CMD with its ENV, WORKDIR
// and USER, restarted with backoff whenever it exits.
func startImageService(sup *Supervisor, logf func(string, ...any)) {
	cfg, err := LoadConfig(ConfigPath)
	if errors.Is(err, os.ErrNotExist) {
		logf("image: no %s: nothing to run", ConfigPath)
		return
	}
	if err != nil {
		logf("image: %v", err)
		return
	}
	argv := cfg.Argv()
	if len(argv) == 0 {
		logf("image: no ENTRYPOINT or CMD: nothing to run")
		return
	}
	id, err := ResolveUser("/", cfg.User)
	if err != nil {
		logf("image: %v", err)
		return
	}
	env := cfg.Environ(id.Home)
	if argv[0], err = lookPath(argv[0], env); err != nil {
		logf("image: %v", err)
		return
	}
	svc := Service{Name: "image", Argv: argv, Env: env, Dir: cfg.Dir()}
	if id.UID != 0 || id.GID != 0 {
		svc.Cred = &syscall.Credential{Uid: id.UID, Gid: id.GID}
	}
	if err := sup.Start(svc); err != nil {
		logf("image: %v", err)
	}
}

// lookPath resolves a command without a slash in the service's PATH, as a
// container runtime does.
func lookPath(name string, env []string) (string, error) {
	if filepath.IsAbs(name) || filepath.Base(name) != name {
		return name, nil
	}
	path := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New(name + ": not found in PATH " + path)
}

// sshdOptions make the image's sshd trust banger's key for root whatever
// its own sshd_config says (command-line options win over the file): key
// logins for root, the image-wide key file beside root's own, as the
// systemd images' sshd_config.d/banger.conf does.
var sshdOptions = []string{
	"-o", "PubkeyAuthentication=yes",
	"-o", "PermitRootLogin=prohibit-password",
	"-o", "AuthorizedKeysFile=.ssh/authorized_keys " + trustedKeysPath,
}

// trustedKeysPath is the bundle key banger's guest layer puts in the image.
const trustedKeysPath = "/etc/ssh/banger_authorized_keys"

// hostKeyPath is the one host key PID 1 makes and gives sshd: an ed25519
// key takes a quarter of a second to make under TCG where `ssh-keygen -A`
// (RSA too) took 6-7 s of every first boot.
const hostKeyPath = "/etc/ssh/ssh_host_ed25519_key"

// sshdServices is what PID 1 runs for an image's sshd under root (the
// guest's / in production): the image's ssh-keygen first when the VM has
// no host key yet (images ship none: each VM makes its own), then sshd in
// the foreground logging to the console with that key, restarted whenever
// it dies. Without ssh-keygen sshd gets no HostKey option and uses what the
// image has. ok is false when the image has no sshd.
func sshdServices(root string) (keygen *Service, sshd Service, ok bool) {
	if st, err := os.Stat(filepath.Join(root, sshdPath)); err != nil || !st.Mode().IsRegular() {
		return nil, Service{}, false
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	sshd = Service{Name: "sshd", Argv: append([]string{sshdPath, "-D", "-e"}, sshdOptions...), Env: env, Dir: "/"}
	if st, err := os.Stat(filepath.Join(root, keygenPath)); err == nil && st.Mode().IsRegular() {
		sshd.Argv = append(sshd.Argv, "-o", "HostKey="+hostKeyPath)
		if _, err := os.Stat(filepath.Join(root, hostKeyPath)); err != nil {
			keygen = &Service{Name: "ssh-keygen", Argv: []string{keygenPath, "-q", "-t", "ed25519", "-N", "", "-C", "root@banger", "-f", hostKeyPath},
				Env: env, Dir: "/", Once: true}
		}
	}
	return keygen, sshd, true
}

// startSSHD starts the image's sshd when it has one: root's home is given
// the trusted key, the privilege-separation directory made (/run is a
// fresh tmpfs), host keys made, then sshd started under supervision.
func startSSHD(sup *Supervisor, logf func(string, ...any)) {
	keygen, sshd, ok := sshdServices("/")
	if !ok {
		return
	}
	if err := seedHome("/root", trustedKeysPath); err != nil {
		logf("sshd: giving /root the trusted key: %v", err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		logf("sshd: %v", err)
	}
	startSSHDNow := func() {
		if err := sup.Start(sshd); err != nil {
			logf("sshd: %v", err)
		}
	}
	if keygen == nil {
		logf("sshd: starting with the host keys the image has (%s makes one only when %s is missing)", keygenPath, hostKeyPath)
		startSSHDNow()
		return
	}
	started := time.Now()
	keygen.Done = func(ws syscall.WaitStatus) {
		logf("ssh-keygen (%s): %s after %.1fs; starting sshd", hostKeyPath, describe(ws), time.Since(started).Seconds())
		startSSHDNow()
	}
	if err := sup.Start(*keygen); err != nil {
		logf("ssh-keygen: %v; starting sshd with the host keys it has", err)
		startSSHDNow()
	}
}
