package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

// CreateCommands stores commands in status sent, all in one transaction
// with one COPY. Each command needs an ID (chosen by the caller), an agent ID
// and the ID of a stored action (ErrNotFound otherwise); ErrExists if a
// command ID is taken, in which case none is stored.
func (s *Store) CreateCommands(ctx context.Context, cmds []action.Command) error {
	if len(cmds) == 0 {
		return nil
	}
	actionIDs, rows, err := commandRows(cmds)
	if err != nil {
		return err
	}
	err = s.inTx(ctx, "create commands", func(tx pgx.Tx) error {
		if err := checkActionsExist(ctx, tx, actionIDs); err != nil {
			return err
		}
		// New sent commands: their actions must be swept again.
		if _, err := tx.Exec(ctx, `UPDATE actions SET swept = false WHERE id = ANY($1) AND swept`, actionIDs); err != nil {
			return fmt.Errorf("reopen actions for expiry: %w", err)
		}
		return copyCommands(ctx, tx, rows)
	})
	if err != nil {
		return fmt.Errorf("create %d commands starting with %d: %w", len(cmds), cmds[0].ID, err)
	}
	return nil
}

// commandRows checks what CreateCommands needs of each command and returns
// the IDs of their actions, sorted, and the rows to COPY.
func commandRows(cmds []action.Command) ([]int64, [][]any, error) {
	actionSet := map[int64]bool{}
	for _, c := range cmds {
		if _, err := store.DBID("command", c.ID); err != nil {
			return nil, nil, fmt.Errorf("create commands: %w", err)
		}
		aid, err := store.DBID("action", c.Action.ID)
		if err != nil {
			return nil, nil, fmt.Errorf("create command %d: %w", c.ID, err)
		}
		if c.AgentID == "" {
			return nil, nil, fmt.Errorf("create command %d: empty agent id", c.ID)
		}
		if !validText(c.AgentID) {
			return nil, nil, fmt.Errorf("create command %d: agent id %q is not valid UTF-8 text", c.ID, c.AgentID)
		}
		actionSet[aid] = true
	}
	actionIDs := make([]int64, 0, len(actionSet))
	for id := range actionSet {
		actionIDs = append(actionIDs, id)
	}
	slices.Sort(actionIDs)
	now := time.Now()
	rows := make([][]any, len(cmds))
	for i, c := range cmds {
		st := storable(c.StartTime, now)
		if st.IsZero() {
			st = now
		}
		ts, ns := splitTime(st)
		rows[i] = []any{int64(c.ID), int64(c.Action.ID), c.AgentID, pgText(c.AgentName), action.CmdSent, ts, ns}
	}
	return actionIDs, rows, nil
}

// copyCommands writes rows made by commandRows with one COPY.
func copyCommands(ctx context.Context, tx pgx.Tx, rows [][]any) error {
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"commands"},
		[]string{"id", "action_id", "agent_id", "agent_name", "status", "starttime", "starttime_ns"},
		pgx.CopyFromRows(rows))
	switch pgCode(err) {
	case codeUniqueViolation:
		return fmt.Errorf("a command id: %w", store.ErrExists)
	case codeForeignKeyViolation:
		return fmt.Errorf("an action: %w", store.ErrNotFound)
	}
	return err
}

// checkActionsExist returns ErrNotFound naming the first of ids (sorted)
// that is not a stored action.
func checkActionsExist(ctx context.Context, tx pgx.Tx, ids []int64) error {
	rows, err := tx.Query(ctx, `SELECT id FROM actions WHERE id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("check actions: %w", err)
	}
	present, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("check actions: %w", err)
	}
	have := make(map[int64]bool, len(present))
	for _, id := range present {
		have[id] = true
	}
	for _, id := range ids {
		if !have[id] {
			return fmt.Errorf("action %d: %w", id, store.ErrNotFound)
		}
	}
	return nil
}

// PendingCommands returns an agent's commands still in status sent whose
// action is valid at now (to the nanosecond), ordered by ID, each with its
// action's signed fields and signatures.
func (s *Store) PendingCommands(ctx context.Context, agentID string, now time.Time) ([]action.Command, error) {
	if !validText(agentID) {
		return nil, nil // no command can be for it
	}
	ts, ns := splitTime(now)
	cmds, err := s.queryCommands(ctx, true, true,
		`c.agent_id = $1 AND c.status = $2 AND (a.validfrom, a.validfrom_ns) <= ($3, $4)
		AND (a.expireafter, a.expireafter_ns) >= ($3, $4)`,
		args{agentID, action.CmdSent, ts, ns}, "")
	if err != nil {
		return nil, fmt.Errorf("pending commands of agent %q: %w", agentID, err)
	}
	return cmds, nil
}

// ExpireCommands moves commands still in status sent whose action expired
// before now (to the nanosecond) to expired, in one UPDATE, and returns the
// IDs of the actions touched, in increasing order.
func (s *Store) ExpireCommands(ctx context.Context, now time.Time) ([]uint64, error) {
	ts, ns := splitTime(now)
	var ids []uint64
	err := s.inTx(ctx, "expire commands", func(tx pgx.Tx) error {
		// Mark the expired actions first, locking them: commands a
		// concurrent CreateCommands added are then visible to the next
		// statement, or it clears the mark after this transaction.
		rows, err := tx.Query(ctx, `UPDATE actions SET swept = true
			WHERE NOT swept AND (expireafter, expireafter_ns) < ($1, $2) RETURNING id`, ts, ns)
		if err != nil {
			return err
		}
		due, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil || len(due) == 0 {
			ids = nil
			return err
		}
		rows, err = tx.Query(ctx, `WITH expired AS (
				UPDATE commands SET status = $1, finishtime = $2, finishtime_ns = $3
				WHERE action_id = ANY($4) AND status = $5
				RETURNING action_id)
			SELECT DISTINCT action_id FROM expired ORDER BY action_id`,
			action.CmdExpired, ts, ns, due, action.CmdSent)
		if err != nil {
			return err
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		ids = ids[:0]
		for _, id := range got {
			ids = append(ids, uint64(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire commands: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return ids, nil
}

// Commands returns commands matching q, ordered by command ID.
func (s *Store) Commands(ctx context.Context, q store.CommandQuery) ([]action.Command, error) {
	var conds []string
	var a args
	if q.ActionID != 0 {
		id, err := store.DBID("action", q.ActionID)
		if err != nil {
			return nil, nil // no command can have it
		}
		conds = append(conds, `c.action_id = `+a.add(id))
	}
	if q.AgentID != "" {
		conds = append(conds, `c.agent_id = `+a.add(pgText(q.AgentID)))
	}
	if q.Status != "" {
		conds = append(conds, `c.status = `+a.add(pgText(q.Status)))
	}
	if q.FoundOnly {
		conds = append(conds, `c.found`)
	}
	if q.AfterID != 0 {
		if q.AfterID >= math.MaxInt64 {
			return nil, nil
		}
		conds = append(conds, `c.id > `+a.add(int64(q.AfterID)))
	}
	where := "true"
	if len(conds) > 0 {
		where = strings.Join(conds, " AND ")
	}
	limit := ""
	if q.Limit > 0 {
		limit = ` LIMIT ` + a.add(q.Limit)
	}
	cmds, err := s.queryCommands(ctx, q.WithAction, !q.NoResults, where, a, limit)
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
	cmds, err := s.queryCommands(ctx, true, true, `c.id = $1`, args{did}, "")
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
func (s *Store) queryCommands(ctx context.Context, withAction, withResults bool,
	where string, a args, limit string) ([]action.Command, error) {
	cols := `c.id, c.action_id, c.agent_id, c.agent_name, c.status, c.code, c.error,
		c.starttime, c.starttime_ns, c.finishtime, c.finishtime_ns`
	if withResults {
		cols += `, c.results, c.signature`
	} else {
		cols += `, NULL::text, NULL::text`
	}
	from := ` FROM commands c`
	if withAction || strings.Contains(where, "a.") {
		cols += `, a.body`
		from += ` JOIN actions a ON a.id = c.action_id`
	} else {
		cols += `, NULL::text`
	}
	rows, err := s.pool.Query(ctx, `SELECT `+cols+from+` WHERE `+where+` ORDER BY c.id`+limit, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []action.Command
	bodies := map[int64]action.Action{}
	for rows.Next() {
		var c action.Command
		var id, aid int64
		var start time.Time
		var startNs int16
		var finish pgtype.Timestamptz
		var finishNs pgtype.Int2
		var results, sig, body pgtype.Text
		if err := rows.Scan(&id, &aid, &c.AgentID, &c.AgentName, &c.Status, &c.Code, &c.Error,
			&start, &startNs, &finish, &finishNs, &results, &sig, &body); err != nil {
			return nil, err
		}
		c.ID = uint64(id)
		c.StartTime = joinTime(start, startNs)
		c.FinishTime = joinNullTime(finish, finishNs)
		if results.Valid {
			if err := json.Unmarshal([]byte(results.String), &c.Results); err != nil {
				return nil, fmt.Errorf("command %d: results: %w", id, err)
			}
		}
		if sig.Valid {
			var err error
			if c.Signature, err = store.DecodeResultSignature([]byte(sig.String)); err != nil {
				return nil, fmt.Errorf("command %d: %w", id, err)
			}
		}
		if withAction && body.Valid {
			act, ok := bodies[aid]
			if !ok {
				if err := store.DecodeActionBody([]byte(body.String), &act); err != nil {
					return nil, fmt.Errorf("command %d: %w", id, err)
				}
				bodies[aid] = act
			}
			c.Action = act
			// Each command gets its own slices, so that a caller changing
			// one command's action does not change another's.
			c.Action.Operations = slices.Clone(act.Operations)
			c.Action.PGPSignatures = slices.Clone(act.PGPSignatures)
		}
		c.Action.ID = uint64(aid)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
