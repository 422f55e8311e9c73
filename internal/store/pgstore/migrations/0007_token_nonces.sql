-- 0007: nonces of investigators' API tokens, each kept until its token
-- expires so that a token is accepted once; expired ones are purged.
CREATE TABLE token_nonces (
	key_id  text COLLATE "C" NOT NULL, -- the signer's key fingerprint
	nonce   text COLLATE "C" NOT NULL, -- lower-case hex
	expires timestamptz NOT NULL,
	PRIMARY KEY (key_id, nonce)
);
CREATE INDEX token_nonces_expires ON token_nonces (expires);
