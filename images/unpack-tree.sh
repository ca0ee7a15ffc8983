#!/usr/bin/env bash
# Unpack a cached base tree archive into a directory once, so builds can
# mount it read-only as the lower layer of an overlay instead of unpacking
# it every time.
#
# Parameters come only from the environment (set by banger):
#   BANGER_BASE     the base tree's tar archive
#   BANGER_ROOTFS   the directory to unpack into (must not exist)
#   BANGER_EXCLUDE  optional file of archive members not to unpack, one a
#                   line (device nodes, in a user namespace)
set -euo pipefail

base=${BANGER_BASE:?BANGER_BASE must name the base tree archive}
R=${BANGER_ROOTFS:?BANGER_ROOTFS must name the directory to unpack into}
exclude=${BANGER_EXCLUDE:-}

die() {
	echo "unpack: $*" >&2
	exit 2
}
[[ $R == /* && $base == /* ]] || die "BANGER_ROOTFS and BANGER_BASE must be absolute paths"
[[ -f $base ]] || die "base archive $base is missing"
[[ ! -e $R ]] || die "$R exists: remove it first"

trap 'rm -rf --one-file-system -- "$R"' ERR
mkdir -m 0755 "$R"
untar=(tar --extract --file "$base" --directory "$R" --same-owner --same-permissions --numeric-owner --xattrs '--xattrs-include=*')
if [[ -n $exclude ]]; then
	untar+=(--anchored --no-wildcards "--exclude-from=$exclude")
fi
echo "unpack: unpacking the base tree once for the cache"
"${untar[@]}"
echo "unpack: done"
