-- 0006: each result keeps the agent's signature over it (action.ResultSignature
-- as JSON: the agent's public key, its name, the hash of the action encoding
-- it checked, the signed times and the Ed25519 signature), stored as the
-- agent sent it and returned with the result, so that clients verify it.
-- NULL for results without one (older agents, commands the server ended).
ALTER TABLE commands ADD COLUMN signature text;
