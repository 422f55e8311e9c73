#!/usr/bin/env bash
# Baselines: 100,000 rows updated in 100 transactions of 1,000 by the
# databases' own command-line tools, on tables shaped like MIG's commands.
# BenchmarkStoreResultsBaseline (internal/store/sqlitestore) runs the SQLite
# update in the Go driver the store uses.
set -euo pipefail
PG=${MIG_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
RES='[{"foundanything":false,"success":true,"elements":{"s1":[{"file":"/etc/passwd","fileinfo":{"size":2345,"mode":"-rw-r--r--"}}]},"statistics":{"filescount":42,"totalhits":1}}]'
psql -q "$PG" <<SQL >/dev/null
DROP SCHEMA IF EXISTS mig_baseline CASCADE; CREATE SCHEMA mig_baseline; SET search_path=mig_baseline;
CREATE TABLE commands (id bigint PRIMARY KEY, action_id bigint NOT NULL, agent_id text COLLATE "C" NOT NULL,
 agent_name text NOT NULL, status text NOT NULL, code text NOT NULL DEFAULT '', error text NOT NULL DEFAULT '',
 results text, found boolean NOT NULL DEFAULT false, starttime timestamptz NOT NULL, starttime_ns smallint NOT NULL,
 finishtime timestamptz, finishtime_ns smallint) WITH (fillfactor = 20); -- as migration 0003
CREATE INDEX ON commands (action_id, id); CREATE INDEX ON commands (agent_id);
INSERT INTO commands (id, action_id, agent_id, agent_name, status, starttime, starttime_ns)
 SELECT g, 1, 'agent-'||lpad(g::text,6,'0'), 'x', 'sent', now(), 0 FROM generate_series(1,100000) g;
VACUUM ANALYZE commands;
SQL
{ echo "SET search_path=mig_baseline;"; for lo in $(seq 1 1000 100000); do
  echo "BEGIN; UPDATE commands SET status='success', results='$RES', finishtime=now(), finishtime_ns=0 WHERE id BETWEEN $lo AND $((lo+999)) AND status='sent'; COMMIT;"
done; } > /tmp/mig-baseline-pg.sql
s=$(date +%s.%N); psql -q "$PG" -f /tmp/mig-baseline-pg.sql >/dev/null; e=$(date +%s.%N)
echo "psql: $(echo "100000 / ($e - $s)" | bc) rows/s"
psql -q "$PG" -c "DROP SCHEMA mig_baseline CASCADE" >/dev/null

DB=$(mktemp -d)/baseline.db
sqlite3 "$DB" >/dev/null <<SQL
PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
CREATE TABLE commands (id INTEGER PRIMARY KEY, action_id INTEGER NOT NULL, agent_id TEXT NOT NULL, agent_name TEXT NOT NULL,
 status TEXT NOT NULL, code TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '', results TEXT, found INTEGER NOT NULL DEFAULT 0,
 starttime TEXT NOT NULL, finishtime TEXT) STRICT;
CREATE INDEX commands_action ON commands (action_id, id); CREATE INDEX commands_agent_status ON commands (agent_id, status);
CREATE INDEX commands_action_status ON commands (action_id, status);
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM g WHERE n < 100000)
 INSERT INTO commands (id, action_id, agent_id, agent_name, status, starttime) SELECT n, 1, printf('agent-%06d', n), 'x', 'sent', '2025-01-01T00:00:00.000000000Z' FROM g;
SQL
{ echo "PRAGMA synchronous=NORMAL;"; for lo in $(seq 1 1000 100000); do
  echo "BEGIN IMMEDIATE; UPDATE commands SET status='success', results='$RES', finishtime='2025-01-01T00:00:01.000000000Z' WHERE id BETWEEN $lo AND $((lo+999)) AND status='sent'; COMMIT;"
done; } > /tmp/mig-baseline-sqlite.sql
s=$(date +%s.%N); sqlite3 "$DB" < /tmp/mig-baseline-sqlite.sql >/dev/null; e=$(date +%s.%N)
echo "sqlite3: $(echo "100000 / ($e - $s)" | bc) rows/s"
rm -rf "$(dirname "$DB")"
