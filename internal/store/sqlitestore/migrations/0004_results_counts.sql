-- 0004: results move the counters of action_counts once per batch.
--
-- The update trigger of migration 0002 ran two statements per stored
-- result (a decrement of the 'sent' row and an upsert of the new status
-- row), about a fifth of the time of storing a batch. StoreResults now
-- inserts a row into counts_deferred at the start of its transaction,
-- changes the commands, adds to action_counts itself with one statement per
-- action and status, and deletes the row again before it commits: no other
-- transaction ever sees the row (SQLite has one writer, readers see only
-- committed data). Every other change of a command's status or action
-- (expiry, an operator's UPDATE) still goes through the trigger, unchanged.
CREATE TABLE counts_deferred (
	deferred INTEGER NOT NULL
) STRICT;

DROP TRIGGER commands_count_update;
CREATE TRIGGER commands_count_update AFTER UPDATE OF status, action_id ON commands
	WHEN (OLD.status IS NOT NEW.status OR OLD.action_id IS NOT NEW.action_id)
		AND NOT EXISTS (SELECT 1 FROM counts_deferred) BEGIN
	UPDATE action_counts SET n = n - 1 WHERE action_id = OLD.action_id AND status = OLD.status;
	INSERT INTO action_counts (action_id, status, n) VALUES (NEW.action_id, NEW.status, 1)
		ON CONFLICT (action_id, status) DO UPDATE SET n = n + 1;
END;
