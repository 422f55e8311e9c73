package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

// CreateCommands stores commands in status sent, all in one transaction with
// multi-row INSERTs. Each command needs an ID (chosen by the caller), an
// agent ID and the ID of a stored action (ErrNotFound otherwise); ErrExists
// if a command ID is taken, in which case none is stored.
func (s *Store) CreateCommands(ctx context.Context, cmds []action.Command) error {
	if len(cmds) == 0 {
		return nil
	}
	actionIDs, err := checkCommands(cmds)
	if err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create commands: begin: %w", err)
	}
	defer tx.Rollback()
	if err := checkActionsExist(ctx, tx, actionIDs); err != nil {
		return err
	}
	if err := s.insertCommands(ctx, tx, cmds); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create commands: commit: %w", err)
	}
	return nil
}

// checkCommands checks what CreateCommands needs of each command and
// returns the set of their actions.
func checkCommands(cmds []action.Command) (map[int64]bool, error) {
	actionIDs := map[int64]bool{}
	for _, c := range cmds {
		if _, err := store.DBID("command", c.ID); err != nil {
			return nil, fmt.Errorf("create commands: %w", err)
		}
		aid, err := store.DBID("action", c.Action.ID)
		if err != nil {
			return nil, fmt.Errorf("create command %d: %w", c.ID, err)
		}
		if c.AgentID == "" {
			return nil, fmt.Errorf("create command %d: empty agent id", c.ID)
		}
		actionIDs[aid] = true
	}
	return actionIDs, nil
}

// commandCols is the number of columns insertCommandsSQL binds per row.
const commandCols = 6

// commandGroup is how many commands the prepared insert statement takes.
const commandGroup = 250

// insertCommandsSQL returns a statement inserting n commands in status sent.
func insertCommandsSQL(n int) string {
	return `INSERT INTO commands (id, action_id, agent_id, agent_name, status, starttime) VALUES ` +
		strings.TrimSuffix(strings.Repeat("("+placeholders(commandCols)+"), ", n), ", ")
}

// insertCommands inserts commands (checked by checkCommands, their actions
// stored) in status sent, commandGroup at a time with the prepared statement
// and the rest with one more, and adds them to their actions' counters, in
// tx.
func (s *Store) insertCommands(ctx context.Context, tx *sql.Tx, cmds []action.Command) error {
	now := time.Now()
	args := make([]any, 0, commandCols*commandGroup)
	grouped := tx.StmtContext(ctx, s.insertCmds)
	defer grouped.Close()
	for start := 0; start < len(cmds); start += commandGroup {
		chunk := cmds[start:min(len(cmds), start+commandGroup)]
		args = args[:0]
		for _, c := range chunk {
			st := storable(c.StartTime, now)
			if st.IsZero() {
				st = now
			}
			args = append(args, int64(c.ID), int64(c.Action.ID), c.AgentID, c.AgentName, action.CmdSent, formatTime(st))
		}
		var err error
		if len(chunk) == commandGroup {
			_, err = grouped.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertCommandsSQL(len(chunk)), args...)
		}
		if err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("create %d commands starting with %d: a command id: %w", len(chunk), chunk[0].ID, store.ErrExists)
			}
			return fmt.Errorf("create %d commands starting with %d: %w", len(chunk), chunk[0].ID, err)
		}
	}
	// The counters (migration 0003): one upsert per action.
	perAction := map[int64]int{}
	for _, c := range cmds {
		perAction[int64(c.Action.ID)]++
	}
	for aid, n := range perAction {
		if _, err := tx.ExecContext(ctx, `INSERT INTO action_counts (action_id, status, n) VALUES (?, ?, ?)
			ON CONFLICT (action_id, status) DO UPDATE SET n = n + excluded.n`, aid, action.CmdSent, n); err != nil {
			return fmt.Errorf("create commands: count commands of action %d: %w", aid, err)
		}
	}
	return nil
}

// checkActionsExist returns ErrNotFound naming the first of ids that is not
// a stored action.
func checkActionsExist(ctx context.Context, tx *sql.Tx, ids map[int64]bool) error {
	list := make([]int64, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	slices.Sort(list)
	for start := 0; start < len(list); start += maxVars {
		chunk := list[start:min(len(list), start+maxVars)]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := tx.QueryContext(ctx, `SELECT id FROM actions WHERE id IN (`+placeholders(len(args))+`)`, args...)
		if err != nil {
			return fmt.Errorf("create commands: check actions: %w", err)
		}
		present := map[int64]bool{}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("create commands: check actions: %w", err)
			}
			present[id] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("create commands: check actions: %w", err)
		}
		for _, id := range chunk {
			if !present[id] {
				return fmt.Errorf("create commands: action %d: %w", id, store.ErrNotFound)
			}
		}
	}
	return nil
}

// PendingCommands returns an agent's commands still in status sent whose
// action is valid at now, ordered by ID, each with its action's signed
// fields and signatures.
func (s *Store) PendingCommands(ctx context.Context, agentID string, now time.Time) ([]action.Command, error) {
	t := formatTime(now)
	cmds, err := s.queryCommands(ctx, s.r, true, true,
		`c.agent_id = ? AND c.status = ? AND a.validfrom <= ? AND a.expireafter >= ?`,
		[]any{agentID, action.CmdSent, t, t}, "")
	if err != nil {
		return nil, fmt.Errorf("pending commands of agent %q: %w", agentID, err)
	}
	return cmds, nil
}

// ExpireCommands moves commands still in status sent whose action expired
// before now to expired, in one UPDATE, and returns the IDs of the actions
// touched, in increasing order.
func (s *Store) ExpireCommands(ctx context.Context, now time.Time) ([]uint64, error) {
	t := formatTime(now)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("expire commands: begin: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT a.id FROM actions a WHERE a.expireafter < ?
		AND EXISTS (SELECT 1 FROM commands c WHERE c.action_id = a.id AND c.status = ?) ORDER BY a.id`,
		t, action.CmdSent)
	if err != nil {
		return nil, fmt.Errorf("expire commands: %w", err)
	}
	var ids []uint64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("expire commands: %w", err)
		}
		ids = append(ids, uint64(id))
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("expire commands: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE commands SET status = ?, finishtime = ?
		WHERE status = ? AND action_id IN (SELECT id FROM actions WHERE expireafter < ?)`,
		action.CmdExpired, t, action.CmdSent, t); err != nil {
		return nil, fmt.Errorf("expire commands: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("expire commands: commit: %w", err)
	}
	return ids, nil
}

// Commands returns commands matching q, ordered by command ID.
func (s *Store) Commands(ctx context.Context, q store.CommandQuery) ([]action.Command, error) {
	var conds []string
	var args []any
	if q.ActionID != 0 {
		id, err := store.DBID("action", q.ActionID)
		if err != nil {
			return nil, nil // no command can have it
		}
		conds = append(conds, `c.action_id = ?`)
		args = append(args, id)
	}
	if q.AgentID != "" {
		conds = append(conds, `c.agent_id = ?`)
		args = append(args, q.AgentID)
	}
	if q.Status != "" {
		conds = append(conds, `c.status = ?`)
		args = append(args, q.Status)
	}
	if q.FoundOnly {
		conds = append(conds, `c.found = 1`)
	}
	if q.AfterID != 0 {
		if q.AfterID >= math.MaxInt64 {
			return nil, nil
		}
		conds = append(conds, `c.id > ?`)
		args = append(args, int64(q.AfterID))
	}
	where := "1"
	if len(conds) > 0 {
		where = strings.Join(conds, " AND ")
	}
	limit := ""
	if q.Limit > 0 {
		limit = fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	cmds, err := s.queryCommands(ctx, s.r, q.WithAction, !q.NoResults, where, args, limit)
	if err != nil {
		return nil, fmt.Errorf("query commands: %w", err)
	}
	return cmds, nil
}

// Command returns one command with its results and its action's signed
// fields; ErrNotFound if there is no such command.
func (s *Store) Command(ctx context.Context, id uint64) (*action.Command, error) {
	did, err := store.DBID("command", id)
	if err != nil {
		return nil, fmt.Errorf("command %d: %w", id, store.ErrNotFound)
	}
	cmds, err := s.queryCommands(ctx, s.r, true, true, `c.id = ?`, []any{did}, "")
	if err != nil {
		return nil, fmt.Errorf("command %d: %w", id, err)
	}
	if len(cmds) == 0 {
		return nil, fmt.Errorf("command %d: %w", id, store.ErrNotFound)
	}
	return &cmds[0], nil
}

// queryCommands runs one SELECT over commands (c) joined with their actions
// (a) under where, ordered by ID. withAction fills each command's action
// from its stored body (decoded once per action); otherwise only Action.ID
// is set. withResults reads the results.
func (s *Store) queryCommands(ctx context.Context, db *sql.DB, withAction, withResults bool,
	where string, args []any, limit string) ([]action.Command, error) {
	cols := `c.id, c.action_id, c.agent_id, c.agent_name, c.status, c.code, c.error, c.starttime, c.finishtime`
	if withResults {
		cols += `, c.results, c.signature`
	} else {
		cols += `, NULL, NULL`
	}
	from := ` FROM commands c`
	if withAction || strings.Contains(where, "a.") {
		cols += `, a.body`
		from += ` JOIN actions a ON a.id = c.action_id`
	} else {
		cols += `, NULL`
	}
	rows, err := db.QueryContext(ctx, `SELECT `+cols+from+` WHERE `+where+` ORDER BY c.id`+limit, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []action.Command
	bodies := map[int64]action.Action{}
	for rows.Next() {
		var c action.Command
		var id, aid int64
		var start, finish, results, sig, body sql.NullString
		if err := rows.Scan(&id, &aid, &c.AgentID, &c.AgentName, &c.Status, &c.Code, &c.Error,
			&start, &finish, &results, &sig, &body); err != nil {
			return nil, err
		}
		c.ID = uint64(id)
		if c.StartTime, err = parseTime(start); err != nil {
			return nil, fmt.Errorf("command %d: %w", id, err)
		}
		if c.FinishTime, err = parseTime(finish); err != nil {
			return nil, fmt.Errorf("command %d: %w", id, err)
		}
		if results.Valid {
			if err := json.Unmarshal([]byte(results.String), &c.Results); err != nil {
				return nil, fmt.Errorf("command %d: results: %w", id, err)
			}
		}
		if sig.Valid {
			if c.Signature, err = store.DecodeResultSignature([]byte(sig.String)); err != nil {
				return nil, fmt.Errorf("command %d: %w", id, err)
			}
		}
		if withAction && body.Valid {
			a, ok := bodies[aid]
			if !ok {
				if err := store.DecodeActionBody([]byte(body.String), &a); err != nil {
					return nil, fmt.Errorf("command %d: %w", id, err)
				}
				bodies[aid] = a
			}
			c.Action = a
			// Each command gets its own slices, so that a caller changing
			// one command's action does not change another's.
			c.Action.Operations = slices.Clone(a.Operations)
			c.Action.PGPSignatures = slices.Clone(a.PGPSignatures)
		}
		c.Action.ID = uint64(aid)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
