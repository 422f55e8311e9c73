package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/store"
)

// auditLockKey is the PostgreSQL advisory lock ("mig-audi" in ASCII) that
// every append to the audit log holds until its transaction ends, so that
// appends from every server over the database form one chain.
const auditLockKey int64 = 0x6d69672d61756469

// querier is what a change runs on: the pool, or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// audited runs the change fn. When ctx carries audit records
// (store.WithAudit), fn runs in a transaction that appends them after it and
// commits both or neither; otherwise fn runs on the pool as it is.
func (s *Store) audited(ctx context.Context, what string, fn func(q querier) error) error {
	recs := store.AuditRecords(ctx)
	if len(recs) == 0 {
		return fn(s.pool)
	}
	return s.inTx(ctx, what, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		_, err := appendAudit(ctx, tx, recs)
		return err
	})
}

// appendAudit appends recs after the newest entry, holding auditLockKey:
// under READ COMMITTED, the head read after taking the lock sees every
// append committed before, and no other one can run until this
// transaction ends.
func appendAudit(ctx context.Context, tx pgx.Tx, recs []audit.Record) ([]audit.Entry, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLockKey); err != nil {
		return nil, fmt.Errorf("append audit log: lock: %w", err)
	}
	var head audit.Head
	var seq int64
	err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &head.Hash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("append audit log: read head: %w", err)
	}
	head.Seq = uint64(seq)
	out := make([]audit.Entry, 0, len(recs))
	for _, rec := range recs {
		e := audit.Next(head, rec, time.Now())
		details, err := store.EncodeAuditDetails(e)
		if err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_log (seq, time, actor, kind, object, details, prev, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, int64(e.Seq), e.Time, e.Actor, e.Kind, e.Object, details,
			e.Prev, e.Hash); err != nil {
			return nil, fmt.Errorf("append audit entry %d (%s): %w", e.Seq, e.Kind, err)
		}
		out = append(out, e)
		head = audit.Head{Seq: e.Seq, Hash: e.Hash}
	}
	return out, nil
}

// AppendAudit appends records to the audit log in one transaction.
func (s *Store) AppendAudit(ctx context.Context, recs ...audit.Record) ([]audit.Entry, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	var out []audit.Entry
	err := s.inTx(ctx, "append audit log", func(tx pgx.Tx) error {
		var err error
		out, err = appendAudit(ctx, tx, recs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AuditLog returns up to limit entries after seq after, oldest first.
func (s *Store) AuditLog(ctx context.Context, after uint64, limit int) ([]audit.Entry, error) {
	if after >= 1<<63 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, time, actor, kind, object, details, prev, hash FROM audit_log
		WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(after), store.AuditPageSize(limit))
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var e audit.Entry
		var seq int64
		var details string
		if err := rows.Scan(&seq, &e.Time, &e.Actor, &e.Kind, &e.Object, &details, &e.Prev, &e.Hash); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		e.Seq = uint64(seq)
		e.Time = e.Time.UTC()
		if e.Details, err = store.DecodeAuditDetails(e.Seq, details); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}
