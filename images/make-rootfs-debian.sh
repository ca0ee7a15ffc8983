#!/usr/bin/env bash
# Bootstrap a minimal Debian tree for a banger image.
#
# Parameters come only from the environment (set by banger, never spliced
# into a shell string):
#   BANGER_ROOTFS    target directory (must not exist yet, or be empty)
#   BANGER_SUITE     Debian suite (default bookworm)
#   BANGER_MIRROR    Debian mirror (default http://deb.debian.org/debian)
#   BANGER_PACKAGES  comma-separated packages for --include
#   BANGER_DRY_RUN   when 1, print the debootstrap argv (one word a line) and stop
set -euo pipefail

rootfs=${BANGER_ROOTFS:?BANGER_ROOTFS must name the target directory}
suite=${BANGER_SUITE:-bookworm}
mirror=${BANGER_MIRROR:-http://deb.debian.org/debian}
packages=${BANGER_PACKAGES:-}

# Refuse anything that could smuggle options into debootstrap.
if [[ ! $suite =~ ^[a-z][a-z0-9-]*$ ]]; then
	echo "make-rootfs-debian: invalid suite '$suite': use a Debian suite name such as bookworm" >&2
	exit 2
fi
if [[ ! $mirror =~ ^(https?|file):// ]]; then
	echo "make-rootfs-debian: invalid mirror '$mirror': use an http(s):// or file:// URL" >&2
	exit 2
fi
if [[ -n $packages && ! $packages =~ ^[a-z0-9][a-z0-9+.-]*(,[a-z0-9][a-z0-9+.-]*)*$ ]]; then
	echo "make-rootfs-debian: invalid package list '$packages'" >&2
	exit 2
fi

argv=(debootstrap --variant=minbase --components=main --merged-usr)
if [[ -n $packages ]]; then
	argv+=("--include=$packages")
fi
argv+=("$suite" "$rootfs" "$mirror")

if [[ ${BANGER_DRY_RUN:-0} == 1 ]]; then
	printf '%s\n' "${argv[@]}"
	exit 0
fi

if [[ -d $rootfs ]] && [[ -n $(ls -A "$rootfs") ]]; then
	echo "make-rootfs-debian: $rootfs is not empty: remove it first" >&2
	exit 2
fi

echo "make-rootfs-debian: debootstrap $suite from $mirror"
"${argv[@]}"

# The downloaded .debs and package lists are not part of the image.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
echo "make-rootfs-debian: done"
