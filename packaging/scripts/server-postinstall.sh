#!/bin/sh
# mig-server package, after its files are in place (deb postinst, rpm %post).
# deb: $1 is "configure" and $2 the version replaced (empty on a first
# install), or "abort-*"; rpm: $1 is 1 on a first install, 2 or more on an
# upgrade.
set -e

upgrade=no
case "$1" in
configure) [ -z "$2" ] || upgrade=yes ;;
abort-*) upgrade=yes ;;
[0-9]*) [ "$1" -lt 2 ] || upgrade=yes ;;
esac

# The state directory is the server's only (0700); the configuration
# directory is root's, readable by the server's group (0750).
mkdir -p /var/lib/mig-server /etc/mig-server
chown mig-server:mig-server /var/lib/mig-server
chmod 0700 /var/lib/mig-server
chown root:mig-server /etc/mig-server
chmod 0750 /etc/mig-server

if command -v systemctl >/dev/null 2>&1; then
	systemctl enable mig-server.service >/dev/null 2>&1 || true
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
		if [ "$upgrade" = yes ]; then
			systemctl try-restart mig-server.service || true
		else
			# Starts only if its configuration exists (ConditionPathExists).
			systemctl start mig-server.service || true
		fi
	fi
fi

if [ ! -e /etc/mig-server/server.json ]; then
	echo "mig-server: not started: it never runs with default secrets. Write /etc/mig-server/server.json (owner mig-server, mode 0600), then run: systemctl start mig-server"
fi
exit 0
