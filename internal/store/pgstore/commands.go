package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
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
	actionSet := map[int64]bool{}
	for _, c := range cmds {
		if _, err := store.DBID("command", c.ID); err != nil {
			return fmt.Errorf("create commands: %w", err)
		}
		aid, err := store.DBID("action", c.Action.ID)
		if err != nil {
			return fmt.Errorf("create command %d: %w", c.ID, err)
		}
		if c.AgentID == "" {
			return fmt.Errorf("create command %d: empty agent id", c.ID)
		}
		if !validText(c.AgentID) {
			return fmt.Errorf("create command %d: agent id %q is not valid UTF-8 text", c.ID, c.AgentID)
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
	err := s.inTx(ctx, "create commands", func(tx pgx.Tx) error {
		if err := checkActionsExist(ctx, tx, actionIDs); err != nil {
			return err
		}
		// New sent commands: their actions must be swept again.
		if _, err := tx.Exec(ctx, `UPDATE actions SET swept = false WHERE id = ANY($1) AND swept`, actionIDs); err != nil {
			return fmt.Errorf("reopen actions for expiry: %w", err)
		}
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
	})
	if err != nil {
		return fmt.Errorf("create %d commands starting with %d: %w", len(cmds), cmds[0].ID, err)
	}
	return nil
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

// found reports whether any result found anything.
func found(results []action.Result) bool {
	for _, r := range results {
		if r.FoundAnything {
			return true
		}
	}
	return false
}

// resultRows are the columns of a batch of results, as arrays for unnest().
type resultRows struct {
	ids                               []int64
	agents, statuses, codes, errTexts []string
	results                           []*string
	found                             []bool
	fins                              []time.Time
	finNs                             []int16
}

// Len, Less and Swap sort the rows by command ID (sort.Interface).
func (r *resultRows) Len() int           { return len(r.ids) }
func (r *resultRows) Less(i, j int) bool { return r.ids[i] < r.ids[j] }
func (r *resultRows) Swap(i, j int) {
	r.ids[i], r.ids[j] = r.ids[j], r.ids[i]
	r.agents[i], r.agents[j] = r.agents[j], r.agents[i]
	r.statuses[i], r.statuses[j] = r.statuses[j], r.statuses[i]
	r.codes[i], r.codes[j] = r.codes[j], r.codes[i]
	r.errTexts[i], r.errTexts[j] = r.errTexts[j], r.errTexts[i]
	r.results[i], r.results[j] = r.results[j], r.results[i]
	r.found[i], r.found[j] = r.found[j], r.found[i]
	r.fins[i], r.fins[j] = r.fins[j], r.fins[i]
	r.finNs[i], r.finNs[j] = r.finNs[j], r.finNs[i]
}

// idAgent is a command ID and the agent a result for it comes from.
type idAgent struct {
	id    int64
	agent string
}

// cmdState is a command's owner and status, as read after a batch.
type cmdState struct {
	agent, status string
	stored        bool // changed by this batch
}

// StoreResults moves each result's command from sent to the result's status,
// with its results, in one transaction, and returns the command IDs that may
// be acknowledged to agents, each once:
//
//   - commands stored now;
//   - commands already terminal and owned by the result's agent (duplicates,
//     results another server stored first, and results arriving after the
//     command expired, which do not change it);
//   - command IDs the store does not know, so that an agent stops resending
//     a result nothing can ever accept.
//
// A result whose agent ID is not the command's agent changes nothing and is
// not acknowledged. Of several results for one command in a batch, the first
// of its own agent is stored. Results with a status that is not terminal, or
// a command ID of zero, are ignored. A result's action ID is not checked: the
// command ID decides.
//
// The whole batch is one round trip: two statements pipelined in one
// implicit transaction. The first locks the sent commands the batch names,
// in ID order, so that two servers storing overlapping batches (an agent
// resending to another server) wait for each other instead of deadlocking;
// the second, whose snapshot is taken once those locks are held, updates
// them from unnest()ed arrays (the first result of each agent for a command,
// matched on the command's owner) and returns the state of every command
// the batch names, so that a command another server just stored is seen
// terminal and its duplicate acknowledged. Should PostgreSQL still report a
// deadlock or a serialization failure, the batch runs again.
func (s *Store) StoreResults(ctx context.Context, results []action.ResultMessage) ([]uint64, error) {
	if len(results) == 0 {
		return nil, nil
	}
	now := time.Now()
	var rr resultRows
	named := make([]int64, 0, len(results)) // every command ID that can exist, once
	seen := make(map[int64]bool, len(results))
	candidates := make(map[idAgent]bool, len(results))
	for i := range results {
		r := &results[i]
		if r.CommandID == 0 || !action.IsTerminal(r.Status) {
			s.logger.Warn("result ignored", "command", r.CommandID, "agent", pgText(r.AgentID), "status", pgText(r.Status))
			continue
		}
		if r.CommandID > math.MaxInt64 {
			continue // no command has this ID: acknowledged as unknown
		}
		id := int64(r.CommandID)
		if !seen[id] {
			seen[id] = true
			named = append(named, id)
		}
		if !validText(r.AgentID) {
			continue // owns no command: decided by reading the command
		}
		// Only the first result of each agent for a command is a candidate:
		// the UPDATE matches the one of the command's owner.
		key := idAgent{id, r.AgentID}
		if candidates[key] {
			continue
		}
		candidates[key] = true
		var rj *string
		if len(r.Results) > 0 {
			b, err := json.Marshal(r.Results)
			if err != nil {
				return nil, fmt.Errorf("store result of command %d: %w", r.CommandID, err)
			}
			text := pgText(string(b))
			rj = &text
		}
		fin := storable(r.Finished, now)
		if fin.IsZero() {
			fin = now
		}
		ts, ns := splitTime(fin)
		rr.ids = append(rr.ids, id)
		rr.agents = append(rr.agents, r.AgentID)
		rr.statuses = append(rr.statuses, r.Status)
		rr.codes = append(rr.codes, pgText(r.Code))
		rr.errTexts = append(rr.errTexts, pgText(r.Error))
		rr.results = append(rr.results, rj)
		rr.found = append(rr.found, found(r.Results))
		rr.fins = append(rr.fins, ts)
		rr.finNs = append(rr.finNs, ns)
	}
	slices.Sort(named)
	sort.Stable(&rr)
	var state map[int64]cmdState
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		state, err = s.storeBatch(ctx, named, &rr)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			break
		}
		s.logger.Debug("result batch retried", "attempt", attempt, "err", err)
	}
	if err != nil {
		return nil, fmt.Errorf("store %d results: %w", len(results), err)
	}
	// Acknowledge in the order results came.
	ack := make([]uint64, 0, len(results))
	acked := make(map[uint64]bool, len(results))
	for i := range results {
		r := &results[i]
		if r.CommandID == 0 || !action.IsTerminal(r.Status) || acked[r.CommandID] {
			continue
		}
		st, known := state[int64(r.CommandID)]
		switch {
		case r.CommandID > math.MaxInt64 || !known:
			s.logger.Debug("result for an unknown command acknowledged", "command", r.CommandID, "agent", pgText(r.AgentID))
		case st.agent != r.AgentID:
			s.logger.Warn("result for a command of another agent refused",
				"command", r.CommandID, "agent", pgText(r.AgentID), "owner", st.agent)
			continue
		case !st.stored && !action.IsTerminal(st.status):
			// Owned and still sent, yet not updated: cannot happen under
			// the lock; do not acknowledge.
			continue
		}
		acked[r.CommandID] = true
		ack = append(ack, r.CommandID)
	}
	return ack, nil
}

// storeBatch locks and updates the commands of one batch of results and
// returns the state of every command in named after it.
func (s *Store) storeBatch(ctx context.Context, named []int64, rr *resultRows) (map[int64]cmdState, error) {
	if len(named) == 0 {
		return nil, nil
	}
	b := &pgx.Batch{}
	// Lock first, in ID order: the UPDATE's own statement then starts
	// after every concurrent batch touching these commands committed, so
	// what it reads of them is current.
	b.Queue(`SELECT id FROM commands WHERE id = ANY($1) AND status = $2 ORDER BY id FOR UPDATE`,
		named, action.CmdSent)
	b.Queue(`WITH upd AS (
			UPDATE commands c SET status = u.status, code = u.code, error = u.error, results = u.results,
				found = u.found, finishtime = u.fin, finishtime_ns = u.finns
			FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
				$7::bool[], $8::timestamptz[], $9::int2[])
				AS u(id, agent, status, code, error, results, found, fin, finns)
			WHERE c.id = u.id AND c.agent_id = u.agent AND c.status = $10
			RETURNING c.id, c.agent_id)
		SELECT id, agent_id, '', true FROM upd
		UNION ALL
		SELECT id, agent_id, status, false FROM commands WHERE id = ANY($11) AND id NOT IN (SELECT id FROM upd)`,
		rr.ids, rr.agents, rr.statuses, rr.codes, rr.errTexts, rr.results, rr.found, rr.fins, rr.finNs,
		action.CmdSent, named)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("lock commands: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("update commands: %w", err)
	}
	state := make(map[int64]cmdState, len(named))
	for rows.Next() {
		var id int64
		var st cmdState
		if err := rows.Scan(&id, &st.agent, &st.status, &st.stored); err != nil {
			rows.Close()
			return nil, fmt.Errorf("update commands: %w", err)
		}
		state[id] = st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("update commands: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("commit results: %w", err)
	}
	return state, nil
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
		cols += `, c.results`
	} else {
		cols += `, NULL::text`
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
		var results, body pgtype.Text
		if err := rows.Scan(&id, &aid, &c.AgentID, &c.AgentName, &c.Status, &c.Code, &c.Error,
			&start, &startNs, &finish, &finishNs, &results, &body); err != nil {
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
