package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

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
	now, nowNs := splitTime(time.Now())
	vf, vfNs := splitTime(storable(a.ValidFrom, time.Time{}))
	ea, eaNs := splitTime(storable(a.ExpireAfter, time.Time{}))
	st, stNs := nullTime(storable(a.StartTime, time.Time{}))
	return s.audited(ctx, "create action", func(q querier) error {
		_, err := q.Exec(ctx, `INSERT INTO actions (id, body, name, target, validfrom, validfrom_ns,
		expireafter, expireafter_ns, status, investigators, created_at, created_at_ns, starttime, starttime_ns,
		finishtime, finishtime_ns, lastupdatetime, lastupdatetime_ns)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, NULL, $11, $12)`,
			id, pgText(string(body)), pgText(a.Name), pgText(a.Target), vf, vfNs, ea, eaNs, action.StatusPending,
			pgText(string(ij)), now, nowNs, st, stNs)
		if pgCode(err) == codeUniqueViolation {
			return fmt.Errorf("action %d: %w", a.ID, store.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create action %d: %w", a.ID, err)
		}
		return nil
	})
}

// actionCols are the actions table's columns (as a), in the order
// scanAction reads them.
const actionCols = `a.id, a.body, a.status, a.investigators, a.starttime, a.starttime_ns,
	a.finishtime, a.finishtime_ns, a.lastupdatetime, a.lastupdatetime_ns`

// countsJoin adds to a query over actions (a) one row per command status of
// each action (c.status, c.n), or one row of NULLs for an action without
// commands: the action and its counters come from one snapshot.
const countsJoin = ` LEFT JOIN LATERAL (SELECT status, COUNT(*) AS n FROM commands
	WHERE action_id = a.id GROUP BY status) c ON true`

// actionRow is one row of actionCols followed by a status count.
type actionRow struct {
	id                 int64
	body, status, invs string
	start, finish      pgtype.Timestamptz
	startNs, finishNs  pgtype.Int2
	last               time.Time
	lastNs             int16
	countStatus        pgtype.Text
	count              pgtype.Int8
}

func (r *actionRow) dest() []any {
	return []any{&r.id, &r.body, &r.status, &r.invs, &r.start, &r.startNs, &r.finish, &r.finishNs,
		&r.last, &r.lastNs, &r.countStatus, &r.count}
}

// action decodes the row's action, without counters.
func (r *actionRow) action() (action.Action, error) {
	var a action.Action
	if err := store.DecodeActionBody([]byte(r.body), &a); err != nil {
		return a, fmt.Errorf("action %d: %w", r.id, err)
	}
	a.Status = r.status
	if err := json.Unmarshal([]byte(r.invs), &a.Investigators); err != nil {
		return a, fmt.Errorf("action %d: investigators: %w", r.id, err)
	}
	if len(a.Investigators) == 0 {
		a.Investigators = nil
	}
	a.StartTime = joinNullTime(r.start, r.startNs)
	a.FinishTime = joinNullTime(r.finish, r.finishNs)
	a.LastUpdateTime = joinTime(r.last, r.lastNs)
	return a, nil
}

// queryActions runs a query of actionCols and countsJoin and returns its
// actions, in the order of their first rows, with their counters.
func (s *Store) queryActions(ctx context.Context, query string, a ...any) ([]action.Action, error) {
	rows, err := s.pool.Query(ctx, query, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []action.Action
	lastID := int64(-1)
	for rows.Next() {
		var r actionRow
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, err
		}
		if r.id != lastID {
			act, err := r.action()
			if err != nil {
				return nil, err
			}
			out = append(out, act)
			lastID = r.id
		}
		if r.countStatus.Valid {
			store.AddCount(&out[len(out)-1].Counters, r.countStatus.String, int(r.count.Int64))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Action returns an action with its counters computed from its commands;
// ErrNotFound if there is no such action.
func (s *Store) Action(ctx context.Context, id uint64) (*action.Action, error) {
	did, err := store.DBID("action", id)
	if err != nil {
		return nil, fmt.Errorf("action %d: %w", id, store.ErrNotFound)
	}
	list, err := s.queryActions(ctx, `SELECT `+actionCols+`, c.status, c.n FROM actions a`+countsJoin+
		` WHERE a.id = $1`, did)
	if err != nil {
		return nil, fmt.Errorf("action %d: %w", id, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("action %d: %w", id, store.ErrNotFound)
	}
	return &list[0], nil
}

// Actions lists actions, newest first, with their counters. A limit of zero
// or less lists them all.
func (s *Store) Actions(ctx context.Context, limit, offset int) ([]action.Action, error) {
	if offset < 0 {
		return nil, fmt.Errorf("list actions: negative offset %d", offset)
	}
	var a args
	page := `SELECT * FROM actions ORDER BY created_at DESC, created_at_ns DESC, id DESC`
	if limit > 0 {
		page += ` LIMIT ` + a.add(limit)
	}
	page += ` OFFSET ` + a.add(offset)
	list, err := s.queryActions(ctx, `SELECT `+actionCols+`, c.status, c.n FROM (`+page+`) a`+countsJoin+
		` ORDER BY a.created_at DESC, a.created_at_ns DESC, a.id DESC`, a...)
	if err != nil {
		return nil, fmt.Errorf("list actions: %w", err)
	}
	return list, nil
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
	now, nowNs := splitTime(time.Now())
	fin, finNs := nullTime(storable(finished, time.Now()))
	tag, err := s.pool.Exec(ctx, `UPDATE actions SET status = $1, lastupdatetime = $2, lastupdatetime_ns = $3,
		finishtime = COALESCE($4::timestamptz, finishtime),
		finishtime_ns = CASE WHEN $4::timestamptz IS NULL THEN finishtime_ns ELSE $5::int2 END,
		starttime = CASE WHEN starttime IS NULL AND $1 <> $6 THEN $2 ELSE starttime END,
		starttime_ns = CASE WHEN starttime IS NULL AND $1 <> $6 THEN $3 ELSE starttime_ns END
		WHERE id = $7`, pgText(status), now, nowNs, fin, finNs, action.StatusPending, did)
	if err != nil {
		return fmt.Errorf("set status of action %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("action %d: %w", id, store.ErrNotFound)
	}
	return nil
}
