#!/bin/sh
# mig-agent package, after its files are in place (deb postinst, rpm %post).
# deb: $1 is "configure" and $2 the version replaced (empty on a first
# install), or "abort-*" when an upgrade or removal is rolled back;
# rpm: $1 is 1 on a first install and 2 or more on an upgrade.
set -e

upgrade=no
case "$1" in
configure) [ -z "$2" ] || upgrade=yes ;;
abort-*) upgrade=yes ;;
[0-9]*) [ "$1" -lt 2 ] || upgrade=yes ;;
esac

# Tight permissions, whatever an earlier version or an operator left: the
# configuration directory is root's (0750), the state directories (the
# agent's identity, replay journal and outbox; the loader's state) root's
# only (0700). Their contents are never touched.
mkdir -p /etc/mig /var/lib/mig-agent /var/lib/mig-loader
chown root:root /etc/mig /var/lib/mig-agent /var/lib/mig-loader
chmod 0750 /etc/mig
chmod 0700 /var/lib/mig-agent /var/lib/mig-loader

if command -v systemctl >/dev/null 2>&1; then
	# Enabling works without a running systemd (an image being built).
	systemctl enable mig-agent.service mig-loader.timer >/dev/null 2>&1 || true
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
		if [ "$upgrade" = yes ]; then
			# The new binary is in place: restart the agent if it runs.
			systemctl try-restart mig-agent.service || true
		else
			# Starts only if its configuration exists (ConditionPathExists).
			systemctl start mig-agent.service || true
		fi
		systemctl start mig-loader.timer || true
	fi
fi

if [ ! -e /etc/mig/agent.json ]; then
	echo "mig-agent: not started: no configuration. Write /etc/mig/agent.json (owner root, mode 0600), then run: systemctl start mig-agent"
fi
if [ ! -e /etc/mig/loader.json ]; then
	echo "mig-agent: the loader (agent updates) is idle until /etc/mig/loader.json exists (owner root, mode 0600)"
fi
exit 0
