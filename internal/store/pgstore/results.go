package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/migplatform/mig/internal/action"
)

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
