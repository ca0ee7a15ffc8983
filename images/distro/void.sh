# shellcheck shell=bash
# Void (runit) part of customize.sh: sourced, uses $R and log from it.
#
# runit layout on Void: stage 1 (/etc/runit/1) sources every
# /etc/runit/core-services/*.sh in name order after mounting the
# filesystems (03-) and setting up the system (05-); stage 2 supervises
# every service linked in /etc/runit/runsvdir/default (-> /etc/sv/NAME).

# Oneshots run in stage 1, after Void's own core services and before any
# supervised service (sshd) starts; numbered in services.tsv order.
void_oneshot_seq=90

# distro_install_service NAME KIND COMMAND DESCRIPTION AFTER BEFORE
# AFTER/BEFORE are systemd names: runit's stages already give the order.
distro_install_service() {
	local name=$1 kind=$2 cmd=$3 desc=$4
	local core=$R/etc/runit/core-services sv=$R/etc/sv/$name
	case $kind in
	oneshot)
		install -d -m 0755 "$core"
		rm -f "$core"/[0-9][0-9]-"$name".sh
		local f=$core/$void_oneshot_seq-$name.sh
		void_oneshot_seq=$((void_oneshot_seq + 1))
		{
			echo "# Installed by banger: $desc."
			echo "# Sourced by runit stage 1 (/bin/sh): must not exit."
			echo "$cmd || echo \"banger: $name failed\" >&2"
		} >"$f"
		chmod 0644 "$f"
		;;
	daemon)
		install -d -m 0755 "$sv" "$R/etc/runit/runsvdir/default"
		{
			echo "#!/bin/sh"
			echo "# Installed by banger: $desc."
			echo "exec 2>&1"
			echo "exec $cmd"
		} >"$sv/run"
		chmod 0755 "$sv/run"
		# As Void's own services do: runsv keeps its state in /run, so /etc
		# could stay read-only.
		ln -sfn "/run/runit/supervise.$name" "$sv/supervise"
		ln -sfn "/etc/sv/$name" "$R/etc/runit/runsvdir/default/$name"
		;;
	*)
		echo "customize: service $name: unknown kind '$kind'" >&2
		return 1
		;;
	esac
}

# distro_mask_units FILE disables every runit service listed in FILE.
distro_mask_units() {
	local name n=0
	while read -r name; do
		[[ -z $name || $name == \#* ]] && continue
		if [[ -L $R/etc/runit/runsvdir/default/$name ]]; then
			rm -f "$R/etc/runit/runsvdir/default/$name"
			n=$((n + 1))
		fi
	done <"$1"
	log "disabled $n runit services useless in a VM"
}

distro_clean() {
	rm -rf "$R"/var/cache/xbps/*
	log "cleaned the xbps cache"
}

# distro_finish: what Void lacks that Debian's packages already provide.
distro_finish() {
	# Void's stock sshd_config may not read sshd_config.d: include the banger
	# drop-in first, so its values win (the first value of a keyword wins).
	local cfg=$R/etc/ssh/sshd_config
	if [[ ! -f $cfg ]] || ! grep -Eq '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\.d/\*\.conf' "$cfg"; then
		{
			echo "# banger: drop-ins first (the first value of a keyword wins)"
			echo "Include /etc/ssh/sshd_config.d/*.conf"
			if [[ -f $cfg ]]; then cat "$cfg"; fi
		} >"$cfg.banger"
		chmod 0644 "$cfg.banger"
		mv "$cfg.banger" "$cfg"
		log "sshd_config: includes sshd_config.d/*.conf"
	fi

	# sshd refuses even key logins to a locked account ('!...') when it does
	# not use PAM, and an empty password would allow console logins: '*'
	# means "no password login" and nothing else.
	if [[ -f $R/etc/shadow ]]; then
		awk -F: -v OFS=: '$1 == "root" && ($2 == "" || $2 ~ /^!/) { $2 = "*" } { print }' "$R/etc/shadow" >"$R/etc/shadow.banger"
		chmod --reference="$R/etc/shadow" "$R/etc/shadow.banger"
		mv "$R/etc/shadow.banger" "$R/etc/shadow"
		log "root: key login only (password field '*')"
	fi

	# Void's skel has .bash_profile, not the .profile banger-home seeds: a
	# login shell (ssh) must still read .bashrc.
	install -d -m 0755 "$R/etc/skel"
	if [[ ! -f $R/etc/skel/.profile ]]; then
		cat >"$R/etc/skel/.profile" <<'PROFILE'
# ~/.profile: read by login shells (installed by banger).
if [ -n "$BASH_VERSION" ] && [ -f "$HOME/.bashrc" ]; then
	. "$HOME/.bashrc"
fi
PROFILE
		chmod 0644 "$R/etc/skel/.profile"
		log "skel: .profile that reads .bashrc"
	fi
	if [[ ! -f $R/etc/skel/.bashrc ]]; then
		printf '# ~/.bashrc (installed by banger)\n[[ $- != *i* ]] && return\nalias ls="ls --color=auto"\n' >"$R/etc/skel/.bashrc"
		chmod 0644 "$R/etc/skel/.bashrc"
	fi

	# No systemd to fill the emptied machine-id: do it on the first boot.
	install -d -m 0755 "$R/etc/runit/core-services"
	cat >"$R/etc/runit/core-services/89-banger-machine-id.sh" <<'MACHINEID'
# Installed by banger: a machine-id of this VM's own on its first boot.
[ -s /etc/machine-id ] || tr -d '-' </proc/sys/kernel/random/uuid >/etc/machine-id
MACHINEID
	chmod 0644 "$R/etc/runit/core-services/89-banger-machine-id.sh"
}
