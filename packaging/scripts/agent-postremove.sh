#!/bin/sh
# mig-agent package, after its files are removed (deb postrm, rpm %postun).
# deb: $1 is "remove", "purge", "upgrade", "disappear" or "abort-*";
# rpm: $1 is 0 on a removal, 1 on an upgrade.
#
# A removal keeps the state directories (the agent's identity, replay
# journal and outbox; the loader's state) and /etc/mig: reinstalling gives
# back the same agent. Only a deb purge deletes them. rpm has no purge:
# delete /var/lib/mig-agent, /var/lib/mig-loader and /etc/mig by hand.
set -e

case "$1" in
remove | purge | 0)
	# The loader's copies of the binaries it replaced are not the package's.
	rm -f /usr/sbin/mig-agent.prev /usr/sbin/mig-loader.prev
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
	fi
	;;
esac
if [ "$1" = purge ]; then
	rm -rf /var/lib/mig-agent /var/lib/mig-loader /etc/mig
fi
exit 0
