package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

// CreateAction stores a signed action, with its signatures and
// investigators, in status pending; ErrExists if the ID is taken. The
// operations' parameters are kept byte for byte.
func (s *Store) CreateAction(ctx context.Context, a *action.Action) error {
	if a == nil {
		return errors.New("create action: nil action")
	}
	id, err := store.DBID("action", a.ID)
	if err != nil {
		return fmt.Errorf("create action: %w", err)
	}
	body, err := store.EncodeActionBody(a)
	if err != nil {
		return fmt.Errorf("create action %d: %w", a.ID, err)
	}
	invs := a.Investigators
	if invs == nil {
		invs = []action.Investigator{}
	}
	ij, err := json.Marshal(invs)
	if err != nil {
		return fmt.Errorf("create action %d: investigators: %w", a.ID, err)
	}
	now := formatTime(time.Now())
	return s.audited(ctx, func(q querier) error {
		_, err := q.ExecContext(ctx, `INSERT INTO actions (id, body, name, target, validfrom, expireafter, status,
		investigators, created_at, starttime, finishtime, lastupdatetime) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)`,
			id, string(body), a.Name, a.Target, formatTime(a.ValidFrom), formatTime(a.ExpireAfter), action.StatusPending,
			string(ij), now, nullTime(a.StartTime), now)
		if isUniqueViolation(err) {
			return fmt.Errorf("action %d: %w", a.ID, store.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create action %d: %w", a.ID, err)
		}
		return nil
	})
}

// actionCols are the actions table's columns, in the order scanAction
// reads them.
const actionCols = `id, body, status, investigators, starttime, finishtime, lastupdatetime`

// scanAction reads one row of actionCols.
func scanAction(scan func(...any) error) (action.Action, error) {
	var a action.Action
	var id int64
	var body, invs string
	var start, finish, last sql.NullString
	if err := scan(&id, &body, &a.Status, &invs, &start, &finish, &last); err != nil {
		return a, err
	}
	if err := store.DecodeActionBody([]byte(body), &a); err != nil {
		return a, fmt.Errorf("action %d: %w", id, err)
	}
	if err := json.Unmarshal([]byte(invs), &a.Investigators); err != nil {
		return a, fmt.Errorf("action %d: investigators: %w", id, err)
	}
	if len(a.Investigators) == 0 {
		a.Investigators = nil
	}
	var err error
	if a.StartTime, err = parseTime(start); err != nil {
		return a, fmt.Errorf("action %d: %w", id, err)
	}
	if a.FinishTime, err = parseTime(finish); err != nil {
		return a, fmt.Errorf("action %d: %w", id, err)
	}
	if a.LastUpdateTime, err = parseTime(last); err != nil {
		return a, fmt.Errorf("action %d: %w", id, err)
	}
	return a, nil
}

// Action returns an action with its counters computed from its commands;
// ErrNotFound if there is no such action.
func (s *Store) Action(ctx context.Context, id uint64) (*action.Action, error) {
	did, err := store.DBID("action", id)
	if err != nil {
		return nil, fmt.Errorf("action %d: %w", id, store.ErrNotFound)
	}
	// One read transaction, so that the action and its counters are a
	// consistent snapshot.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("action %d: begin: %w", id, err)
	}
	defer tx.Rollback()
	a, err := scanAction(tx.QueryRowContext(ctx, `SELECT `+actionCols+` FROM actions WHERE id = ?`, did).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("action %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("action %d: %w", id, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT status, n FROM action_counts WHERE action_id = ? AND n > 0`, did)
	if err != nil {
		return nil, fmt.Errorf("action %d: counters: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			return nil, fmt.Errorf("action %d: counters: %w", id, err)
		}
		store.AddCount(&a.Counters, status, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("action %d: counters: %w", id, err)
	}
	return &a, nil
}

// Actions lists actions, newest first, with their counters. A limit of zero
// or less lists them all.
func (s *Store) Actions(ctx context.Context, limit, offset int) ([]action.Action, error) {
	if offset < 0 {
		return nil, fmt.Errorf("list actions: negative offset %d", offset)
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("list actions: begin: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+actionCols+` FROM actions
		ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	defer rows.Close()
	var out []action.Action
	index := map[uint64]int{}
	for rows.Next() {
		a, err := scanAction(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("list actions: %w", err)
		}
		index[a.ID] = len(out)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	rows.Close()
	for start := 0; start < len(out); start += maxVars {
		chunk := out[start:min(len(out), start+maxVars)]
		args := make([]any, len(chunk))
		for i, a := range chunk {
			args[i] = int64(a.ID)
		}
		if err := s.addCounters(ctx, tx, out, index, args); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// addCounters fills the counters of the actions whose IDs are in ids, with
// one query of action_counts (kept by the store and by triggers on
// commands, see migrations 0002 and 0003).
func (s *Store) addCounters(ctx context.Context, tx *sql.Tx, out []action.Action, index map[uint64]int, ids []any) error {
	rows, err := tx.QueryContext(ctx, `SELECT action_id, status, n FROM action_counts
		WHERE action_id IN (`+placeholders(len(ids))+`) AND n > 0`, ids...)
	if err != nil {
		return fmt.Errorf("list actions: counters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var status string
		var n int
		if err := rows.Scan(&id, &status, &n); err != nil {
			return fmt.Errorf("list actions: counters: %w", err)
		}
		if i, ok := index[uint64(id)]; ok {
			store.AddCount(&out[i].Counters, status, n)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list actions: counters: %w", err)
	}
	return nil
}

// SetActionStatus records an action's status and, when finished is not
// zero, its finish time. The first status other than pending also sets the
// action's start time, if it has none. ErrNotFound if there is no such
// action.
func (s *Store) SetActionStatus(ctx context.Context, id uint64, status string, finished time.Time) error {
	did, err := store.DBID("action", id)
	if err != nil {
		return fmt.Errorf("set status of action %d: %w", id, store.ErrNotFound)
	}
	if strings.TrimSpace(status) == "" {
		return fmt.Errorf("set status of action %d: empty status", id)
	}
	now := formatTime(time.Now())
	res, err := s.w.ExecContext(ctx, `UPDATE actions SET status = ?, lastupdatetime = ?,
		finishtime = COALESCE(?, finishtime),
		starttime = CASE WHEN starttime IS NULL AND ? <> ? THEN ? ELSE starttime END
		WHERE id = ?`, status, now, nullTime(finished), status, action.StatusPending, now, did)
	if err != nil {
		return fmt.Errorf("set status of action %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("set status of action %d: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("action %d: %w", id, store.ErrNotFound)
	}
	return nil
}
