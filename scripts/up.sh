#!/usr/bin/env bash
# The main journey on a fresh Debian machine (`make up`): install the host
# packages banger needs (only the missing ones), build the binaries, build
# the runtime bundle and the default Debian image if absent, boot a VM named
# "demo", wait for its agent, run `uname -a` in it over ssh, and say what to
# do next. Re-running it is fast: everything built is cached and reused.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
vm_name=${BANGER_DEMO_VM:-demo}

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	else
		sudo "$@"
	fi
}

# Host packages: ask apt only for what is missing.
packages=(qemu-system-x86 qemu-utils mmdebstrap uidmap debootstrap e2fsprogs openssh-client
	iproute2 nftables busybox-static cpio kmod ca-certificates)
missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing host packages: ${missing[*]}"
	as_root apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v go >/dev/null 2>&1; then
	echo "banger: Go is needed to build banger; install Go 1.26 (https://go.dev/doc/install) and re-run" >&2
	exit 1
fi

say "building banger"
make -s build
export PATH="$repo/bin:$PATH"

# A normal user reaches privileged host work (taps, bridge, NAT) only through
# the root-owned banger-helper and a sudoers drop-in that grants its verbs and
# nothing else (docs/security.md). Installed, or refreshed after a rebuild,
# with one sudo step.
helper=/usr/local/libexec/banger/banger-helper
if [ "$(id -u)" -ne 0 ] && ! { cmp -s bin/banger-helper "$helper" &&
	sudo -n -l "$helper" tap-del bg-00000000 >/dev/null 2>&1; }; then
	say "installing the privileged helper at $helper and granting its verbs (and nothing else) to $(id -un): sudo asks once"
	sudo ./bin/banger-helper install --user "$(id -un)"
fi

say "runtime bundle (kernel, initramfs, agent, ssh key)"
banger bundle build

if ! banger image show debian >/dev/null 2>&1; then
	say "building the default Debian image (first time: a few minutes; cached afterwards)"
	# As root, or as you in a user namespace (mmdebstrap --mode=unshare and
	# your subordinate ids): no sudo. Where that is not possible, the build
	# says what is missing and the exact fix (banger doctor --scope image-build).
	banger image build --name debian
fi

state=$(banger vm show "$vm_name" --output json 2>/dev/null | sed -n 's/.*"state": *"\([a-z]*\)".*/\1/p' | head -n1 || true)
case "$state" in
"")
	say "creating VM $vm_name"
	banger vm create --name "$vm_name"
	;;
running) say "VM $vm_name is already running" ;;
*)
	say "starting VM $vm_name"
	banger vm start "$vm_name"
	;;
esac

say "running uname -a in $vm_name"
banger vm ssh "$vm_name" -- uname -a

cat <<MSG

banger is up. Next:
  banger vm ssh $vm_name          a shell in the VM (your work lives in /root)
  banger tui                 every VM, its health and the host's capacity
  banger vm stop $vm_name         stop it (disks are kept)
  banger vm delete $vm_name -y    remove it
  banger doctor              check the host
MSG
