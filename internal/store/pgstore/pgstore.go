// Package pgstore implements store.Store on PostgreSQL with
// github.com/jackc/pgx/v5 and its connection pool (pgxpool), for
// deployments of several mig-server processes sharing one database.
//
// Every hot path is one transaction per batch and a handful of statements
// per transaction, whatever the batch size: heartbeats are one INSERT ... ON
// CONFLICT over unnest()ed arrays, command fan-out is a COPY, results are one
// UPDATE ... FROM unnest() in a transaction of its own, which re-checks each
// command's agent and status under its row lock; commands it did not change
// are read after the commit. Two servers storing overlapping batches (an
// agent resending a result to another server) can deadlock: a transaction
// that fails with a deadlock or a serialization failure is run again.
//
// Several stores (in one or several processes) may use one database at
// once. A result is stored once: a command moves from sent to a terminal
// status only in an UPDATE that re-checks its status under the row lock, so
// of two servers storing results for one command, exactly one changes it and
// the other acknowledges the duplicate.
//
// The schema is a set of numbered SQL files embedded in the binary
// (migrations/NNNN_name.sql). Open applies the ones the database lacks, each
// in its own transaction under a transaction-scoped advisory lock, so that
// servers starting together against an empty database apply each migration
// once; it records them in schema_migrations and refuses a database whose
// schema is newer than this code (ErrSchemaTooNew). The tables live in the
// connection's search_path (add search_path=NAME to the URL to use another
// schema than public).
//
// Times keep their nanoseconds: each is stored as a timestamptz (which holds
// microseconds) and a smallint with the nanoseconds below the microsecond,
// and compared as a row, so that expiry and validity windows are exact. Target
// conditions over heartbeattime and starttime (internal/target) compare the
// timestamptz alone and are exact to the microsecond.
//
// PostgreSQL's text cannot hold a NUL byte or invalid UTF-8, and jsonb
// cannot hold the escape \u0000. Agents choose their own attributes and
// results, so such characters are replaced by U+FFFD instead of failing a
// whole batch; identifiers (agent IDs) are never rewritten.
package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/migplatform/mig/internal/store"
)

// ErrSchemaTooNew is returned by Open for a database whose schema was written
// by a newer version of MIG than this one.
var ErrSchemaTooNew = errors.New("database schema is newer than this program")

// migrationLock is the advisory lock key that serialises migrations of one
// database ("mig" in ASCII, shifted).
const migrationLock int64 = 0x6d6967_0001

// maxAttempts bounds how many times a write transaction runs when it fails
// with a deadlock or a serialization failure.
const maxAttempts = 5

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is a store.Store over a PostgreSQL database. It is safe for
// concurrent use, and several Stores may share one database.
type Store struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
}

var _ store.Store = (*Store)(nil)

// Open connects to the PostgreSQL database that connString names (a URL,
// postgres://user:password@host:port/db?sslmode=verify-full&sslrootcert=ca.pem,
// or key=value settings, as pgx and libpq read them, including pool_max_conns)
// and brings its schema up to date. A nil logger discards logs.
func Open(ctx context.Context, connString string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "pgstore")
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		// pgx masks the password in the connection string it repeats.
		return nil, fmt.Errorf("postgres connection string: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", describe(cfg), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", describe(cfg), err)
	}
	if err := migrate(ctx, pool, logger); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", describe(cfg), err)
	}
	return &Store{pool: pool, logger: logger}, nil
}

// describe names a database without its password.
func describe(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	return fmt.Sprintf("database %q on %s:%d as %q", c.Database, c.Host, c.Port, c.User)
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// migrations returns the embedded migrations in version order.
func migrations() ([]store.Migration, error) {
	return store.ReadMigrations(migrationFS, "migrations/*.sql")
}

// migrate applies the migrations the database lacks, each in its own
// transaction, and refuses a schema newer than the newest migration known.
func migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	known := 0
	if len(ms) > 0 {
		known = ms[len(ms)-1].Version
	}
	for _, m := range ms {
		applied, have, err := applyMigration(ctx, pool, m)
		if err != nil {
			return err
		}
		if have > known {
			return fmt.Errorf("%w: schema version %d, this program knows up to %d", ErrSchemaTooNew, have, known)
		}
		if applied {
			logger.Info("schema migration applied", "version", m.Version, "name", m.Name)
		}
	}
	return nil
}

// applyMigration runs m in a transaction unless it is already recorded, and
// returns the newest version recorded before it ran. The transaction holds
// an advisory lock, so that servers opening one new database together apply
// m once and never race on CREATE TABLE.
func applyMigration(ctx context.Context, pool *pgxpool.Pool, m store.Migration) (applied bool, have int, err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, 0, fmt.Errorf("migration %s: begin: %w", m.Name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return false, 0, fmt.Errorf("migration %s: lock: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL
	)`); err != nil {
		return false, 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	var present bool
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0), COALESCE(bool_or(version = $1), false)
		FROM schema_migrations`, m.Version).Scan(&have, &present); err != nil {
		return false, 0, fmt.Errorf("migration %s: read schema version: %w", m.Name, err)
	}
	if present || have > m.Version {
		return false, have, nil
	}
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return false, have, fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())`,
		m.Version, m.Name); err != nil {
		return false, have, fmt.Errorf("migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, have, fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return true, have, nil
}

// inTx runs fn in a transaction and commits it, running it again (up to
// maxAttempts times) when PostgreSQL aborts it for a deadlock or a
// serialization failure. fn must not keep state across attempts.
func (s *Store) inTx(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = s.tryTx(ctx, fn)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			break
		}
		s.logger.Debug("transaction retried", "what", what, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
	return err
}

func (s *Store) tryTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// SQLSTATE codes the store handles.
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

// pgCode returns the SQLSTATE of a PostgreSQL error, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// retryable reports whether a transaction that failed with err may succeed
// if run again.
func retryable(err error) bool {
	switch pgCode(err) {
	case codeSerializationFailure, codeDeadlockDetected:
		return true
	}
	return false
}

// storable returns t, or fallback when t is outside the years 0000-9999 in
// UTC, the range every store keeps. Agents' times are untrusted.
func storable(t, fallback time.Time) time.Time {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fallback
	}
	return t
}

// splitTime returns t in UTC truncated to the microsecond, as timestamptz
// holds it, and the nanoseconds below the microsecond.
func splitTime(t time.Time) (time.Time, int16) {
	t = t.UTC()
	ns := t.Nanosecond() % 1000
	return t.Add(-time.Duration(ns)), int16(ns)
}

// joinTime is the inverse of splitTime, in UTC; the zero instant comes back
// as the zero time.
func joinTime(t time.Time, ns int16) time.Time {
	t = t.Add(time.Duration(ns)).UTC()
	if t.Equal(time.Time{}) {
		return time.Time{}
	}
	return t
}

// nullTime returns the two arguments of a nullable time: NULLs for the zero
// time.
func nullTime(t time.Time) (any, any) {
	if t.IsZero() {
		return nil, nil
	}
	ts, ns := splitTime(t)
	return ts, ns
}

// joinNullTime reads a nullable time; NULL is the zero time.
func joinNullTime(t pgtype.Timestamptz, ns pgtype.Int2) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return joinTime(t.Time, ns.Int16)
}

// validText reports whether PostgreSQL's text can hold s as it is.
func validText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// pgText returns s with what PostgreSQL's text cannot hold (NUL bytes,
// invalid UTF-8) replaced by U+FFFD.
func pgText(s string) string {
	if validText(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// pgTexts applies pgText to every element, copying only when needed.
func pgTexts(ss []string) []string {
	for i, s := range ss {
		if !validText(s) {
			out := make([]string, len(ss))
			copy(out, ss[:i])
			for j := i; j < len(ss); j++ {
				out[j] = pgText(ss[j])
			}
			return out
		}
	}
	return ss
}

// args builds a list of bind arguments and their $n placeholders.
type args []any

// add binds v and returns its placeholder.
func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}
