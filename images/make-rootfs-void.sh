#!/usr/bin/env bash
# Make a Void Linux tree for a banger image, either
#  - from a repository with xbps (static xbps works: no Void host needed):
#    base-minimal plus BANGER_PACKAGES, then the package scripts are run as
#    Void's own rootfs builder (void-mklive) does; or
#  - from a Void ROOTFS tarball (BANGER_TARBALL, offline): extracted as is;
#    a package is installed from the repository only when the tree lacks
#    the command that proves it (so a complete tarball needs no network).
#
# Parameters come only from the environment (set by banger, never spliced
# into a shell string):
#   BANGER_ROOTFS    target directory (must not exist yet, or be empty)
#   BANGER_REPO      repository URL or local path (default https://repo-default.voidlinux.org/current)
#   BANGER_LIBC      glibc (default) | musl: musl uses REPO/musl, as Void mirrors lay it out
#   BANGER_ARCH      x86_64 (default) | aarch64
#   BANGER_XBPS      xbps-install to use, e.g. /opt/xbps/usr/bin/xbps-install.static (default: from PATH)
#   BANGER_XBPS_KEYS directory of repository keys (*.plist) to trust (default: next to BANGER_XBPS, else /var/db/xbps/keys)
#   BANGER_TARBALL   Void ROOTFS tarball (any compression tar reads)
#   BANGER_PACKAGES  comma-separated: NAME (always installed) or NAME=COMMAND
#                    (installed when COMMAND is missing from a tarball's tree)
#   BANGER_MODE      root (default) | unshare: running as root of a user
#                    namespace, which cannot make device nodes: a tarball
#                    that carries any is refused, naming them
#   BANGER_DRY_RUN   when 1, print the commands (one a line) and stop
set -euo pipefail

rootfs=${BANGER_ROOTFS:?BANGER_ROOTFS must name the target directory}
repo=${BANGER_REPO:-https://repo-default.voidlinux.org/current}
libc=${BANGER_LIBC:-glibc}
arch=${BANGER_ARCH:-x86_64}
xbps=${BANGER_XBPS:-xbps-install}
tarball=${BANGER_TARBALL:-}
packages=${BANGER_PACKAGES:-}
mode=${BANGER_MODE:-root}

die() {
	echo "make-rootfs-void: error: $*" >&2
	exit 2
}
log() { echo "make-rootfs-void: $*"; }

# Refuse anything that could smuggle options into xbps or tar.
[[ $repo =~ ^(https?://|/)[^[:space:]]*$ ]] || die "invalid repository '$repo': use an http(s):// URL or an absolute path"
[[ $arch =~ ^(x86_64|aarch64)$ ]] || die "invalid architecture '$arch': use x86_64 or aarch64"
case $libc in
glibc) xbps_arch=$arch ;;
musl)
	xbps_arch=$arch-musl
	repo=${repo%/}/musl
	;;
*) die "invalid libc '$libc': use glibc or musl" ;;
esac
name_re='[A-Za-z0-9][A-Za-z0-9._+-]*'
if [[ -n $packages && ! $packages =~ ^$name_re(=$name_re)?(,$name_re(=$name_re)?)*$ ]]; then
	die "invalid package list '$packages'"
fi
[[ $xbps == */* || $xbps =~ ^xbps-install ]] || die "invalid xbps '$xbps': name xbps-install or its absolute path"
[[ $mode =~ ^(root|unshare)$ ]] || die "invalid mode '$mode': use root or unshare"
if [[ -n $tarball && $tarball != /* ]]; then
	die "tarball '$tarball' is not an absolute path"
fi

# xbps-reconfigure lives beside xbps-install (xbps-install.static ->
# xbps-reconfigure.static).
reconfigure=${xbps%xbps-install*}xbps-reconfigure${xbps##*xbps-install}

IFS=, read -r -a entries <<<"$packages"

# has_command tells whether the tree has COMMAND in one of its bin dirs (a
# symlink counts: absolute targets point into the tree, not at the host).
has_command() {
	local d
	for d in usr/bin usr/sbin bin sbin; do
		if [[ -e $rootfs/$d/$1 || -L $rootfs/$d/$1 ]]; then
			return 0
		fi
	done
	return 1
}

# install_argv PKG... is the xbps-install command for the tree.
install_argv() {
	argv=(env "XBPS_ARCH=$xbps_arch" "$xbps" -S -y -i -r "$rootfs" -R "$repo" "$@")
}

# trust_keys copies the repository keys into the tree, so xbps checks the
# repository's signature instead of asking whether to trust whatever key it
# is offered.
trust_keys() {
	local dst=$rootfs/var/db/xbps/keys src
	if compgen -G "$dst/*.plist" >/dev/null; then
		return 0
	fi
	for src in "${BANGER_XBPS_KEYS:-}" "$(dirname "$(dirname "$(dirname "$xbps")")")/var/db/xbps/keys" /var/db/xbps/keys; do
		if [[ -n $src ]] && compgen -G "$src/*.plist" >/dev/null; then
			install -d -m 0755 "$dst"
			cp -- "$src"/*.plist "$dst/"
			log "trusting the repository keys from $src"
			return 0
		fi
	done
	die "no Void repository keys (*.plist) found next to $xbps or in /var/db/xbps/keys: extract the whole xbps-static tarball (it carries var/db/xbps/keys), or set BANGER_XBPS_KEYS"
}

need_xbps() {
	if [[ $xbps == */* && -x $xbps ]] || { [[ $xbps != */* ]] && command -v "$xbps" >/dev/null; }; then
		return 0
	fi
	die "$1 needs xbps, and '$xbps' is not installed: download https://repo-default.voidlinux.org/static/xbps-static-latest.x86_64-musl.tar.xz, extract it (mkdir -p /opt/xbps && tar -xJf FILE -C /opt/xbps) and set xbps_static = \"/opt/xbps/usr/bin/xbps-install.static\" in banger's config.toml"
}

if [[ -z $tarball ]]; then
	names=()
	declare -A seen=()
	for e in "${entries[@]}"; do
		if [[ -z ${seen[${e%%=*}]:-} ]]; then
			seen[${e%%=*}]=1
			names+=("${e%%=*}")
		fi
	done
	install_argv base-minimal "${names[@]}"
	steps=("${argv[*]}"
		"env XBPS_ARCH=$xbps_arch $reconfigure -r $rootfs -f base-files"
		"env XBPS_ARCH=$xbps_arch $reconfigure -r $rootfs -a")
else
	tar_argv=(tar -x -p --numeric-owner --xattrs '--xattrs-include=*' -f "$tarball" -C "$rootfs")
	steps=("${tar_argv[*]}")
fi
if [[ ${BANGER_DRY_RUN:-0} == 1 ]]; then
	printf '%s\n' "${steps[@]}"
	exit 0
fi

if [[ -d $rootfs ]] && [[ -n $(ls -A "$rootfs") ]]; then
	die "$rootfs is not empty: remove it first"
fi
mkdir -p "$rootfs"

if [[ -z $tarball ]]; then
	need_xbps "building from $repo"
	trust_keys
	log "xbps-install base-minimal and ${#names[@]} packages from $repo ($xbps_arch)"
	"${argv[@]}"
	# As void-mklive does: base-files' scripts could not run before the tree
	# had a shell, and every package is configured once all are unpacked.
	env "XBPS_ARCH=$xbps_arch" "$reconfigure" -r "$rootfs" -f base-files
	env "XBPS_ARCH=$xbps_arch" "$reconfigure" -r "$rootfs" -a
else
	[[ -f $tarball && -r $tarball ]] || die "tarball $tarball is not a readable file"
	if [[ $mode == unshare ]]; then
		# tar -tv shows a device node's type as the first letter (c or b).
		devices=$(tar -t -v --numeric-owner -f "$tarball" | awk '$1 ~ /^[cb]/ && n < 5 { print $NF; n++ }' | tr '\n' ' ')
		if [[ -n $devices ]]; then
			die "$tarball carries device nodes (${devices% }), which a user namespace cannot make: build it as root (sudo banger image build --distro void ...), or build from the repository without --from-tarball"
		fi
	fi
	log "extracting $tarball"
	"${tar_argv[@]}"
	if [[ ! -d $rootfs/etc || ! -d $rootfs/usr ]]; then
		die "$tarball is not a root filesystem tarball (no etc/ and usr/ at its top level): use a Void ROOTFS tarball (void-x86_64-ROOTFS-*.tar.xz)"
	fi
	[[ -d $rootfs/etc/runit ]] || die "$tarball has no /etc/runit: not a Void (runit) tree"
	missing=()
	declare -A seen=()
	for e in "${entries[@]}"; do
		if [[ $e == *=* ]] && has_command "${e#*=}"; then
			continue
		fi
		if [[ -z ${seen[${e%%=*}]:-} ]]; then
			seen[${e%%=*}]=1
			missing+=("${e%%=*}")
		fi
	done
	if ((${#missing[@]} > 0)); then
		log "the tarball lacks: ${missing[*]}"
		need_xbps "installing ${missing[*]} (not in the tarball)"
		trust_keys
		install_argv "${missing[@]}"
		"${argv[@]}"
		env "XBPS_ARCH=$xbps_arch" "$reconfigure" -r "$rootfs" -a
	else
		log "the tarball has every package the image needs: nothing to install"
	fi
fi

rm -rf "$rootfs"/var/cache/xbps/*

# The build cache keeps the tree as a tar archive (numeric owners, modes,
# device nodes, xattrs).
if [[ -n ${BANGER_OUTPUT:-} ]]; then
	log "writing $BANGER_OUTPUT"
	tar --create --file "$BANGER_OUTPUT" --directory "$rootfs" --numeric-owner --xattrs '--xattrs-include=*' --sort=name .
	rm -rf --one-file-system -- "$rootfs"
fi
log "done"
