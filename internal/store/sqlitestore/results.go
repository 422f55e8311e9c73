package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"time"

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

// StoreResults moves each result's command from sent to the result's status,
// with its results, all in one transaction, and returns the command IDs that
// may be acknowledged to agents, each once:
//
//   - commands stored now;
//   - commands already terminal and owned by the result's agent (duplicates,
//     and results arriving after the command expired, which do not change it);
//   - command IDs the store does not know, so that an agent stops resending
//     a result nothing can ever accept.
//
// A result whose agent ID is not the command's agent changes nothing and is
// not acknowledged: an agent is never told about a command it does not own.
// Results with a status that is not terminal, or a command ID of zero, are
// ignored. A result's action ID is not checked: the command ID decides.
func (s *Store) StoreResults(ctx context.Context, results []action.ResultMessage) ([]uint64, error) {
	if len(results) == 0 {
		return nil, nil
	}
	now := time.Now()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store results: begin: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `UPDATE commands SET status = ?, code = ?, error = ?, results = ?, found = ?,
		finishtime = ? WHERE id = ? AND status = 'sent' AND agent_id = ?`)
	if err != nil {
		return nil, fmt.Errorf("store results: prepare: %w", err)
	}
	defer stmt.Close()
	acked := make(map[uint64]bool, len(results))
	ack := make([]uint64, 0, len(results))
	var unresolved []*action.ResultMessage
	for i := range results {
		r := &results[i]
		if r.CommandID == 0 || !action.IsTerminal(r.Status) {
			s.logger.Warn("result ignored", "command", r.CommandID, "agent", r.AgentID, "status", r.Status)
			continue
		}
		if r.CommandID > math.MaxInt64 {
			unresolved = append(unresolved, r) // cannot exist: unknown
			continue
		}
		var rj sql.NullString
		if len(r.Results) > 0 {
			b, err := json.Marshal(r.Results)
			if err != nil {
				return nil, fmt.Errorf("store result of command %d: %w", r.CommandID, err)
			}
			rj = sql.NullString{String: string(b), Valid: true}
		}
		fin := storable(r.Finished, now)
		if fin.IsZero() {
			fin = now
		}
		res, err := stmt.ExecContext(ctx, r.Status, r.Code, r.Error, rj, found(r.Results), formatTime(fin),
			int64(r.CommandID), r.AgentID)
		if err != nil {
			return nil, fmt.Errorf("store result of command %d: %w", r.CommandID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("store result of command %d: %w", r.CommandID, err)
		}
		if n == 1 {
			if !acked[r.CommandID] {
				acked[r.CommandID] = true
				ack = append(ack, r.CommandID)
			}
			continue
		}
		unresolved = append(unresolved, r)
	}
	ack, err = s.resolveUnstored(ctx, tx, unresolved, acked, ack)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store results: commit: %w", err)
	}
	return ack, nil
}

// resolveUnstored decides which results that changed nothing are
// acknowledged, by reading their commands in one query per chunk.
func (s *Store) resolveUnstored(ctx context.Context, tx *sql.Tx, results []*action.ResultMessage,
	acked map[uint64]bool, ack []uint64) ([]uint64, error) {
	type cmdState struct{ agent, status string }
	for start := 0; start < len(results); start += maxVars {
		chunk := results[start:min(len(results), start+maxVars)]
		args := make([]any, 0, len(chunk))
		for _, r := range chunk {
			if r.CommandID <= math.MaxInt64 {
				args = append(args, int64(r.CommandID))
			}
		}
		state := map[uint64]cmdState{}
		if len(args) > 0 {
			rows, err := tx.QueryContext(ctx, `SELECT id, agent_id, status FROM commands WHERE id IN (`+
				placeholders(len(args))+`)`, args...)
			if err != nil {
				return nil, fmt.Errorf("store results: read commands: %w", err)
			}
			for rows.Next() {
				var id int64
				var st cmdState
				if err := rows.Scan(&id, &st.agent, &st.status); err != nil {
					rows.Close()
					return nil, fmt.Errorf("store results: read commands: %w", err)
				}
				state[uint64(id)] = st
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return nil, fmt.Errorf("store results: read commands: %w", err)
			}
		}
		for _, r := range chunk {
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
			if !acked[r.CommandID] {
				acked[r.CommandID] = true
				ack = append(ack, r.CommandID)
			}
		}
	}
	return ack, nil
}
