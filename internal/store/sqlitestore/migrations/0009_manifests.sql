-- 0009: mig-loader's manifests (the body is the manifest's JSON with its
-- signatures) and the files they name, kept by SHA-256.
CREATE TABLE manifests (
	id           INTEGER PRIMARY KEY,
	name         TEXT    NOT NULL,
	os           TEXT    NOT NULL,
	arch         TEXT    NOT NULL,
	serial       INTEGER NOT NULL,
	status       TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
	body         BLOB    NOT NULL,
	created_at   TEXT    NOT NULL,
	published_by TEXT    NOT NULL,
	UNIQUE (name, os, arch, serial)
) STRICT;
CREATE TABLE manifest_files (
	sha256     TEXT    PRIMARY KEY, -- lower-case hex
	size       INTEGER NOT NULL,
	data       BLOB    NOT NULL,
	created_at TEXT    NOT NULL
) STRICT, WITHOUT ROWID;
