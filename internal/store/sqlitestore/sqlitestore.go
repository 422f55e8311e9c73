// Package sqlitestore implements store.Store on SQLite, with the pure Go
// driver modernc.org/sqlite, so that a single mig-server needs no database
// server.
//
// SQLite allows one writer at a time. The store therefore keeps two pools
// over the same file: a writer with exactly one connection, whose
// transactions begin IMMEDIATE so that they never fail with SQLITE_BUSY
// inside this process, and a pool of query-only readers, which in WAL mode
// never wait behind the writer. Every hot path (heartbeats, command fan-out,
// results) writes its whole batch in one transaction.
//
// The schema is a set of numbered SQL files embedded in the binary
// (migrations/NNNN_name.sql). Open applies the ones a database lacks, each in
// its own transaction, recording them in the schema_migrations table, and
// refuses a database whose schema is newer than this code (ErrSchemaTooNew).
//
// A new database file is created mode 0600 before SQLite opens it, whatever
// the umask: SQLite gives the -wal and -shm files it makes next to it the
// database's mode, so all three hold the store's secrets (API key hashes,
// agents' relay credentials, results) from the first write. An existing
// database keeps its mode; mig-server checks it at start.
//
// Times are stored as TEXT in RFC 3339 with exactly nine fraction digits in
// UTC (see TimeFormat), so that they compare and sort as text.
package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/migplatform/mig/internal/store"
)

// TimeFormat is how every time is stored: RFC 3339, UTC, with a fixed
// nine-digit fraction, so that stored times sort as text.
const TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// ErrSchemaTooNew is returned by Open for a database whose schema was written
// by a newer version of MIG than this one.
var ErrSchemaTooNew = errors.New("database schema is newer than this program")

// busyTimeout is how long a connection waits for a lock held by another
// process before failing.
const busyTimeout = 10 * time.Second

// writerCacheKiB is the writer's page cache size: a negative cache_size is
// in KiB. A large cache keeps the commands table's indexes in memory while
// results are stored.
const writerCacheKiB = "-32768"

// maxReaders bounds the read pool.
const maxReaders = 8

// maxVars is the most bound parameters put in one statement; SQLite's limit
// is 32766 and smaller statements are prepared faster.
const maxVars = 8000

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is a store.Store over one SQLite database file. It is safe for
// concurrent use.
type Store struct {
	w      *sql.DB // one connection: every write goes through it
	r      *sql.DB // query-only readers
	logger *slog.Logger
	// insertCmds inserts commandGroup commands, prepared once on the
	// writer: parsing a statement of thousands of placeholders for every
	// batch cost as much as running it.
	insertCmds *sql.Stmt
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it if needed) the SQLite database at path, in WAL mode,
// and brings its schema up to date. A nil logger discards logs.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "sqlitestore")
	if path == "" || path == ":memory:" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite database path %q: want a file name without '?', '#' or a file: prefix", path)
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("create sqlite database %q: %w", path, err)
	}
	timeout := strconv.FormatInt(busyTimeout.Milliseconds(), 10)
	common := "?_pragma=busy_timeout(" + timeout + ")&_pragma=foreign_keys(1)"
	w, err := sql.Open("sqlite", path+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=cache_size("+writerCacheKiB+")&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %q: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := ping(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite database %q: %w", path, err)
	}
	if err := migrate(ctx, w, logger); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite database %q: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+common+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite database %q for reading: %w", path, err)
	}
	r.SetMaxOpenConns(maxReaders)
	r.SetMaxIdleConns(maxReaders)
	if err := ping(ctx, r); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open sqlite database %q for reading: %w", path, err)
	}
	ins, err := w.PrepareContext(ctx, insertCommandsSQL(commandGroup))
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite database %q: prepare: %w", path, err)
	}
	return &Store{w: w, r: r, logger: logger, insertCmds: ins}, nil
}

// createPrivate makes an empty database file (a valid SQLite database) at
// path, mode 0600, unless a file is there.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// Chmod, not the mode of creation: a umask must not decide.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ping opens db's first connection. Connections that open a new database at
// the same moment (servers starting together) can be refused with
// SQLITE_BUSY while another one switches it to WAL, without the busy
// handler being asked: try again for up to busyTimeout.
func ping(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(busyTimeout)
	for {
		err := db.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// isBusy reports whether err is SQLite's "database is locked".
func isBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()&0xff == sqlite3.SQLITE_BUSY
	}
	return strings.Contains(err.Error(), "SQLITE_BUSY") || strings.Contains(err.Error(), "database is locked")
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.insertCmds.Close(), s.r.Close(), s.w.Close())
}

// migrations returns the embedded migrations in version order.
func migrations() ([]store.Migration, error) {
	return store.ReadMigrations(migrationFS, "migrations/*.sql")
}

// migrate applies the migrations the database lacks, each in its own
// transaction, and refuses a schema newer than the newest migration known.
func migrate(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	known := 0
	if len(ms) > 0 {
		known = ms[len(ms)-1].Version
	}
	var have int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if have > known {
		return fmt.Errorf("%w: schema version %d, this program knows up to %d", ErrSchemaTooNew, have, known)
	}
	for _, m := range ms {
		applied, err := applyMigration(ctx, db, m)
		if err != nil {
			return err
		}
		if applied {
			logger.Info("schema migration applied", "version", m.Version, "name", m.Name)
		}
	}
	return nil
}

// applyMigration runs m in a transaction unless it is already recorded; the
// check is inside the transaction so that two processes opening the same new
// database do not both apply it.
func applyMigration(ctx context.Context, db *sql.DB, m store.Migration) (applied bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migration %s: begin: %w", m.Name, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, formatTime(time.Now())); err != nil {
		return false, fmt.Errorf("migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return true, nil
}

// formatTime formats t as stored.
func formatTime(t time.Time) string {
	return t.UTC().Format(TimeFormat)
}

// storable returns t, or fallback when t is outside the years 0000-9999 in
// UTC, which TimeFormat cannot hold in a form that sorts and parses back.
// Agents' times are untrusted: an offset such as -23:59 on 9999-12-31 lands
// in the year 10000.
func storable(t, fallback time.Time) time.Time {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fallback
	}
	return t
}

// nullTime formats t as stored, or NULL when t is zero.
func nullTime(t time.Time) sql.NullString {
	if t.IsZero() {
		return sql.NullString{}
	}
	return sql.NullString{String: formatTime(t), Valid: true}
}

// parseTime reads a stored time; NULL or empty is the zero time.
func parseTime(s sql.NullString) (time.Time, error) {
	if !s.Valid || s.String == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s.String)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s.String, err)
	}
	if t.Equal(time.Time{}) {
		return time.Time{}, nil
	}
	return t.UTC(), nil
}

// sqliteCode returns the extended result code of a SQLite error, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// isUniqueViolation reports whether err is a primary key or unique
// constraint failure.
func isUniqueViolation(err error) bool {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return true
	}
	return false
}

// placeholders returns "?, ?, ..." with n marks.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// rowsPerChunk is how many rows of cols parameters fit in one statement.
func rowsPerChunk(cols int) int {
	return maxVars / cols
}
