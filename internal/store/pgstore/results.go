package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
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
	results, signatures               []*string
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
	r.signatures[i], r.signatures[j] = r.signatures[j], r.signatures[i]
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
// with its results, and returns the command IDs that may be acknowledged to
// agents, each once:
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
// A batch whose results are all for sent commands of their own agents (the
// common case) is one statement and one round trip: an UPDATE ... FROM
// unnest()ed arrays, in its own transaction, matched on each command's
// owner and status sent and returning the IDs it changed. PostgreSQL
// re-checks those conditions under each row's lock (a result another server
// stored first is seen and left alone), and the commit is durable before
// the statement returns (synchronous_commit stays on: an acknowledged result
// is never lost by a crash of the database). The commands the batch names
// but did not change are then read by a second statement, whose snapshot
// is taken after every transaction that changed them committed, so that a
// duplicate stored by another server at the same moment is seen terminal
// and acknowledged. The rows are locked in the order of the UPDATE's plan,
// by ID for a batch of a large table; should two servers storing
// overlapping batches still deadlock (or hit a serialization failure), the
// UPDATE runs again.
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
		var sj *string
		st, ok, err := store.EncodeResultSignature(r.Signature)
		if err != nil {
			return nil, fmt.Errorf("store result of command %d: %w", r.CommandID, err)
		}
		if ok {
			sj = &st
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
		rr.signatures = append(rr.signatures, sj)
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
			// Owned and still sent, yet not updated: the UPDATE re-checks
			// owner and status under the row lock, so this cannot happen;
			// do not acknowledge.
			continue
		}
		acked[r.CommandID] = true
		ack = append(ack, r.CommandID)
	}
	return ack, nil
}

// storeBatch stores one batch of results and returns the state of every
// command in named after it: the commands it changed, and the others as
// read once it committed.
func (s *Store) storeBatch(ctx context.Context, named []int64, rr *resultRows) (map[int64]cmdState, error) {
	state := make(map[int64]cmdState, len(named))
	if len(rr.ids) > 0 {
		rows, err := s.pool.Query(ctx, `UPDATE commands c SET status = u.status, code = u.code, error = u.error,
				results = u.results, found = u.found, finishtime = u.fin, finishtime_ns = u.finns,
				signature = u.signature
			FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
				$7::bool[], $8::timestamptz[], $9::int2[], $10::text[])
				AS u(id, agent, status, code, error, results, found, fin, finns, signature)
			WHERE c.id = u.id AND c.agent_id = u.agent AND c.status = $11
			RETURNING c.id, c.agent_id`,
			rr.ids, rr.agents, rr.statuses, rr.codes, rr.errTexts, rr.results, rr.found, rr.fins, rr.finNs,
			rr.signatures, action.CmdSent)
		if err != nil {
			return nil, fmt.Errorf("update commands: %w", err)
		}
		for rows.Next() {
			var id int64
			st := cmdState{stored: true}
			if err := rows.Scan(&id, &st.agent); err != nil {
				rows.Close()
				return nil, fmt.Errorf("update commands: %w", err)
			}
			state[id] = st
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("update commands: %w", err)
		}
	}
	var others []int64
	for _, id := range named {
		if !state[id].stored {
			others = append(others, id)
		}
	}
	if len(others) == 0 {
		return state, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id, agent_id, status FROM commands WHERE id = ANY($1)`, others)
	if err != nil {
		return nil, fmt.Errorf("read commands: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var st cmdState
		if err := rows.Scan(&id, &st.agent, &st.status); err != nil {
			return nil, fmt.Errorf("read commands: %w", err)
		}
		state[id] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read commands: %w", err)
	}
	return state, nil
}
