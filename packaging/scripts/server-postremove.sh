#!/bin/sh
# mig-server package, after its files are removed (deb postrm, rpm %postun).
# deb: $1 is "remove", "purge", "upgrade", ...; rpm: $1 is 0 on a removal,
# 1 on an upgrade.
#
# A removal keeps /var/lib/mig-server (the database, keys) and
# /etc/mig-server. A deb purge deletes both; rpm has no purge: delete them by
# hand. The mig-server user and group stay (files elsewhere, such as
# backups, may still be theirs); userdel mig-server removes them.
set -e

case "$1" in
remove | purge | 0)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
	fi
	;;
esac
if [ "$1" = purge ]; then
	rm -rf /var/lib/mig-server /etc/mig-server
fi
exit 0
