#!/bin/sh
# mig-server package, before its files are unpacked (deb preinst, rpm %pre):
# the system user and group mig-server, so that the files the package owns
# by that name get it.
set -e

if ! getent group mig-server >/dev/null 2>&1; then
	groupadd --system mig-server
fi
if ! getent passwd mig-server >/dev/null 2>&1; then
	nologin=/usr/sbin/nologin
	[ -x "$nologin" ] || nologin=/sbin/nologin
	useradd --system --gid mig-server --home-dir /var/lib/mig-server --no-create-home \
		--shell "$nologin" --comment "MIG server" mig-server
fi
exit 0
