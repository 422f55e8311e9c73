-- 0008: nonces of investigators' API tokens, each kept until its token
-- expires so that a token is accepted once; expired ones are purged.
CREATE TABLE token_nonces (
	key_id  TEXT NOT NULL, -- the signer's key fingerprint
	nonce   TEXT NOT NULL, -- lower-case hex
	expires TEXT NOT NULL,
	PRIMARY KEY (key_id, nonce)
) STRICT, WITHOUT ROWID;
CREATE INDEX token_nonces_expires ON token_nonces (expires);
