#!/bin/sh
# mig-server package, before its files are removed (deb prerm, rpm %preun).
# deb: $1 is "remove" on a removal; rpm: $1 is 0 on a removal, 1 on an
# upgrade. On an upgrade the server keeps running: the new package restarts it.
set -e

case "$1" in
remove | 0)
	if command -v systemctl >/dev/null 2>&1; then
		if [ -d /run/systemd/system ]; then
			systemctl disable --now mig-server.service >/dev/null 2>&1 || true
		else
			systemctl disable mig-server.service >/dev/null 2>&1 || true
		fi
	fi
	;;
esac
exit 0
