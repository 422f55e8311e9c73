-- 0003: dispatch leases, and counters of new commands written by the store.
--
-- A server fanning an action out holds its dispatch lease: dispatch_owner
-- names one acquisition (never reused), dispatch_expires (TEXT, as every
-- time) is when another server may take the dispatch over. Both are NULL
-- when nobody holds it: before the dispatch starts and once it finished.
-- Every command is created in a transaction that checks the lease, so that
-- a server whose lease was taken over stores nothing more.
ALTER TABLE actions ADD COLUMN dispatch_owner TEXT;
ALTER TABLE actions ADD COLUMN dispatch_expires TEXT;
CREATE INDEX actions_pending ON actions (id) WHERE status = 'pending';

-- The insert trigger of migration 0002 ran once per row: a fan-out to
-- 10,000 agents ran 10,000 upserts of the same counter row, a quarter of the
-- time of the insert. The store now adds the new commands to action_counts
-- itself, with one upsert per action and batch, in the transaction that
-- inserts them (commands are only ever inserted there). The update and
-- delete triggers stay: results and expiry change rows one by one anyway.
DROP TRIGGER commands_count_insert;
