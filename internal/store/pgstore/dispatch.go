package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
	if !validText(l.Owner) {
		return 0, fmt.Errorf("%s of action %d: lease owner %q is not valid UTF-8 text", what, l.ActionID, l.Owner)
	}
	return id, nil
}

// AcquireDispatch takes the dispatch lease of a pending action for l.Owner
// until l.Expires, when nobody holds it or its holder's lease expired before
// now (to the nanosecond); see store.Store. Of servers taking one lease at
// once, the row lock lets exactly one through.
func (s *Store) AcquireDispatch(ctx context.Context, l store.DispatchLease, now time.Time) error {
	id, err := checkLease("acquire dispatch", l)
	if err != nil {
		return err
	}
	exp, expNs := splitTime(storable(l.Expires, time.Time{}))
	nowTs, nowNs := splitTime(now)
	tag, err := s.pool.Exec(ctx, `UPDATE actions SET dispatch_owner = $1, dispatch_expires = $2, dispatch_expires_ns = $3
		WHERE id = $4 AND status = $5
		AND (dispatch_owner IS NULL OR (dispatch_expires, dispatch_expires_ns) < ($6, $7))`,
		l.Owner, exp, expNs, id, action.StatusPending, nowTs, nowNs)
	if err != nil {
		return fmt.Errorf("acquire dispatch of action %d: %w", l.ActionID, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var status string
	err = s.pool.QueryRow(ctx, `SELECT status FROM actions WHERE id = $1`, id).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("acquire dispatch: action %d: %w", l.ActionID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("acquire dispatch of action %d: %w", l.ActionID, err)
	}
	if status != action.StatusPending {
		return fmt.Errorf("acquire dispatch of action %d in status %s: %w", l.ActionID, status, store.ErrNotPending)
	}
	return fmt.Errorf("acquire dispatch of action %d: %w", l.ActionID, store.ErrLeaseHeld)
}

// renewLease moves the expiry of l (and reopens the action for expiry: the
// holder is about to add sent commands), or returns ErrLeaseLost when
// l.Owner no longer holds the lease. In a transaction, it keeps the action's
// row locked until the end: a takeover waits for it.
func renewLease(ctx context.Context, tx pgx.Tx, id int64, l store.DispatchLease) error {
	exp, expNs := splitTime(storable(l.Expires, time.Time{}))
	tag, err := tx.Exec(ctx, `UPDATE actions SET dispatch_expires = $1, dispatch_expires_ns = $2, swept = false
		WHERE id = $3 AND dispatch_owner = $4 AND status = $5`, exp, expNs, id, l.Owner, action.StatusPending)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
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
	err = s.inTx(ctx, "renew dispatch", func(tx pgx.Tx) error { return renewLease(ctx, tx, id, l) })
	if err != nil {
		return fmt.Errorf("renew dispatch of action %d: %w", l.ActionID, err)
	}
	return nil
}

// DispatchCommands stores commands of l.ActionID in status sent with one
// COPY, in a transaction that first checks that l.Owner still holds the
// action's dispatch lease and moves its expiry to l.Expires, locking the
// action's row; ErrLeaseLost (and nothing stored) otherwise.
func (s *Store) DispatchCommands(ctx context.Context, l store.DispatchLease, cmds []action.Command) error {
	id, err := checkLease("dispatch commands", l)
	if err != nil {
		return err
	}
	_, rows, err := commandRows(cmds)
	if err != nil {
		return err
	}
	for _, c := range cmds {
		if c.Action.ID != l.ActionID {
			return fmt.Errorf("dispatch commands of action %d: command %d is of action %d", l.ActionID, c.ID, c.Action.ID)
		}
	}
	err = s.inTx(ctx, "dispatch commands", func(tx pgx.Tx) error {
		if err := renewLease(ctx, tx, id, l); err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		return copyCommands(ctx, tx, rows)
	})
	if err != nil {
		return fmt.Errorf("dispatch %d commands of action %d: %w", len(cmds), l.ActionID, err)
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
	now, nowNs := splitTime(time.Now())
	fin, finNs := nullTime(storable(finished, time.Now()))
	tag, err := s.pool.Exec(ctx, `UPDATE actions SET status = $1, lastupdatetime = $2, lastupdatetime_ns = $3,
		finishtime = COALESCE($4::timestamptz, finishtime),
		finishtime_ns = CASE WHEN $4::timestamptz IS NULL THEN finishtime_ns ELSE $5::int2 END,
		starttime_ns = CASE WHEN starttime IS NULL THEN $3 ELSE starttime_ns END,
		starttime = COALESCE(starttime, $2),
		dispatch_owner = NULL, dispatch_expires = NULL, dispatch_expires_ns = NULL
		WHERE id = $6 AND dispatch_owner = $7 AND status = $8`,
		pgText(status), now, nowNs, fin, finNs, id, l.Owner, action.StatusPending)
	if err != nil {
		return fmt.Errorf("finish dispatch of action %d: %w", l.ActionID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish dispatch of action %d: %w", l.ActionID, store.ErrLeaseLost)
	}
	return nil
}

// StalledDispatches returns the pending actions whose dispatch lease
// expired before now, and those never leased created before
// unclaimedBefore, in increasing order.
func (s *Store) StalledDispatches(ctx context.Context, now, unclaimedBefore time.Time) ([]uint64, error) {
	nowTs, nowNs := splitTime(now)
	ub, ubNs := splitTime(unclaimedBefore)
	// status = 'pending' as a literal, so that the partial index applies.
	rows, err := s.pool.Query(ctx, `SELECT id FROM actions WHERE status = 'pending'
		AND ((dispatch_owner IS NOT NULL AND (dispatch_expires, dispatch_expires_ns) < ($1, $2))
			OR (dispatch_owner IS NULL AND (created_at, created_at_ns) < ($3, $4)))
		ORDER BY id`, nowTs, nowNs, ub, ubNs)
	if err != nil {
		return nil, fmt.Errorf("stalled dispatches: %w", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("stalled dispatches: %w", err)
	}
	ids := make([]uint64, len(got))
	for i, id := range got {
		ids[i] = uint64(id)
	}
	return ids, nil
}
