-- 0005: investigators' API keys, stored only as the SHA-256 of their secret.
CREATE TABLE api_keys (
	key_id          TEXT PRIMARY KEY, -- 16 lower-case hex digits
	secret_hash     BLOB NOT NULL,    -- SHA-256 of the secret
	investigator_id INTEGER NOT NULL REFERENCES investigators (id),
	name            TEXT NOT NULL,
	permissions     TEXT NOT NULL,    -- JSON array of strings
	created_at      TEXT NOT NULL,
	expire_after    TEXT,
	revoked_at      TEXT,
	last_used_at    TEXT
) STRICT;
CREATE INDEX api_keys_investigator ON api_keys (investigator_id, created_at);
