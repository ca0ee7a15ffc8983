#!/usr/bin/env bash
# Bootstrap a minimal Debian tree for a banger image and write it as a tar
# archive (numeric owners, modes, device nodes, xattrs), the form the build
# cache keeps: a tarball carries root-owned files and device nodes even when
# the build runs as a normal user.
#
# With mmdebstrap (the default): one apt pass, as root (--mode=root) or as a
# normal user in a user namespace (--mode=unshare, uidmap and subordinate
# ids). With debootstrap (the fallback where mmdebstrap is missing, root
# only): into a directory next to the output, then tar.
#
# Parameters come only from the environment (set by banger, never spliced
# into a shell string):
#   BANGER_OUTPUT     the tar archive to write (must not exist yet)
#   BANGER_SUITE      Debian suite (default bookworm)
#   BANGER_MIRROR     Debian mirror (default http://deb.debian.org/debian)
#   BANGER_PACKAGES   comma-separated packages for --include
#   BANGER_TOOL       mmdebstrap (default) | debootstrap
#   BANGER_MODE       mmdebstrap mode: root (default) | unshare
#   BANGER_APT_CACHE  mmdebstrap: directory of .debs shared between builds
#                     (downloads only what it lacks; optional)
#   BANGER_DRY_RUN    when 1, print the bootstrap argv (one word a line) and stop
set -euo pipefail

output=${BANGER_OUTPUT:?BANGER_OUTPUT must name the tar archive to write}
suite=${BANGER_SUITE:-bookworm}
mirror=${BANGER_MIRROR:-http://deb.debian.org/debian}
packages=${BANGER_PACKAGES:-}
tool=${BANGER_TOOL:-mmdebstrap}
mode=${BANGER_MODE:-root}
cache=${BANGER_APT_CACHE:-}

die() {
	echo "make-rootfs-debian: $*" >&2
	exit 2
}

# Refuse anything that could smuggle options into the bootstrap tool.
[[ $suite =~ ^[a-z][a-z0-9-]*$ ]] || die "invalid suite '$suite': use a Debian suite name such as bookworm"
[[ $mirror =~ ^(https?|file)://[^[:space:]]*$ ]] || die "invalid mirror '$mirror': use an http(s):// or file:// URL"
if [[ -n $packages && ! $packages =~ ^[a-z0-9][a-z0-9+.-]*(,[a-z0-9][a-z0-9+.-]*)*$ ]]; then
	die "invalid package list '$packages'"
fi
[[ $output == /* && $output != *[[:space:]]* ]] || die "output '$output' is not an absolute path without spaces"
[[ $mode =~ ^(root|unshare)$ ]] || die "invalid mode '$mode': use root or unshare"
# mmdebstrap's special hooks split their arguments on spaces.
[[ -z $cache || ($cache == /* && $cache != *[[:space:]]*) ]] || die "apt cache '$cache' is not an absolute path without spaces"

case $tool in
mmdebstrap)
	# The package lists stay in the tree: a build with extra packages
	# installs them with apt over the cached tree (pack-image.sh), and the
	# customization removes the lists from the image.
	argv=(mmdebstrap "--mode=$mode" --variant=minbase --components=main --skip=cleanup/apt/lists)
	if [[ -n $packages ]]; then
		argv+=("--include=$packages")
	fi
	if [[ -n $cache ]]; then
		# The .debs already in the cache are copied in and not downloaded
		# again; afterwards every .deb of this tree is copied back out
		# (mmdebstrap's documented recipe for a shared package cache). The
		# tree itself keeps none: mmdebstrap's cleanup removes them.
		# shellcheck disable=SC2016 # "$1" is for the hook's shell
		argv+=(--skip=download/empty --skip=essential/unlink
			'--setup-hook=mkdir -p "$1"/var/cache/apt/archives/'
			"--setup-hook=sync-in $cache /var/cache/apt/archives/"
			"--customize-hook=sync-out /var/cache/apt/archives $cache")
	fi
	argv+=("$suite" "$output" "$mirror")
	;;
debootstrap)
	[[ $mode == root ]] || die "debootstrap cannot run as a normal user: install mmdebstrap and uidmap (sudo apt-get install mmdebstrap uidmap)"
	tree=$output.tree
	argv=(debootstrap --variant=minbase --components=main --merged-usr)
	if [[ -n $packages ]]; then
		argv+=("--include=$packages")
	fi
	argv+=("$suite" "$tree" "$mirror")
	;;
*) die "invalid tool '$tool': use mmdebstrap or debootstrap" ;;
esac

if [[ ${BANGER_DRY_RUN:-0} == 1 ]]; then
	printf '%s\n' "${argv[@]}"
	exit 0
fi

[[ ! -e $output ]] || die "$output exists: remove it first"
if [[ -n $cache ]]; then
	mkdir -p "$cache"
fi

echo "make-rootfs-debian: $tool $suite from $mirror"
if [[ $tool == mmdebstrap ]]; then
	"${argv[@]}"
else
	trap 'rm -rf --one-file-system -- "$tree"' EXIT
	"${argv[@]}"
	# The downloaded .debs are not part of the tree (the lists stay, as
	# with mmdebstrap).
	rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/cache/apt/*.bin
	echo "make-rootfs-debian: writing $output"
	tar --create --file "$output" --directory "$tree" --numeric-owner --xattrs '--xattrs-include=*' --sort=name .
fi
echo "make-rootfs-debian: done"
