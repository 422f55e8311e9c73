package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strings"
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

// resultCols is the number of values bound per result in the batch UPDATE.
const resultCols = 9

// resultsPerUpdate is how many results one UPDATE statement stores. A
// statement of 100 rows (800 parameters) is prepared once per batch and
// reused; larger ones cost more to prepare than they save in execution.
const resultsPerUpdate = 100

// idAgent is a command ID and the agent a result for it comes from.
type idAgent struct {
	id    uint64
	agent string
}

// countKey is one row of action_counts.
type countKey struct {
	action int64
	status string
}

// StoreResults moves each result's command from sent to the result's status,
// with its results, all in one transaction, and returns the command IDs that
// may be acknowledged to agents, each once, in the order of the results:
//
//   - commands stored now;
//   - commands already terminal and owned by the result's agent (duplicates,
//     and results arriving after the command expired, which do not change it);
//   - command IDs the store does not know, so that an agent stops resending
//     a result nothing can ever accept.
//
// A result whose agent ID is not the command's agent changes nothing and is
// not acknowledged: an agent is never told about a command it does not own.
// Of several results for one command in a batch, the first of its own agent
// is stored. Results with a status that is not terminal, or a command ID of
// zero, are ignored. A result's action ID is not checked: the command ID
// decides.
//
// The commands change in UPDATE ... FROM (VALUES ...) statements of up to
// resultsPerUpdate rows, matched on the command's ID, owner and status
// sent, which return the commands they changed. The per-row counter
// trigger is held off for the transaction (migration 0004) and
// action_counts moves once per action and status instead. Commands the
// batch names but did not change are then read in one query per chunk, to
// tell duplicates and unknown commands from other agents' commands.
func (s *Store) StoreResults(ctx context.Context, results []action.ResultMessage) ([]uint64, error) {
	if len(results) == 0 {
		return nil, nil
	}
	now := time.Now()
	// The candidates: the first result of each agent for each command that
	// can exist. The UPDATE matches the one of the command's owner.
	candidates := make([]*action.ResultMessage, 0, len(results))
	seen := make(map[idAgent]bool, len(results))
	for i := range results {
		r := &results[i]
		if r.CommandID == 0 || !action.IsTerminal(r.Status) {
			s.logger.Warn("result ignored", "command", r.CommandID, "agent", r.AgentID, "status", r.Status)
			continue
		}
		if r.CommandID > math.MaxInt64 {
			continue // cannot exist: acknowledged as unknown
		}
		key := idAgent{r.CommandID, r.AgentID}
		if seen[key] {
			continue
		}
		seen[key] = true
		candidates = append(candidates, r)
	}

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store results: begin: %w", err)
	}
	defer tx.Rollback()
	stored, err := s.updateCommands(ctx, tx, candidates, now)
	if err != nil {
		return nil, err
	}
	// Every result that is not for a command stored now is decided by
	// reading its command.
	var unresolved []*action.ResultMessage
	for i := range results {
		r := &results[i]
		if r.CommandID != 0 && action.IsTerminal(r.Status) && !stored[r.CommandID] {
			unresolved = append(unresolved, r)
		}
	}
	state, err := readCommandStates(ctx, tx, unresolved)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store results: commit: %w", err)
	}

	ack := make([]uint64, 0, len(results))
	acked := make(map[uint64]bool, len(results))
	for i := range results {
		r := &results[i]
		if r.CommandID == 0 || !action.IsTerminal(r.Status) || acked[r.CommandID] {
			continue
		}
		if !stored[r.CommandID] {
			st, known := state[r.CommandID]
			switch {
			case !known:
				s.logger.Debug("result for an unknown command acknowledged", "command", r.CommandID, "agent", r.AgentID)
			case st.agent != r.AgentID:
				s.logger.Warn("result for a command of another agent refused",
					"command", r.CommandID, "agent", r.AgentID, "owner", st.agent)
				continue
			case !action.IsTerminal(st.status):
				// Owned and still sent, yet the update did not apply: cannot
				// happen inside this transaction; do not acknowledge.
				continue
			}
		}
		acked[r.CommandID] = true
		ack = append(ack, r.CommandID)
	}
	return ack, nil
}

// updateCommands stores the candidates' results in their commands, if still
// sent and owned by the result's agent, moves the counters of action_counts
// accordingly, and returns the IDs of the commands it changed.
func (s *Store) updateCommands(ctx context.Context, tx *sql.Tx, candidates []*action.ResultMessage,
	now time.Time) (map[uint64]bool, error) {
	stored := make(map[uint64]bool, len(candidates))
	if len(candidates) == 0 {
		return stored, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO counts_deferred (deferred) VALUES (1)`); err != nil {
		return nil, fmt.Errorf("store results: defer counters: %w", err)
	}
	moved := map[countKey]int{} // results stored per action and new status
	var full *sql.Stmt          // the statement for a whole chunk, prepared once
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	args := make([]any, 0, resultCols*min(len(candidates), resultsPerUpdate))
	for start := 0; start < len(candidates); start += resultsPerUpdate {
		chunk := candidates[start:min(len(candidates), start+resultsPerUpdate)]
		args = args[:0]
		for _, r := range chunk {
			var rj sql.NullString
			if len(r.Results) > 0 {
				b, err := json.Marshal(r.Results)
				if err != nil {
					return nil, fmt.Errorf("store result of command %d: %w", r.CommandID, err)
				}
				rj = sql.NullString{String: string(b), Valid: true}
			}
			st, ok, err := store.EncodeResultSignature(r.Signature)
			if err != nil {
				return nil, fmt.Errorf("store result of command %d: %w", r.CommandID, err)
			}
			sig := sql.NullString{String: st, Valid: ok}
			fin := storable(r.Finished, now)
			if fin.IsZero() {
				fin = now
			}
			args = append(args, int64(r.CommandID), r.AgentID, r.Status, r.Code, r.Error, rj,
				found(r.Results), formatTime(fin), sig)
		}
		var rows *sql.Rows
		var err error
		if len(chunk) == resultsPerUpdate {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, updateResultsSQL(resultsPerUpdate)); err != nil {
					return nil, fmt.Errorf("store results: prepare: %w", err)
				}
			}
			rows, err = full.QueryContext(ctx, args...)
		} else {
			rows, err = tx.QueryContext(ctx, updateResultsSQL(len(chunk)), args...)
		}
		if err != nil {
			return nil, fmt.Errorf("store results: update commands: %w", err)
		}
		for rows.Next() {
			var id, aid int64
			var status string
			if err := rows.Scan(&id, &aid, &status); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store results: update commands: %w", err)
			}
			stored[uint64(id)] = true
			moved[countKey{aid, status}]++
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store results: update commands: %w", err)
		}
	}
	for k, n := range moved {
		if _, err := tx.ExecContext(ctx, `UPDATE action_counts SET n = n - ? WHERE action_id = ? AND status = ?`,
			n, k.action, action.CmdSent); err != nil {
			return nil, fmt.Errorf("store results: count commands of action %d: %w", k.action, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO action_counts (action_id, status, n) VALUES (?, ?, ?)
			ON CONFLICT (action_id, status) DO UPDATE SET n = n + excluded.n`, k.action, k.status, n); err != nil {
			return nil, fmt.Errorf("store results: count commands of action %d: %w", k.action, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM counts_deferred`); err != nil {
		return nil, fmt.Errorf("store results: resume counters: %w", err)
	}
	return stored, nil
}

// updateResultsSQL returns the UPDATE storing n results: each row of its
// VALUES is (command ID, agent ID, status, code, error, results, found,
// finish time, signature), and it returns the ID, action and new status of every
// command it changed. Candidates hold one row per command and agent, so at
// most one row matches a command.
func updateResultsSQL(n int) string {
	var b strings.Builder
	b.WriteString(`UPDATE commands SET status = u.column3, code = u.column4, error = u.column5,
		results = u.column6, found = u.column7, finishtime = u.column8, signature = u.column9
	FROM (VALUES `)
	row := "(" + placeholders(resultCols) + ")"
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(`) AS u
	WHERE commands.id = u.column1 AND commands.agent_id = u.column2 AND commands.status = 'sent'
	RETURNING commands.id, commands.action_id, commands.status`)
	return b.String()
}

// cmdState is a command's owner and status.
type cmdState struct{ agent, status string }

// readCommandStates reads the owner and status of the commands of results,
// in one query per chunk; unknown commands are absent from the map.
func readCommandStates(ctx context.Context, tx *sql.Tx, results []*action.ResultMessage) (map[uint64]cmdState, error) {
	state := make(map[uint64]cmdState, len(results))
	ids := make([]any, 0, min(len(results), maxVars))
	queried := make(map[uint64]bool, len(results))
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, agent_id, status FROM commands WHERE id IN (`+
			placeholders(len(ids))+`)`, ids...)
		if err != nil {
			return fmt.Errorf("store results: read commands: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var st cmdState
			if err := rows.Scan(&id, &st.agent, &st.status); err != nil {
				return fmt.Errorf("store results: read commands: %w", err)
			}
			state[uint64(id)] = st
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store results: read commands: %w", err)
		}
		ids = ids[:0]
		return nil
	}
	for _, r := range results {
		if r.CommandID > math.MaxInt64 || queried[r.CommandID] {
			continue
		}
		queried[r.CommandID] = true
		ids = append(ids, int64(r.CommandID))
		if len(ids) == maxVars {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return state, nil
}
