-- 0008: mig-loader's manifests (the body is the manifest's JSON with its
-- signatures) and the files they name, kept by SHA-256.
CREATE TABLE manifests (
	id           bigserial PRIMARY KEY,
	name         text COLLATE "C" NOT NULL,
	os           text COLLATE "C" NOT NULL,
	arch         text COLLATE "C" NOT NULL,
	serial       bigint NOT NULL,
	status       text NOT NULL CHECK (status IN ('active', 'disabled')),
	body         bytea NOT NULL,
	created_at   timestamptz NOT NULL,
	published_by text NOT NULL,
	UNIQUE (name, os, arch, serial)
);
CREATE TABLE manifest_files (
	sha256     text COLLATE "C" PRIMARY KEY, -- lower-case hex
	size       bigint NOT NULL,
	data       bytea NOT NULL,
	created_at timestamptz NOT NULL
);
