# shellcheck shell=bash
# Debian (systemd) part of customize.sh: sourced, uses $R and log from it.

# distro_install_service NAME KIND COMMAND DESCRIPTION AFTER BEFORE
# writes a systemd unit and enables it the way systemctl would (a symlink in
# multi-user.target.wants), without running systemctl inside the tree.
distro_install_service() {
	local name=$1 kind=$2 cmd=$3 desc=$4 after=$5 before=$6
	local unit=$R/etc/systemd/system/$name.service
	install -d -m 0755 "$R/etc/systemd/system/multi-user.target.wants"
	{
		echo "# Installed by banger."
		echo "[Unit]"
		echo "Description=$desc"
		[[ $after != - ]] && echo "After=$after"
		[[ $before != - ]] && echo "Before=$before"
		[[ $name == banger-home ]] && echo "RequiresMountsFor=/root"
		echo
		echo "[Service]"
		case $kind in
		oneshot)
			echo "Type=oneshot"
			echo "RemainAfterExit=yes"
			;;
		daemon)
			echo "Type=simple"
			echo "Restart=always"
			echo "RestartSec=1"
			;;
		*)
			echo "customize: service $name: unknown kind '$kind'" >&2
			return 1
			;;
		esac
		echo "ExecStart=$cmd"
		echo "StandardOutput=journal+console"
		echo "StandardError=journal+console"
		echo
		echo "[Install]"
		echo "WantedBy=multi-user.target"
	} >"$unit"
	chmod 0644 "$unit"
	ln -sfn "/etc/systemd/system/$name.service" "$R/etc/systemd/system/multi-user.target.wants/$name.service"
}

# distro_mask_units FILE masks every unit listed in FILE (symlink to /dev/null).
distro_mask_units() {
	local unit
	while read -r unit; do
		[[ -z $unit || $unit == \#* ]] && continue
		ln -sfn /dev/null "$R/etc/systemd/system/$unit"
	done <"$1"
	log "masked $(grep -cv '^#' "$1") units useless in a VM"
}

distro_clean() {
	rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/apt/*.bin "$R"/var/lib/apt/lists/*
	rm -f "$R"/var/log/*.log "$R"/var/log/apt/*
	log "cleaned apt caches"
}
