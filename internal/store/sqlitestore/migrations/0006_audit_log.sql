-- 0006: the hash-chained audit log (package audit). Entries are only ever
-- appended, by one writer transaction at a time.
CREATE TABLE audit_log (
	seq     INTEGER PRIMARY KEY, -- 1, 2, 3, ... without gaps
	time    TEXT NOT NULL,       -- TimeFormat, whole microseconds
	actor   TEXT NOT NULL,
	kind    TEXT NOT NULL,
	object  TEXT NOT NULL,
	details TEXT NOT NULL,       -- JSON object of strings
	prev    TEXT NOT NULL,       -- hex SHA-256 of entry seq-1
	hash    TEXT NOT NULL        -- hex SHA-256 of this entry's encoding
) STRICT;
