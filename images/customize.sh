#!/usr/bin/env bash
# Turn a bootstrapped tree into a banger guest image. Shared by every distro;
# the distro-specific parts live in distro/<distro>.sh, sourced below.
#
# Everything is done from outside the target by writing files into it (unit
# enablement is a symlink, depmod takes a base dir), so nothing is mounted and
# a crash leaves no mounts or chroot processes behind.
#
# Parameters come only from the environment:
#   BANGER_ROOTFS          the tree to customize (required)
#   BANGER_DISTRO          debian | void (default debian)
#   BANGER_PUBKEY          SSH public key the image trusts for root (required)
#   BANGER_AGENT           guest agent binary (required)
#   BANGER_MODULES_DIR     kernel modules tree (/lib/modules/<version> content), optional
#   BANGER_KERNEL_VERSION  version the modules are installed as (required with BANGER_MODULES_DIR)
#   BANGER_INIT            systemd (default) | agent: the image has no init and
#                          boots with banger-agent as PID 1 (no bash, systemd
#                          units or boot scripts needed in the tree)
#   BANGER_OCI_CONFIG      with BANGER_INIT=agent: the image's ENTRYPOINT/CMD,
#                          ENV, WORKDIR and USER (JSON) for the agent to run
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
R=${BANGER_ROOTFS:?BANGER_ROOTFS must name the tree to customize}
distro=${BANGER_DISTRO:-debian}
pubkey=${BANGER_PUBKEY:?BANGER_PUBKEY must name the SSH public key to trust}
agent=${BANGER_AGENT:?BANGER_AGENT must name the guest agent binary}
modules=${BANGER_MODULES_DIR:-}
kver=${BANGER_KERNEL_VERSION:-}

log() { echo "customize: $*"; }
die() {
	echo "customize: $*" >&2
	exit 1
}

[[ -d $R/etc ]] || die "$R has no /etc: not a root filesystem tree"
if [[ ! -f $here/distro/$distro.sh ]]; then
	known=("$here"/distro/*.sh)
	known=("${known[@]##*/}")
	die "unknown distro '$distro': expected one of: ${known[*]%.sh}"
fi
[[ -r $pubkey ]] || die "public key $pubkey is not readable"
grep -Eq '^(ssh-|ecdsa-|sk-)[a-z0-9@.-]+ [A-Za-z0-9+/=]+' "$pubkey" || die "$pubkey is not an OpenSSH public key (expected 'ssh-ed25519 AAAA...')"
[[ -f $agent && -x $agent ]] || die "agent $agent is not an executable file"
if [[ -n $modules ]]; then
	[[ -d $modules ]] || die "modules dir $modules does not exist"
	[[ $kver =~ ^[A-Za-z0-9._+-]+$ ]] || die "BANGER_KERNEL_VERSION '$kver' is not a kernel version"
fi

install_modules() {
	if [[ -n $modules ]]; then
		log "kernel modules: /lib/modules/$kver"
		install -d -m 0755 "$R/usr/lib/modules"
		rm -rf "${R:?}/usr/lib/modules/$kver"
		cp -a "$modules" "$R/usr/lib/modules/$kver"
		depmod -b "$R" "$kver"
	else
		log "kernel modules: none given (the kernel must have its drivers built in)"
	fi
}

# in_tree resolves a top-level directory of the tree that may be a symlink
# (usrmerge: sbin -> usr/sbin), never leaving the tree.
in_tree() {
	local d=$1 t
	if [[ ! -L $R/$d ]]; then
		echo "$R/$d"
		return
	fi
	t=$(readlink "$R/$d")
	[[ $t != *..* ]] || die "/$d is a symlink leaving the tree ($t)"
	echo "$R/${t#/}"
}

if [[ ${BANGER_INIT:-systemd} == agent ]]; then
	config=${BANGER_OCI_CONFIG:?BANGER_OCI_CONFIG must name the image config with BANGER_INIT=agent}
	[[ -f $config ]] || die "image config $config is missing"
	log "init: banger-agent as PID 1 (/sbin/init)"
	install -d -m 0755 "$R/usr/local/bin" "$R/etc/banger"
	install -m 0755 "$agent" "$R/usr/local/bin/banger-agent"
	sbin=$(in_tree sbin)
	install -d -m 0755 "$sbin"
	rm -f "$sbin/init"
	ln -s /usr/local/bin/banger-agent "$sbin/init"
	install -m 0644 "$config" "$R/etc/banger/oci-config.json"
	log "image command: $(tr -d '\n' <"$config" | head -c 300)"
	for d in proc sys dev run tmp root; do
		[[ -e $R/$d || -L $R/$d ]] || install -d -m 0755 "$R/$d"
	done
	chmod 0700 "$R/root"
	install -d -m 0755 "$R/etc/ssh"
	install -m 0644 "$pubkey" "$R/etc/ssh/banger_authorized_keys"
	rm -f "$R"/etc/ssh/ssh_host_*
	# depmod and the kernel look in /lib/modules: a tree without /lib
	# (busybox, distroless) gets the usrmerge link.
	if [[ ! -e $R/lib && ! -L $R/lib ]]; then
		install -d -m 0755 "$R/usr/lib"
		ln -s usr/lib "$R/lib"
	fi
	install_modules
	printf 'banger\n' >"$R/etc/hostname"
	[[ -e $R/etc/hosts ]] || printf '127.0.0.1\tlocalhost\n' >"$R/etc/hosts"
	rm -f "$R/etc/resolv.conf"
	printf '# written by banger-agent at boot from the kernel command line\n' >"$R/etc/resolv.conf"
	log "done"
	exit 0
fi

# shellcheck source=distro/debian.sh
source "$here/distro/$distro.sh"

log "root's shell: /bin/bash"
[[ -x $R/bin/bash || -x $R/usr/bin/bash ]] || die "bash is missing from the tree"
awk -F: -v OFS=: '$1 == "root" { $7 = "/bin/bash" } { print }' "$R/etc/passwd" >"$R/etc/passwd.banger"
chmod --reference="$R/etc/passwd" "$R/etc/passwd.banger"
mv "$R/etc/passwd.banger" "$R/etc/passwd"

log "sshd: key-only, root by key, trusting the bundle key"
install -d -m 0755 "$R/etc/ssh/sshd_config.d"
install -m 0644 "$here/guest/sshd-banger.conf" "$R/etc/ssh/sshd_config.d/banger.conf"
install -m 0644 "$pubkey" "$R/etc/ssh/banger_authorized_keys"
rm -f "$R"/etc/ssh/ssh_host_*
log "removed baked-in SSH host keys (banger-hostkeys makes them per VM)"

log "machine-id: emptied (each VM makes its own on first boot)"
: >"$R/etc/machine-id"
chmod 0444 "$R/etc/machine-id"
if [[ -f $R/var/lib/dbus/machine-id && ! -L $R/var/lib/dbus/machine-id ]]; then
	rm -f "$R/var/lib/dbus/machine-id"
fi

log "fstab: work disk LABEL=banger-root on /root"
install -m 0644 "$here/guest/fstab" "$R/etc/fstab"

log "agent: /usr/local/bin/banger-agent"
install -d -m 0755 "$R/usr/local/bin" "$R/usr/local/lib/banger"
install -m 0755 "$agent" "$R/usr/local/bin/banger-agent"

log "boot scripts: /usr/local/lib/banger"
for s in banger-net banger-home banger-hostkeys; do
	install -m 0755 "$here/guest/$s" "$R/usr/local/lib/banger/$s"
done

install_modules

# debootstrap copies the build host's name; banger-net sets the VM's at boot.
log "hostname: banger until banger-net sets the VM's name"
printf 'banger\n' >"$R/etc/hostname"
if [[ -f $R/etc/hosts ]] && ! grep -q '# banger$' "$R/etc/hosts"; then
	printf '127.0.1.1\tbanger # banger\n' >>"$R/etc/hosts"
fi

# C.UTF-8 is built into glibc: no locales package needed, and pam_env and
# ssh sessions stop complaining about a missing /etc/default/locale.
if [[ ! -e $R/etc/default/locale ]]; then
	install -d -m 0755 "$R/etc/default"
	printf 'LANG=C.UTF-8\n' >"$R/etc/default/locale"
fi

log "resolv.conf: written by banger-net at boot"
rm -f "$R/etc/resolv.conf"
printf '# written by banger-net at boot from the kernel command line\n' >"$R/etc/resolv.conf"

# Services: one description (services.tsv), rendered by the distro part,
# plus the distro's own (distro/<distro>.services, same format) if any.
services=("$here/services.tsv")
if [[ -f $here/distro/$distro.services ]]; then
	services+=("$here/distro/$distro.services")
fi
for f in "${services[@]}"; do
	while IFS=$'\t' read -r name kind cmd desc after before; do
		[[ -z $name || $name == \#* ]] && continue
		log "service $name ($kind): $desc"
		distro_install_service "$name" "$kind" "$cmd" "$desc" "$after" "$before"
	done <"$f"
done

distro_mask_units "$here/distro/$distro.mask"
# Optional hook for what one distro lacks and the others' packages provide.
if declare -F distro_finish >/dev/null; then
	distro_finish
fi
distro_clean
log "done"
