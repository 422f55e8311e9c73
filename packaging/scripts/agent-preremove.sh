#!/bin/sh
# mig-agent package, before its files are removed (deb prerm, rpm %preun).
# deb: $1 is "remove" on a removal, "upgrade" (or "failed-upgrade",
# "deconfigure") otherwise; rpm: $1 is 0 on a removal, 1 on an upgrade.
# On an upgrade the agent keeps running: the new package restarts it.
set -e

case "$1" in
remove | 0)
	if command -v systemctl >/dev/null 2>&1; then
		if [ -d /run/systemd/system ]; then
			systemctl disable --now mig-loader.timer mig-agent.service >/dev/null 2>&1 || true
			systemctl stop mig-loader.service >/dev/null 2>&1 || true
		else
			systemctl disable mig-loader.timer mig-agent.service >/dev/null 2>&1 || true
		fi
	fi
	;;
esac
exit 0
