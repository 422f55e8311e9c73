-- 0004: investigators' API keys, stored only as the SHA-256 of their secret.
CREATE TABLE api_keys (
	key_id          text COLLATE "C" PRIMARY KEY, -- 16 lower-case hex digits
	secret_hash     bytea NOT NULL,               -- SHA-256 of the secret
	investigator_id bigint NOT NULL REFERENCES investigators (id),
	name            text NOT NULL,
	permissions     text NOT NULL,                -- JSON array of strings
	created_at      timestamptz NOT NULL,
	created_at_ns   smallint NOT NULL,
	expire_after    timestamptz,
	expire_after_ns smallint,
	revoked_at      timestamptz,
	revoked_at_ns   smallint,
	last_used_at    timestamptz,
	last_used_at_ns smallint
);
CREATE INDEX api_keys_investigator ON api_keys (investigator_id, created_at);
