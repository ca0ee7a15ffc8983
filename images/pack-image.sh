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
#   BANGER_LOWER       optional: the same tree unpacked (unpack-tree.sh), used
#                      read-only as the lower layer of an overlay mounted at
#                      BANGER_ROOTFS instead of unpacking the archive
#   BANGER_ROOTFS      directory to unpack into (must not exist; removed on exit)
#   BANGER_IMAGE       the ext4 file to pack into (exists: created by the caller)
#   BANGER_IMAGE_KB    its size in KiB
#   BANGER_LABEL       its filesystem label
#   BANGER_EXCLUDE     optional file of archive members not to unpack, one a
#                      line (device nodes, which a user namespace cannot make:
#                      the caller writes them into the image afterwards)
#   BANGER_EXTRA_PACKAGES  optional: comma-separated packages to install
#                      with the tree's own package manager over the base
#                      tree (so the cached tree serves builds with any extra
#                      packages)
#   BANGER_PACKAGE_TOOL  the tree's package manager for them: /usr/bin/apt-get
#                      (default), /usr/bin/dnf, /sbin/apk or /usr/sbin/apk
#   BANGER_APT_CACHE   optional: the shared .deb cache apt downloads into
#   BANGER_APT_INDEX   optional, with BANGER_APT_CACHE: a directory kept
#                      between builds of this base tree, where apt keeps its
#                      parsed package index (srcpkgcache.bin)
#   and the parameters of customize.sh (BANGER_DISTRO, BANGER_PUBKEY, ...).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
base=${BANGER_BASE:?BANGER_BASE must name the base tree archive}
R=${BANGER_ROOTFS:?BANGER_ROOTFS must name the directory to unpack into}
img=${BANGER_IMAGE:?BANGER_IMAGE must name the image file}
kb=${BANGER_IMAGE_KB:?BANGER_IMAGE_KB must give the image size}
label=${BANGER_LABEL:?BANGER_LABEL must give the filesystem label}
exclude=${BANGER_EXCLUDE:-}
lower=${BANGER_LOWER:-}
extra=${BANGER_EXTRA_PACKAGES:-}
tool=${BANGER_PACKAGE_TOOL:-/usr/bin/apt-get}
cache=${BANGER_APT_CACHE:-}
index=${BANGER_APT_INDEX:-}

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
case $tool in
/usr/bin/apt-get) name_re='[a-z0-9][a-z0-9+.-]*' ;;
/usr/bin/dnf | /sbin/apk | /usr/sbin/apk) name_re='[A-Za-z0-9_][A-Za-z0-9_+.-]*' ;;
*) die "unknown package manager '$tool': expected /usr/bin/apt-get, /usr/bin/dnf, /sbin/apk or /usr/sbin/apk" ;;
esac
if [[ -n $extra && ! $extra =~ ^$name_re(,$name_re)*$ ]]; then
	die "invalid package list '$extra'"
fi
[[ -z $cache || $cache == /* ]] || die "apt cache '$cache' is not an absolute path"
[[ -z $index || ($index == /* && -n $cache) ]] || die "apt index '$index' must be an absolute path, given with BANGER_APT_CACHE"

# Mounts made below $R for apt, newest last; undone before anything is
# removed or packed (rm would otherwise walk into a bind-mounted cache).
mounts=()
placeholders=()
unmount_all() {
	local i
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
		umount "${mounts[i]}"
	done
	mounts=()
	if ((${#placeholders[@]} > 0)); then
		rm -f -- "${placeholders[@]}"
	fi
	placeholders=()
}
cleanup() {
	unmount_all || true
	if [[ -n $overlay ]]; then
		umount "$R" || true
	fi
	rm -rf --one-file-system -- "$R" "$R.upper" "$R.work"
}
overlay=
trap cleanup EXIT
mkdir -m 0755 "$R"
# The cached tree under an overlay: nothing is copied, changes land in
# $R.upper. Where overlayfs cannot be mounted (old kernel, no user
# namespace support), the archive is unpacked instead. Installing extra
# packages needs redirect_dir (dpkg renames directories, which an overlay
# otherwise refuses with EXDEV), and redirect_dir needs real root (trusted
# xattrs): in a user namespace the archive is unpacked for them.
opts=
if [[ -n $extra ]]; then
	if [[ $(tr -s ' \t' ' ' </proc/self/uid_map) == " 0 0 4294967295" ]]; then
		opts=,redirect_dir=on
	else
		lower=
	fi
fi
if [[ -n $lower && -d $lower && $lower != *[,:]* && $R != *[,:]* ]]; then
	mkdir -m 0755 "$R.upper" "$R.work"
	echo "pack: mounting the cached tree under an overlay"
	if mount -t overlay overlay -o "lowerdir=$lower,upperdir=$R.upper,workdir=$R.work$opts" "$R"; then
		overlay=1
	else
		echo "pack: overlayfs could not be mounted here: unpacking the archive instead"
	fi
fi
if [[ -z $overlay ]]; then
	untar=(tar --extract --file "$base" --directory "$R" --same-owner --same-permissions --numeric-owner --xattrs '--xattrs-include=*')
	if [[ -n $exclude ]]; then
		untar+=(--anchored --no-wildcards "--exclude-from=$exclude")
	fi
	echo "pack: unpacking the base tree"
	"${untar[@]}"
fi

# install_extra installs the extra packages over the unpacked tree with the
# tree's own package manager, in a chroot with /proc, the basic device nodes
# (bound from the host where the tree has none: a user namespace cannot make
# them) and the host's resolver; apt also gets the shared .deb cache. A
# failed install ends the script with a "pack: packages:" line naming the
# command and its exit status (banger reports it with the lines before).
install_extra() {
	local pkgs d st=0
	IFS=, read -r -a pkgs <<<"$extra"
	echo "pack: installing ${pkgs[*]} with ${tool##*/} over the base tree"
	# A container image may lack /dev and /proc (customize.sh adds them for
	# the agent-booted ones anyway).
	for d in dev proc; do
		[[ -e $R/$d || -L $R/$d ]] || install -d -m 0755 "$R/$d"
	done
	for d in null zero full random urandom tty; do
		if [[ ! -e $R/dev/$d && ! -L $R/dev/$d ]]; then
			: >"$R/dev/$d"
			placeholders+=("$R/dev/$d")
		fi
		if [[ ! -c $R/dev/$d ]]; then
			mount --bind "/dev/$d" "$R/dev/$d"
			mounts+=("$R/dev/$d")
		fi
	done
	mount -t proc proc "$R/proc"
	mounts+=("$R/proc")
	# The tree's resolv.conf may be a link pointing anywhere: replace it
	# (customize.sh writes the image's own).
	rm -f "$R/etc/resolv.conf"
	cp /etc/resolv.conf "$R/etc/resolv.conf"
	local cmd
	case $tool in
	/usr/bin/apt-get)
		# dpkg skips its fsync calls (--force-unsafe-io): the tree is
		# thrown away after mkfs.ext4 reads it, so nothing needs to
		# survive a crash.
		local opts=(-o APT::Sandbox::User=root -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-unsafe-io)
		# apt's parsed package index is kept between builds of this base
		# tree (mounted as the tree's /var/cache/apt, the .deb cache inside
		# it): parsing the tree's 50 MB package list is most of what apt
		# does before it installs one package. apt checks srcpkgcache.bin
		# against the lists' sizes and modification times and rebuilds it
		# when they differ; the lists are the cached tree's own, so it stays
		# valid for the tree's life. No pkgcache.bin is kept
		# (-o Dir::Cache::pkgcache=): it holds the tree's installed state,
		# which dpkg changes, and apt would rebuild it after dpkg for
		# nothing.
		if [[ -n $index ]]; then
			mkdir -p "$index/archives"
			mount --bind "$index" "$R/var/cache/apt"
			mounts+=("$R/var/cache/apt")
			# debconf's pre-configuration pass (dpkg-preconfigure, from the
			# tree's 70debconf) changes nothing here: with the
			# noninteractive frontend the packages' config scripts run from
			# their postinst.
			printf '#clear DPkg::Pre-Install-Pkgs;\n' >"$index/banger-apt.conf.$$"
			mv -f "$index/banger-apt.conf.$$" "$index/banger-apt.conf"
			opts+=(-c /var/cache/apt/banger-apt.conf -o Dir::Cache::pkgcache=)
		fi
		if [[ -n $cache ]]; then
			mkdir -p "$cache"
			mount --bind "$cache" "$R/var/cache/apt/archives"
			mounts+=("$R/var/cache/apt/archives")
		fi
		printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
		chmod 0755 "$R/usr/sbin/policy-rc.d"
		cmd=(apt-get -q -y "${opts[@]}" install --no-install-recommends "${pkgs[@]}")
		if ! chroot "$R" /usr/bin/env DEBIAN_FRONTEND=noninteractive "${cmd[@]}"; then
			echo "pack: apt failed; refreshing the package lists and trying once more"
			# The refreshed lists are this build's alone: apt keeps no
			# index for them, so the shared one stays the cached tree's.
			opts+=(-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)
			cmd=(apt-get -q -y "${opts[@]}" install --no-install-recommends "${pkgs[@]}")
			chroot "$R" /usr/bin/env apt-get -q "${opts[@]}" update || true
			chroot "$R" /usr/bin/env DEBIAN_FRONTEND=noninteractive "${cmd[@]}" || st=$?
		fi
		rm -f "$R/usr/sbin/policy-rc.d"
		;;
	/usr/bin/dnf)
		cmd=(dnf install -y --setopt=install_weak_deps=False "${pkgs[@]}")
		chroot "$R" "$tool" "${cmd[@]:1}" || st=$?
		if ((st == 0)); then
			chroot "$R" "$tool" clean all || st=$?
			((st == 0)) || cmd=(dnf clean all)
		fi
		;;
	*)
		cmd=(apk add --no-cache "${pkgs[@]}")
		chroot "$R" "$tool" "${cmd[@]:1}" || st=$?
		;;
	esac
	if ((st != 0)); then
		echo "pack: packages: ${cmd[*]} exited with status $st" >&2
		exit 3
	fi
	unmount_all
}
if [[ -n $extra ]]; then
	install_extra
fi

bash "$here/customize.sh"

echo "pack: mkfs.ext4 -d ($((kb / 1024)) MiB, sparse)"
mkfs.ext4 -F -q -L "$label" -m 1 -d "$R" "$img" "${kb}k"
if [[ -n $overlay ]]; then
	umount "$R"
	overlay=
fi
echo "pack: done"
