package vmruntime

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/banger-dev/banger/internal/agentclient"
	"github.com/banger-dev/banger/internal/agentproto"
	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/hostnet"
	"github.com/banger-dev/banger/internal/termsafe"
	"github.com/banger-dev/banger/internal/validate"
)

// Reidentify makes a cloned guest its own machine through its agent: new
// /etc/machine-id and SSH host keys (the clone's disks carry the source's),
// its hostname, and with memory (the guest resumed with the source's
// network state in RAM) its MAC, address and default route. It is one
// agent exec of a fixed script that starts as few programs as it can: under
// TCG every exec is a round trip of about 0.1 s and every program the guest
// starts 0.1-0.3 s (ssh-keygen more), and a clone waits for all of them.
// Values reach the script as its arguments, never inside its text, and are
// parsed here first (the address lines go to `ip -batch`).
func (r *Runtime) Reidentify(ctx context.Context, vm api.VM, memory bool) error {
	argv, stdin, err := reidentifyCommand(vm, memory, r.Config.Subnet)
	if err != nil {
		return err
	}
	return guestRun(ctx, agentclient.Client{Dial: r.dialer(vm)}, argv, stdin)
}

// reidentifyCommand returns the guest command and its stdin: the new host
// keys' private halves, made here (native code takes milliseconds where the
// guest's ssh-keygen takes a second under TCG). They travel on stdin, not
// in argv, which every guest process can read, and are not kept.
func reidentifyCommand(vm api.VM, memory bool, subnet netip.Prefix) ([]string, []byte, error) {
	mac, err := net.ParseMAC(vm.MAC)
	if err != nil {
		return nil, nil, fmt.Errorf("clone %s: MAC %q: %w", vm.Name, vm.MAC, err)
	}
	ip, err := netip.ParseAddr(vm.IP)
	if err != nil {
		return nil, nil, fmt.Errorf("clone %s: address %q: %w", vm.Name, vm.IP, err)
	}
	if err := validate.VMName(vm.Name); err != nil {
		return nil, nil, err
	}
	network := "0"
	if memory {
		network = "1"
	}
	addr := netip.PrefixFrom(ip, subnet.Bits()).String()
	gw := hostnet.Gateway(subnet).String()
	var stdin []byte
	argv := []string{"sh", "-c", reidentifyScript, "banger-reidentify", network, mac.String(), addr, gw, vm.Name}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	for _, key := range []crypto.Signer{edPriv, ecPriv} { // the script's order
		block, err := ssh.MarshalPrivateKey(key, hostKeyComment)
		if err != nil {
			return nil, nil, err
		}
		pub, err := ssh.NewPublicKey(key.Public())
		if err != nil {
			return nil, nil, err
		}
		stdin = append(append(stdin, pem.EncodeToMemory(block)...), "--\n"...)
		argv = append(argv, strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n")+" "+hostKeyComment)
	}
	return argv, stdin, nil
}

// hostKeyComment is the comment images/guest/banger-hostkeys gives the keys
// it makes at first boot.
const hostKeyComment = "root@banger"

// reidentifyScript's arguments: $1 "1" to move the network (a clone with
// memory), $2 MAC, $3 address/prefix, $4 gateway, $5 hostname, $6 and $7
// the ed25519 and ECDSA public host keys; stdin holds the two private keys
// in that order, each ended by a "--" line. Shell builtins write the
// hostname, machine-id and keys (one rm first, so every key file is new
// and made under umask 077); sshd_config.d/banger.conf names exactly these
// two host keys.
// A failed step names itself on stderr, which guestRun quotes.
const reidentifyScript = `set -u
network=$1 mac=$2 addr=$3 gw=$4 name=$5 edpub=$6 ecpub=$7
fail() { echo "banger: $1" >&2; exit 1; }
if [ "$network" = 1 ]; then
	ip -batch - <<EOF || fail "moving eth0 to $mac, $addr via $gw failed"
link set dev eth0 address $mac
addr flush dev eth0
addr add $addr dev eth0
route replace default via $gw
EOF
fi
printf '%s' "$name" > /proc/sys/kernel/hostname || fail "setting the hostname failed"
printf '%s\n' "$name" > /etc/hostname || fail "writing /etc/hostname failed"
read -r uuid < /proc/sys/kernel/random/uuid || fail "reading a random id failed"
IFS=-
set -- $uuid
unset IFS
printf '%s%s%s%s%s\n' "$@" > /etc/machine-id || fail "writing /etc/machine-id failed"
rm -f /etc/ssh/ssh_host_* || fail "removing the source's host keys failed"
umask 077
for type in ed25519 ecdsa; do
	key=/etc/ssh/ssh_host_${type}_key
	while IFS= read -r line && [ "$line" != -- ]; do printf '%s\n' "$line"; done > "$key" || fail "writing the $type host key failed"
	[ -s "$key" ] || fail "no $type host key on stdin"
done
umask 022
printf '%s\n' "$edpub" > /etc/ssh/ssh_host_ed25519_key.pub || fail "writing the ed25519 public key failed"
printf '%s\n' "$ecpub" > /etc/ssh/ssh_host_ecdsa_key.pub || fail "writing the ecdsa public key failed"
systemctl restart ssh 2>/dev/null || sv restart sshd >/dev/null || fail "restarting sshd failed"
`

// guestRun runs one command through the agent and fails on a non-zero
// exit, quoting a bounded, sanitised piece of its output.
func guestRun(ctx context.Context, c agentclient.Client, argv []string, stdin []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conn, err := c.Exec(ctx, agentproto.ExecRequest{Argv: argv, TimeoutMillis: 90_000})
	if err != nil {
		return fmt.Errorf("guest %q: %w", argv, err)
	}
	defer conn.Close()
	var out boundedBuffer
	exit, err := agentclient.RunExec(conn, agentclient.ExecIO{Stdin: bytes.NewReader(stdin), Stdout: &out, Stderr: &out})
	if err != nil {
		return fmt.Errorf("guest %q: %w", argv, err)
	}
	if exit.Code != 0 || exit.Signal != 0 || exit.TimedOut {
		return fmt.Errorf("guest %q: exit %d (signal %d, timed out %v): %s", argv, exit.Code, exit.Signal, exit.TimedOut,
			termsafe.String(out.String()))
	}
	return nil
}

// boundedBuffer keeps the first 4 KiB written to it: guest output is
// untrusted and only quoted in errors.
type boundedBuffer struct{ b bytes.Buffer }

func (w *boundedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (w *boundedBuffer) String() string { return w.b.String() }

// CloneDisks gives the new VM dst the disks saved in dir, and records its
// system disk as cloned from the snapshot's image build (so its next start
// keeps it rather than re-cloning the image).
func (r *Runtime) CloneDisks(ctx context.Context, dst api.VM, dir string, m api.SnapshotManifest) error {
	img, err := r.Image(ctx, m.Image)
	if err != nil {
		return err
	}
	f := r.Layout.VM(dst.ID)
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return err
	}
	if err := r.RestoreDisks(ctx, dst, dir, m); err != nil {
		return err
	}
	return os.WriteFile(rootDiskStamp(f), []byte(m.ImageSHA256+" "+img.RootfsPath+"\n"), 0o600)
}

// WaitIdentity waits until a re-identified clone's agent reports its new
// hostname and its sshd answers on its new address.
func (r *Runtime) WaitIdentity(ctx context.Context, vm api.VM) error {
	c := agentclient.Client{Dial: r.dialer(vm)}
	hctx, cancel := context.WithTimeout(ctx, r.Config.BootTimeout)
	defer cancel()
	for {
		h, _, err := c.Health(hctx)
		if err == nil && h.Hostname == vm.Name {
			break
		}
		select {
		case <-hctx.Done():
			return fmt.Errorf("the clone's agent does not report hostname %s (last: %q, %v)", vm.Name, h.Hostname, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	return r.waitSSH(ctx, vm, r.Layout.VM(vm.ID))
}
