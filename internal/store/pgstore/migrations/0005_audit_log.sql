-- 0005: the hash-chained audit log (package audit). Entries are only ever
-- appended, under the transaction-level advisory lock auditLockKey.
CREATE TABLE audit_log (
	seq     bigint PRIMARY KEY,           -- 1, 2, 3, ... without gaps
	time    timestamptz NOT NULL,         -- whole microseconds, as hashed
	actor   text NOT NULL,
	kind    text NOT NULL,
	object  text NOT NULL,
	details text NOT NULL,                -- JSON object of strings, kept as text (not jsonb) byte for byte
	prev    text COLLATE "C" NOT NULL,    -- hex SHA-256 of entry seq-1
	hash    text COLLATE "C" NOT NULL     -- hex SHA-256 of this entry's encoding
);
