package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
	sqlite3 "modernc.org/sqlite/lib"
)

// CreateAPIKey stores an API key; ErrExists if the key ID is taken,
// ErrNotFound if its investigator is unknown.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	k, pj, err := store.PrepareAPIKey(k, time.Now())
	if err != nil {
		return err
	}
	return s.audited(ctx, func(q querier) error {
		_, err := q.ExecContext(ctx, `INSERT INTO api_keys (key_id, secret_hash, investigator_id, name, permissions,
		created_at, expire_after, revoked_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			k.KeyID, k.SecretHash, k.InvestigatorID, k.Name, string(pj), formatTime(storable(k.CreatedAt, time.Now())),
			nullTime(storable(k.ExpireAfter, time.Time{})), nullTime(storable(k.RevokedAt, time.Time{})),
			nullTime(storable(k.LastUsedAt, time.Time{})))
		switch {
		case isUniqueViolation(err):
			return fmt.Errorf("api key %s: %w", k.KeyID, store.ErrExists)
		case isForeignKeyViolation(err):
			return fmt.Errorf("api key %s: investigator %d: %w", k.KeyID, k.InvestigatorID, store.ErrNotFound)
		case err != nil:
			return fmt.Errorf("create api key %s: %w", k.KeyID, err)
		}
		return nil
	})
}

// isForeignKeyViolation reports whether err is a foreign key failure.
func isForeignKeyViolation(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

const apiKeyCols = `key_id, investigator_id, name, permissions, created_at, expire_after, revoked_at, last_used_at, secret_hash`

func scanAPIKey(scan func(...any) error) (store.APIKey, error) {
	var k store.APIKey
	var perms string
	var created, expire, revoked, used sql.NullString
	if err := scan(&k.KeyID, &k.InvestigatorID, &k.Name, &perms, &created, &expire, &revoked, &used, &k.SecretHash); err != nil {
		return k, err
	}
	var err error
	if k.Permissions, err = store.ParseAPIKeyPermissions(k.KeyID, perms); err != nil {
		return k, err
	}
	for _, f := range []struct {
		dst *time.Time
		src sql.NullString
	}{{&k.CreatedAt, created}, {&k.ExpireAfter, expire}, {&k.RevokedAt, revoked}, {&k.LastUsedAt, used}} {
		if *f.dst, err = parseTime(f.src); err != nil {
			return k, fmt.Errorf("api key %s: %w", k.KeyID, err)
		}
	}
	return k, nil
}

// APIKey returns an API key with its hash; ErrNotFound if unknown.
func (s *Store) APIKey(ctx context.Context, keyID string) (store.APIKey, error) {
	k, err := scanAPIKey(s.r.QueryRowContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE key_id = ?`, keyID).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return k, fmt.Errorf("api key %q: %w", keyID, store.ErrNotFound)
	}
	if err != nil {
		return k, fmt.Errorf("api key %q: %w", keyID, err)
	}
	return k, nil
}

// APIKeys lists the API keys of an investigator (0: all), oldest first,
// without their hashes.
func (s *Store) APIKeys(ctx context.Context, investigatorID int64) ([]action.APIKey, error) {
	q := `SELECT ` + apiKeyCols + ` FROM api_keys`
	var args []any
	if investigatorID != 0 {
		q += ` WHERE investigator_id = ?`
		args = append(args, investigatorID)
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY created_at, key_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var out []action.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("list api keys: %w", err)
		}
		out = append(out, k.APIKey)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return out, nil
}

// RevokeAPIKey marks a key revoked at at, keeping an earlier revocation;
// ErrNotFound if unknown.
func (s *Store) RevokeAPIKey(ctx context.Context, keyID string, at time.Time) error {
	return s.updateAPIKey(ctx, "revoke", keyID,
		`UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL`,
		formatTime(storable(at, time.Now())), keyID)
}

// TouchAPIKey records the last use of a key, unless a later one is
// recorded; ErrNotFound if unknown.
func (s *Store) TouchAPIKey(ctx context.Context, keyID string, at time.Time) error {
	ts := formatTime(storable(at, time.Now()))
	return s.updateAPIKey(store.WithoutAudit(ctx), "touch", keyID,
		`UPDATE api_keys SET last_used_at = ? WHERE key_id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
		ts, keyID, ts)
}

// updateAPIKey runs an update of one key; when it changes nothing, it
// tells an unknown key (ErrNotFound) from one already up to date.
// The audit records of ctx are appended with the update (store.WithAudit).
func (s *Store) updateAPIKey(ctx context.Context, verb, keyID, query string, args ...any) error {
	return s.audited(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("%s api key %q: %w", verb, keyID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("%s api key %q: %w", verb, keyID, err)
		}
		if n > 0 {
			return nil
		}
		var one int
		err = q.QueryRowContext(ctx, `SELECT 1 FROM api_keys WHERE key_id = ?`, keyID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("api key %q: %w", keyID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s api key %q: %w", verb, keyID, err)
		}
		return nil
	})
}
