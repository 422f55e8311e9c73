package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

// checkLease refuses a lease without an owner or with an unstorable action
// ID, naming what was being done.
func checkLease(what string, l store.DispatchLease) (int64, error) {
	id, err := store.DBID("action", l.ActionID)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if strings.TrimSpace(l.Owner) == "" {
		return 0, fmt.Errorf("%s of action %d: empty lease owner", what, l.ActionID)
	}
	return id, nil
}

// AcquireDispatch takes the dispatch lease of a pending action for l.Owner
// until l.Expires, when nobody holds it or its holder's lease expired before
// now; see store.Store.
func (s *Store) AcquireDispatch(ctx context.Context, l store.DispatchLease, now time.Time) error {
	id, err := checkLease("acquire dispatch", l)
	if err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("acquire dispatch of action %d: begin: %w", l.ActionID, err)
	}
	defer tx.Rollback()
	var status string
	var owner, expires sql.NullString
	err = tx.QueryRowContext(ctx, `SELECT status, dispatch_owner, dispatch_expires FROM actions WHERE id = ?`, id).
		Scan(&status, &owner, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("acquire dispatch: action %d: %w", l.ActionID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("acquire dispatch of action %d: %w", l.ActionID, err)
	}
	if status != action.StatusPending {
		return fmt.Errorf("acquire dispatch of action %d in status %s: %w", l.ActionID, status, store.ErrNotPending)
	}
	if owner.Valid && (!expires.Valid || expires.String >= formatTime(now)) {
		return fmt.Errorf("acquire dispatch of action %d: %w", l.ActionID, store.ErrLeaseHeld)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE actions SET dispatch_owner = ?, dispatch_expires = ? WHERE id = ?`,
		l.Owner, formatTime(l.Expires), id); err != nil {
		return fmt.Errorf("acquire dispatch of action %d: %w", l.ActionID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("acquire dispatch of action %d: commit: %w", l.ActionID, err)
	}
	return nil
}

// renewLease moves the expiry of l in tx (or the writer), or returns
// ErrLeaseLost when l.Owner no longer holds the lease.
func renewLease(ctx context.Context, exec interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, id int64, l store.DispatchLease) error {
	res, err := exec.ExecContext(ctx, `UPDATE actions SET dispatch_expires = ?
		WHERE id = ? AND dispatch_owner = ? AND status = ?`, formatTime(l.Expires), id, l.Owner, action.StatusPending)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrLeaseLost
	}
	return nil
}

// RenewDispatch moves the expiry of a lease l.Owner holds to l.Expires;
// ErrLeaseLost if it no longer holds it.
func (s *Store) RenewDispatch(ctx context.Context, l store.DispatchLease) error {
	id, err := checkLease("renew dispatch", l)
	if err != nil {
		return err
	}
	if err := renewLease(ctx, s.w, id, l); err != nil {
		return fmt.Errorf("renew dispatch of action %d: %w", l.ActionID, err)
	}
	return nil
}

// DispatchCommands stores commands of l.ActionID in status sent, as
// CreateCommands does, in a transaction that first checks that l.Owner
// still holds the action's dispatch lease and moves its expiry to
// l.Expires; ErrLeaseLost (and nothing stored) otherwise.
func (s *Store) DispatchCommands(ctx context.Context, l store.DispatchLease, cmds []action.Command) error {
	id, err := checkLease("dispatch commands", l)
	if err != nil {
		return err
	}
	if _, err := checkCommands(cmds); err != nil {
		return err
	}
	for _, c := range cmds {
		if c.Action.ID != l.ActionID {
			return fmt.Errorf("dispatch commands of action %d: command %d is of action %d", l.ActionID, c.ID, c.Action.ID)
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("dispatch commands of action %d: begin: %w", l.ActionID, err)
	}
	defer tx.Rollback()
	if err := renewLease(ctx, tx, id, l); err != nil {
		return fmt.Errorf("dispatch commands of action %d: %w", l.ActionID, err)
	}
	if err := s.insertCommands(ctx, tx, cmds); err != nil {
		return fmt.Errorf("dispatch commands of action %d: %w", l.ActionID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("dispatch commands of action %d: commit: %w", l.ActionID, err)
	}
	return nil
}

// FinishDispatch records the status of a dispatched action and drops its
// lease, if l.Owner still holds it; ErrLeaseLost otherwise. As in
// SetActionStatus, the first status other than pending also sets the
// action's start time if it has none.
func (s *Store) FinishDispatch(ctx context.Context, l store.DispatchLease, status string, finished time.Time) error {
	id, err := checkLease("finish dispatch", l)
	if err != nil {
		return err
	}
	if strings.TrimSpace(status) == "" || status == action.StatusPending {
		return fmt.Errorf("finish dispatch of action %d: status %q: want a status after pending", l.ActionID, status)
	}
	now := formatTime(time.Now())
	res, err := s.w.ExecContext(ctx, `UPDATE actions SET status = ?, lastupdatetime = ?,
		finishtime = COALESCE(?, finishtime), starttime = COALESCE(starttime, ?),
		dispatch_owner = NULL, dispatch_expires = NULL
		WHERE id = ? AND dispatch_owner = ? AND status = ?`,
		status, now, nullTime(finished), now, id, l.Owner, action.StatusPending)
	if err != nil {
		return fmt.Errorf("finish dispatch of action %d: %w", l.ActionID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("finish dispatch of action %d: %w", l.ActionID, err)
	}
	if n == 0 {
		return fmt.Errorf("finish dispatch of action %d: %w", l.ActionID, store.ErrLeaseLost)
	}
	return nil
}

// StalledDispatches returns the pending actions whose dispatch lease
// expired before now, and those never leased created before
// unclaimedBefore, in increasing order.
func (s *Store) StalledDispatches(ctx context.Context, now, unclaimedBefore time.Time) ([]uint64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM actions WHERE status = 'pending'
		AND ((dispatch_owner IS NOT NULL AND dispatch_expires < ?) OR (dispatch_owner IS NULL AND created_at < ?))
		ORDER BY id`, formatTime(now), formatTime(unclaimedBefore))
	if err != nil {
		return nil, fmt.Errorf("stalled dispatches: %w", err)
	}
	defer rows.Close()
	var ids []uint64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("stalled dispatches: %w", err)
		}
		ids = append(ids, uint64(id))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stalled dispatches: %w", err)
	}
	return ids, nil
}
