-- Counters of commands per action and status, kept by triggers in the same
-- transaction as every change to commands, so that reading an action's
-- counters costs a few rows instead of a scan of its commands (investigators
-- and mig-bench poll them while thousands of results arrive).
CREATE TABLE action_counts (
	action_id INTEGER NOT NULL,
	status    TEXT NOT NULL,
	n         INTEGER NOT NULL,
	PRIMARY KEY (action_id, status)
) STRICT, WITHOUT ROWID;

INSERT INTO action_counts (action_id, status, n)
	SELECT action_id, status, COUNT(*) FROM commands GROUP BY action_id, status;

CREATE TRIGGER commands_count_insert AFTER INSERT ON commands BEGIN
	INSERT INTO action_counts (action_id, status, n) VALUES (NEW.action_id, NEW.status, 1)
		ON CONFLICT (action_id, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER commands_count_delete AFTER DELETE ON commands BEGIN
	UPDATE action_counts SET n = n - 1 WHERE action_id = OLD.action_id AND status = OLD.status;
END;

CREATE TRIGGER commands_count_update AFTER UPDATE OF status, action_id ON commands
	WHEN OLD.status IS NOT NEW.status OR OLD.action_id IS NOT NEW.action_id BEGIN
	UPDATE action_counts SET n = n - 1 WHERE action_id = OLD.action_id AND status = OLD.status;
	INSERT INTO action_counts (action_id, status, n) VALUES (NEW.action_id, NEW.status, 1)
		ON CONFLICT (action_id, status) DO UPDATE SET n = n + 1;
END;
