#!/bin/sh
# banger initramfs /init, run by a static busybox: load the boot modules,
# wait for the root disk, mount it and hand over to its init.
# Kernel command line: root= (default /dev/vda; LABEL=/UUID= work too),
# rootfstype= (ext4), rootflags=, ro/rw, init= (/sbin/init),
# banger.rootwait=<seconds> (10), banger.debug (rescue shell on failure).
export PATH=/bin

mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys

root=/dev/vda
rootfstype=ext4
rootflags=
mode=ro
init=/sbin/init
rootwait=10
debug=0
# The command line is split on whitespace on purpose: one word per option.
# shellcheck disable=SC2013
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	root=*) root=${arg#root=} ;;
	rootfstype=*) rootfstype=${arg#rootfstype=} ;;
	rootflags=*) rootflags=${arg#rootflags=} ;;
	init=*) init=${arg#init=} ;;
	ro) mode=ro ;;
	rw) mode=rw ;;
	banger.rootwait=*) rootwait=${arg#banger.rootwait=} ;;
	banger.debug | banger.debug=1) debug=1 ;;
	esac
done

blockdevs() {
	found=
	for d in /sys/class/block/*; do
		[ -e "$d" ] && found="$found ${d##*/}"
	done
	echo "${found:- none}"
}

fail() {
	echo "banger initramfs: ERROR: $*"
	if [ "$debug" = 1 ]; then
		echo "banger initramfs: banger.debug is set: starting a shell; exit it to reboot"
		setsid cttyhack sh
	else
		echo "banger initramfs: boot with banger.debug on the kernel command line for a rescue shell"
	fi
	sleep 1
	# reboot ends both Firecracker (reboot=k) and QEMU (-no-reboot).
	reboot -f
	exit 1
}

while read -r mod; do
	[ -n "$mod" ] || continue
	# "File exists" (already loaded) is harmless; anything else shows up
	# below as a missing disk or a failed mount.
	insmod "/lib/modules/$mod" || echo "banger initramfs: warning: insmod $mod failed"
done </etc/banger/modules

case "$rootwait" in
'' | *[!0-9]*) rootwait=10 ;;
esac
tries=0
while :; do
	case "$root" in
	LABEL=* | UUID=*) dev=$(findfs "$root" 2>/dev/null) ;;
	*) dev=$root ;;
	esac
	if [ -n "$dev" ] && [ -b "$dev" ]; then
		break
	fi
	if [ "$tries" -ge $((rootwait * 10)) ]; then
		fail "root device $root did not appear within ${rootwait}s; block devices:$(blockdevs) (does the VM have a virtio-blk root disk?)"
	fi
	sleep 0.1
	tries=$((tries + 1))
done

opts=$mode
if [ -n "$rootflags" ]; then
	opts="$mode,$rootflags"
fi
mkdir -p /newroot
mount -t "$rootfstype" -o "$opts" "$dev" /newroot ||
	fail "cannot mount $dev ($rootfstype, $opts) as the root filesystem"
if [ ! -x "/newroot$init" ] && [ ! -L "/newroot$init" ]; then
	umount /newroot
	fail "$init is missing on the root filesystem $dev: is it a complete image?"
fi

for m in dev proc sys; do
	if [ -d "/newroot/$m" ]; then
		mount --move "/$m" "/newroot/$m" || umount -l "/$m"
	else
		umount -l "/$m"
	fi
done
exec switch_root /newroot "$init" "$@"
