#!/usr/bin/env bash
# Fleet benchmark: a server (or two), N simulated agents in a separate
# mig-fleet process, and mig-bench launching the seed's file search at every
# agent RUNS times. The last line of each mig-bench run is machine-readable.
#
#   bench/fleet/run.sh N [sqlite|postgres] [embedded|amqp|cluster] [RUNS]
#
#   sqlite    the embedded default (a fresh database in the work directory)
#   postgres  a fresh schema "migbench" in $MIG_BENCH_POSTGRES_URL
#             (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable;
#             psql must be installed)
#   embedded  the relay inside mig-server
#   amqp      RabbitMQ at $MIG_BENCH_AMQP (default guest:guest@127.0.0.1,
#             AMQP 5672, management 15672), in a fresh vhost deleted at the
#             end with the agents' users
#   cluster   two mig-server processes, each running one node of an embedded
#             relay cluster (needs postgres); agents spread over both nodes
#
# IDLE (default 5s) is how long mig-bench measures the idle server first.
# Binaries come from $BIN (default: built into a temporary directory). Ports
# 32664/32665 (API), 32222/32223 (relay) and 32622/32623 (routes) must be free.
set -euo pipefail

N=${1:?usage: run.sh N [sqlite|postgres] [embedded|amqp|cluster] [RUNS]}
STORE=${2:-sqlite}
RELAY=${3:-embedded}
RUNS=${4:-3}
PGURL=${MIG_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
AMQP=${MIG_BENCH_AMQP:-guest:guest@127.0.0.1}
[ "$RELAY" = cluster ] && [ "$STORE" != postgres ] && { echo "cluster needs postgres" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/mig-fleet-bench.XXXXXX)
if [ -z "${BIN:-}" ]; then
	BIN=$WORK/bin
	(cd "$ROOT" && go build -o "$BIN/" ./cmd/mig-server ./cmd/mig-fleet ./cmd/mig-bench ./cmd/mig)
fi
PIDS=()
VHOST=migbench-$$
MGMT="http://${AMQP#*@}:15672/api"
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "$RELAY" = amqp ]; then # the agents' users, then the vhost
		curl -sf -u "${AMQP%@*}" "$MGMT/vhosts/$VHOST/permissions" |
			grep -o '"user":"[0-9a-f]\{32\}"' | cut -d'"' -f4 |
			while read -r u; do curl -sf -u "${AMQP%@*}" -X DELETE "$MGMT/users/$u" || true; done
		curl -sf -u "${AMQP%@*}" -X DELETE "$MGMT/vhosts/$VHOST" || true
	fi
	[ -n "${KEEP:-}" ] || rm -rf "$WORK" "/dev/shm/mig-fleet-bench-$$"
}
trap cleanup EXIT

# The dev platform makes the CA, certificates, enrollment token, investigator
# key, ACL and client configuration; it is then stopped and, unless the
# defaults are measured, replaced by servers configured like production.
export HOME=$WORK/home
mkdir -p "$HOME"
D=$HOME/.mig/dev
"$BIN/mig-server" -dev -no-agent -loglevel warn -api 127.0.0.1:32664 -relay 127.0.0.1:32222 >"$WORK/dev.log" 2>&1 &
DEV=$!
for _ in $(seq 100); do [ -s "$HOME/.migrc" ] && [ -s "$D/enrollment-token" ] && break; sleep 0.1; done
TOKEN=$(cat "$D/enrollment-token")

case $STORE in
sqlite) STOREURL= ;;
postgres)
	psql -q "$PGURL" -c 'DROP SCHEMA IF EXISTS migbench CASCADE' -c 'CREATE SCHEMA migbench' >/dev/null
	STOREURL="$PGURL&search_path=migbench" ;;
*) echo "unknown store $STORE" >&2; exit 2 ;;
esac
if [ "$RELAY" = amqp ]; then
	curl -sf -u "${AMQP%@*}" -X PUT "$MGMT/vhosts/$VHOST"
	curl -sf -u "${AMQP%@*}" -X PUT -H 'content-type: application/json' \
		-d '{"configure":".*","write":".*","read":".*"}' "$MGMT/permissions/$VHOST/${AMQP%%:*}"
fi

# config I: the configuration of server I (0 or 1).
config() {
	local i=$1 relay
	case $RELAY in
	embedded) relay="{\"listen\": \"127.0.0.1:3222$((2 + i))\", \"publicurl\": \"tls://127.0.0.1:3222$((2 + i))\", \"ca\": \"$D/ca.pem\"}" ;;
	amqp) relay="{\"url\": \"amqp://$AMQP:5672/$VHOST\", \"managementurl\": \"http://$AMQP:15672\"}" ;;
	cluster) relay="{\"listen\": \"127.0.0.1:3222$((2 + i))\", \"publicurl\": \"tls://127.0.0.1:32222,tls://127.0.0.1:32223\", \"ca\": \"$D/ca.pem\",
	  \"cluster\": {\"name\": \"migbench\", \"nodename\": \"node$i\", \"listen\": \"127.0.0.1:3262$((2 + i))\",
	    \"routes\": [\"nats-route://127.0.0.1:3262$((3 - i))\"], \"user\": \"route\", \"password\": \"migbench-route-password\"}}" ;;
	*) echo "unknown relay $RELAY" >&2; exit 2 ;;
	esac
	cat <<EOF
{"api": {"listen": "127.0.0.1:3266$((4 + i))", "cert": "$D/server.pem", "key": "$D/server.key"},
 "relay": $relay,
 "store": "${STOREURL:-sqlite:$WORK/mig.db}",
 "enrollmenttokens": ["$TOKEN"], "loglevel": "warn"}
EOF
}

if [ "$STORE" = sqlite ] && [ "$RELAY" = embedded ]; then
	SP=$DEV # the embedded defaults: measure mig-server -dev itself
else
	kill "$DEV"; wait "$DEV" 2>/dev/null || true
	config 0 >"$WORK/server0.json"
	chmod 600 "$WORK/server0.json" # it holds the enrollment token: mig-server refuses it readable by others
	"$BIN/mig-server" -c "$WORK/server0.json" -add-investigator "Dev Investigator" -pubkey "$D/investigator.pub.asc" >/dev/null
	"$BIN/mig-server" -c "$WORK/server0.json" >"$WORK/server0.log" 2>&1 &
	SP=$!
	PIDS+=("$SP")
	if [ "$RELAY" = cluster ]; then
		config 1 >"$WORK/server1.json"
		chmod 600 "$WORK/server1.json"
		"$BIN/mig-server" -c "$WORK/server1.json" >"$WORK/server1.log" 2>&1 &
		PIDS+=("$!")
	fi
	sleep 2
fi
PIDS+=("$DEV")

"$BIN/mig-fleet" -server https://127.0.0.1:32664/api/v1 -ca "$D/ca.pem" -token "$TOKEN" \
	-keyring "$D/investigator.pub.asc" -acl "$D/acl.json" -n "$N" -dir "/dev/shm/mig-fleet-bench-$$" \
	-start-concurrency 128 -loglevel warn >"$WORK/fleet.log" 2>&1 &
PIDS+=("$!")

echo "# N=$N store=$STORE relay=$RELAY server pid=$SP ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
for r in $(seq "$RUNS"); do
	"$BIN/mig-bench" -pid "$SP" -agents "$N" -idle "${IDLE:-5s}" -mig "$BIN/mig" | tail -1
done
