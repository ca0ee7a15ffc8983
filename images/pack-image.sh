#!/usr/bin/env bash
# Make a banger image from a cached base tree: unpack the tar archive,
# customize the tree (customize.sh), and pack it into an ext4 file with
# mkfs.ext4 -d (nothing is mounted). Runs as root, or as root of a user
# namespace (a normal user's build): either way mkfs.ext4 records the owners
# as this namespace sees them, so root-owned files stay root-owned.
#
# Parameters come only from the environment (set by banger, never spliced
# into a shell string):
#   BANGER_BASE        the base tree's tar archive (read only)
#   BANGER_ROOTFS      directory to unpack into (must not exist; removed on exit)
#   BANGER_IMAGE       the ext4 file to pack into (exists: created by the caller)
#   BANGER_IMAGE_KB    its size in KiB
#   BANGER_LABEL       its filesystem label
#   BANGER_EXCLUDE     optional file of archive members not to unpack, one a
#                      line (device nodes, which a user namespace cannot make:
#                      the caller writes them into the image afterwards)
#   and the parameters of customize.sh (BANGER_DISTRO, BANGER_PUBKEY, ...).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
base=${BANGER_BASE:?BANGER_BASE must name the base tree archive}
R=${BANGER_ROOTFS:?BANGER_ROOTFS must name the directory to unpack into}
img=${BANGER_IMAGE:?BANGER_IMAGE must name the image file}
kb=${BANGER_IMAGE_KB:?BANGER_IMAGE_KB must give the image size}
label=${BANGER_LABEL:?BANGER_LABEL must give the filesystem label}
exclude=${BANGER_EXCLUDE:-}

die() {
	echo "pack: $*" >&2
	exit 2
}
[[ $R == /* && $img == /* && $base == /* ]] || die "BANGER_ROOTFS, BANGER_IMAGE and BANGER_BASE must be absolute paths"
[[ $kb =~ ^[0-9]+$ ]] || die "BANGER_IMAGE_KB '$kb' is not a number"
[[ $label =~ ^[A-Za-z0-9_-]{1,16}$ ]] || die "BANGER_LABEL '$label' is not a filesystem label"
[[ -f $base ]] || die "base archive $base is missing"
[[ -f $img ]] || die "image file $img is missing"
[[ ! -e $R ]] || die "$R exists: remove it first"

trap 'rm -rf --one-file-system -- "$R"' EXIT
mkdir -m 0755 "$R"
untar=(tar --extract --file "$base" --directory "$R" --same-owner --same-permissions --numeric-owner --xattrs '--xattrs-include=*')
if [[ -n $exclude ]]; then
	untar+=(--anchored --no-wildcards "--exclude-from=$exclude")
fi
echo "pack: unpacking the base tree"
"${untar[@]}"

bash "$here/customize.sh"

echo "pack: mkfs.ext4 -d ($((kb / 1024)) MiB, sparse)"
mkfs.ext4 -F -q -L "$label" -m 1 -d "$R" "$img" "${kb}k"
echo "pack: done"
