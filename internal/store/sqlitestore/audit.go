package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/store"
)

// querier is what a change runs on: the writer, or a transaction of it.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// audited runs the change fn. When ctx carries audit records
// (store.WithAudit), fn runs in a writer transaction that appends them
// after it and commits both or neither; otherwise fn runs on the writer as
// it is.
func (s *Store) audited(ctx context.Context, fn func(q querier) error) error {
	recs := store.AuditRecords(ctx)
	if len(recs) == 0 {
		return fn(s.w)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if _, err := appendAudit(ctx, tx, recs); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// appendAudit appends recs after the newest entry. The writer's
// transactions begin IMMEDIATE, so they hold SQLite's write lock from the
// start: no other connection, in this process or another, can append
// between reading the head and inserting.
func appendAudit(ctx context.Context, tx *sql.Tx, recs []audit.Record) ([]audit.Entry, error) {
	var head audit.Head
	var seq int64
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &head.Hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
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
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log (seq, time, actor, kind, object, details, prev, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, int64(e.Seq), formatTime(e.Time), e.Actor, e.Kind, e.Object, details,
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
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("append audit log: begin: %w", err)
	}
	defer tx.Rollback()
	out, err := appendAudit(ctx, tx, recs)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("append audit log: commit: %w", err)
	}
	return out, nil
}

// AuditLog returns up to limit entries after seq after, oldest first.
func (s *Store) AuditLog(ctx context.Context, after uint64, limit int) ([]audit.Entry, error) {
	if after >= 1<<63 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, time, actor, kind, object, details, prev, hash FROM audit_log
		WHERE seq > ? ORDER BY seq LIMIT ?`, int64(after), store.AuditPageSize(limit))
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var e audit.Entry
		var seq int64
		var ts sql.NullString
		var details string
		if err := rows.Scan(&seq, &ts, &e.Actor, &e.Kind, &e.Object, &details, &e.Prev, &e.Hash); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		e.Seq = uint64(seq)
		if e.Time, err = parseTime(ts); err != nil {
			return nil, fmt.Errorf("audit entry %d: %w", seq, err)
		}
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
