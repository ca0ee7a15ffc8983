package vmruntime

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/sysexec"
)

// reidentifyHarness stands in for the guest: in mount, UTS and network
// namespaces of its own it binds the test's files over /etc/hostname,
// /etc/machine-id and /etc/ssh, gives itself an eth0 with the source's
// address, runs the argv Reidentify would send to the agent (stdin passed
// on), and prints what a guest would then have.
const reidentifyHarness = `set -e
T=$1; shift
mount --bind "$T/hostname" /etc/hostname
mount --bind "$T/machine-id" /etc/machine-id
mount --bind "$T/ssh" /etc/ssh
ip link add eth0 type veth peer name peer0
ip link set eth0 up
ip addr add 10.9.9.9/24 dev eth0
ip route add default via 10.9.9.1
rc=0
PATH="$T/stub:$PATH" "$@" || rc=$?
echo "rc=$rc"
echo "kernel-hostname=$(cat /proc/sys/kernel/hostname)"
ip -o link show dev eth0
ip -o -4 addr show dev eth0
ip route show default
`

// TestReidentifyScriptInNamespaces runs the clone's re-identification
// script for real (sh, ip) against a namespace that plays the guest, checks
// every identity it changes (the host keys with ssh-keygen), then that a
// failing step names itself.
func TestReidentifyScriptInNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for mount and network namespaces")
	}
	for _, p := range []string{"unshare", "ip", "ssh-keygen", "bash"} {
		if _, err := sysexec.LookPath(p); err != nil {
			t.Fatalf("needs %s: %v", p, err)
		}
	}
	subnet := netip.MustParsePrefix("10.9.9.0/24")
	vm := api.VM{Name: "clone1", MAC: "02:AA:bb:cc:dd:ee", IP: "10.9.9.50"}
	argv, stdin, err := reidentifyCommand(vm, true, subnet)
	if err != nil {
		t.Fatal(err)
	}
	run := func(dir string, stdin []byte) string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		full := append([]string{"unshare", "--mount", "--uts", "--net", "--propagation", "private",
			"sh", "-c", reidentifyHarness, "harness", dir}, argv...)
		res, err := sysexec.Exec{}.Run(ctx, sysexec.Cmd{Argv: full, Stdin: bytes.NewReader(stdin)})
		if err != nil {
			t.Fatalf("%v\nstdout: %s", err, res.Stdout)
		}
		return string(res.Stdout) + string(res.Stderr)
	}
	setup := func() string {
		dir := t.TempDir()
		for _, d := range []string{"ssh", "stub"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		files := map[string]string{
			"hostname":                 "source\n",
			"machine-id":               "0123456789abcdef0123456789abcdef\n",
			"ssh/ssh_host_ed25519_key": "the source's key\n",
			"ssh/ssh_host_rsa_key":     "a key the source had\n",
			// systemctl is stubbed: the host's must not be asked to restart ssh.
			"stub/systemctl": "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/../systemctl.args\"\n",
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}

	dir := setup()
	out := run(dir, stdin)
	for _, want := range []string{"rc=0", "kernel-hostname=clone1", "link/ether 02:aa:bb:cc:dd:ee", "inet 10.9.9.50/24", "default via 10.9.9.1 dev eth0"} {
		if !strings.Contains(out, want) {
			t.Errorf("after the script, want %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "10.9.9.9/") {
		t.Errorf("the source's address is still on eth0:\n%s", out)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("hostname"); got != "clone1\n" {
		t.Errorf("/etc/hostname = %q", got)
	}
	if id := read("machine-id"); !regexp.MustCompile(`^[0-9a-f]{32}\n$`).MatchString(id) || id == "0123456789abcdef0123456789abcdef\n" {
		t.Errorf("/etc/machine-id = %q, want a new 32-hex-digit id", id)
	}
	for i, typ := range []string{"ed25519", "ecdsa"} {
		key := filepath.Join(dir, "ssh", "ssh_host_"+typ+"_key")
		if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", key, err, st.Mode())
		}
		// The private key is one sshd can load, and its public half is
		// the .pub file and the argv's.
		pub, err := sysexec.Run(context.Background(), "ssh-keygen", "-y", "-f", key)
		if err != nil {
			t.Fatalf("ssh-keygen -y -f %s: %v", key, err)
		}
		fields := strings.Fields(read("ssh/ssh_host_" + typ + "_key.pub"))
		if len(fields) != 3 || strings.Join(strings.Fields(string(pub))[:2], " ") != fields[0]+" "+fields[1] ||
			argv[len(argv)-2+i] != strings.Join(fields, " ") {
			t.Errorf("%s: public half %q, .pub %q, argv %q", typ, pub, fields, argv[len(argv)-2+i])
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ssh", "ssh_host_rsa_key")); !os.IsNotExist(err) {
		t.Errorf("the source's RSA key survived: %v", err)
	}
	if got := read("systemctl.args"); got != "restart ssh\n" {
		t.Errorf("systemctl called with %q, want restart ssh", got)
	}

	// A failed step stops the script and names itself.
	out = run(setup(), stdin[:bytes.Index(stdin, []byte("--\n"))+3])
	if !strings.Contains(out, "rc=1") || !strings.Contains(out, "banger: no ecdsa host key on stdin") {
		t.Errorf("with one key on stdin, want rc=1 and the step named:\n%s", out)
	}
	// Each call makes keys of its own.
	if _, again, _ := reidentifyCommand(vm, true, subnet); bytes.Equal(again, stdin) {
		t.Error("two clones got the same host keys")
	}
}

func TestReidentifyArgvRefusesBadValues(t *testing.T) {
	subnet := netip.MustParsePrefix("10.9.9.0/24")
	for _, vm := range []api.VM{
		{Name: "ok", MAC: "02:aa:bb:cc:dd:ee\nlink del eth0", IP: "10.9.9.5"},
		{Name: "ok", MAC: "02:aa:bb:cc:dd:ee", IP: "10.9.9.5 dev lo"},
		{Name: "bad name", MAC: "02:aa:bb:cc:dd:ee", IP: "10.9.9.5"},
	} {
		if _, _, err := reidentifyCommand(vm, true, subnet); err == nil {
			t.Errorf("%+v: accepted", vm)
		}
	}
}
