-- 0001: the first schema.
--
-- Times are TEXT in RFC 3339 with exactly nine fraction digits, in UTC
-- ("2006-01-02T15:04:05.000000000Z"), so that they compare and sort as text.
-- The agents table's columns are a contract with internal/target's Compile,
-- which writes WHERE conditions over them.

CREATE TABLE agents (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL,
	queueloc      TEXT NOT NULL,
	mode          TEXT NOT NULL,
	version       TEXT NOT NULL,
	pid           INTEGER NOT NULL,
	status        TEXT NOT NULL,
	heartbeattime TEXT NOT NULL,
	starttime     TEXT NOT NULL,
	environment   TEXT NOT NULL, -- JSON of action.Environment
	tags          TEXT NOT NULL  -- JSON object
) STRICT;
CREATE INDEX agents_status ON agents (status);
CREATE INDEX agents_heartbeattime ON agents (heartbeattime);

CREATE TABLE agent_credentials (
	agent_id      TEXT PRIMARY KEY,
	public_key    BLOB NOT NULL,
	password_hash BLOB NOT NULL,
	enrolled_at   TEXT NOT NULL
) STRICT;

CREATE TABLE investigators (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	name        TEXT NOT NULL,
	fingerprint TEXT NOT NULL UNIQUE,
	public_key  TEXT NOT NULL,
	status      TEXT NOT NULL,
	permissions TEXT NOT NULL, -- JSON array of strings
	created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE actions (
	id             INTEGER PRIMARY KEY, -- the signed action ID
	body           TEXT NOT NULL,       -- JSON of the signed fields and signatures, parameters verbatim
	name           TEXT NOT NULL,
	target         TEXT NOT NULL,
	validfrom      TEXT NOT NULL,
	expireafter    TEXT NOT NULL,
	status         TEXT NOT NULL,
	investigators  TEXT NOT NULL,       -- JSON array of action.Investigator
	created_at     TEXT NOT NULL,
	starttime      TEXT,
	finishtime     TEXT,
	lastupdatetime TEXT NOT NULL
) STRICT;
CREATE INDEX actions_expireafter ON actions (expireafter);
CREATE INDEX actions_created ON actions (created_at, id);

CREATE TABLE commands (
	id         INTEGER PRIMARY KEY,
	action_id  INTEGER NOT NULL REFERENCES actions (id),
	agent_id   TEXT NOT NULL,
	agent_name TEXT NOT NULL,
	status     TEXT NOT NULL,
	code       TEXT NOT NULL DEFAULT '',
	error      TEXT NOT NULL DEFAULT '',
	results    TEXT,                      -- JSON array of action.Result
	found      INTEGER NOT NULL DEFAULT 0, -- 1 if any result found anything
	starttime  TEXT NOT NULL,
	finishtime TEXT
) STRICT;
CREATE INDEX commands_action ON commands (action_id, id);
CREATE INDEX commands_agent_status ON commands (agent_id, status);
CREATE INDEX commands_action_status ON commands (action_id, status);
