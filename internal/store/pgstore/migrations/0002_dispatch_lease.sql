-- 0002: dispatch leases.
--
-- A server fanning an action out holds its dispatch lease: dispatch_owner
-- names one acquisition (never reused), (dispatch_expires,
-- dispatch_expires_ns) is when another server may take the dispatch over.
-- All are NULL when nobody holds it: before the dispatch starts and once it
-- finished. Every command is created in a transaction that updates the
-- action's row under the lease, so that a server whose lease was taken over
-- stores nothing more, and a takeover waits for a batch being written.
ALTER TABLE actions
	ADD COLUMN dispatch_owner      text COLLATE "C",
	ADD COLUMN dispatch_expires    timestamptz,
	ADD COLUMN dispatch_expires_ns smallint;
CREATE INDEX actions_pending ON actions (id) WHERE status = 'pending';
