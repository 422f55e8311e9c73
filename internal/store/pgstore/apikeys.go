package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

// CreateAPIKey stores an API key; ErrExists if the key ID is taken,
// ErrNotFound if its investigator is unknown.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	k, pj, err := store.PrepareAPIKey(k, time.Now())
	if err != nil {
		return err
	}
	cts, cns := splitTime(storable(k.CreatedAt, time.Now()))
	ets, ens := nullTime(storable(k.ExpireAfter, time.Time{}))
	rts, rns := nullTime(storable(k.RevokedAt, time.Time{}))
	uts, uns := nullTime(storable(k.LastUsedAt, time.Time{}))
	return s.audited(ctx, "create api key", func(q querier) error {
		_, err := q.Exec(ctx, `INSERT INTO api_keys (key_id, secret_hash, investigator_id, name, permissions,
		created_at, created_at_ns, expire_after, expire_after_ns, revoked_at, revoked_at_ns, last_used_at, last_used_at_ns)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			k.KeyID, k.SecretHash, k.InvestigatorID, pgText(k.Name), pgText(string(pj)), cts, cns, ets, ens, rts, rns, uts, uns)
		switch {
		case pgCode(err) == codeUniqueViolation:
			return fmt.Errorf("api key %s: %w", k.KeyID, store.ErrExists)
		case pgCode(err) == codeForeignKeyViolation:
			return fmt.Errorf("api key %s: investigator %d: %w", k.KeyID, k.InvestigatorID, store.ErrNotFound)
		case err != nil:
			return fmt.Errorf("create api key %s: %w", k.KeyID, err)
		}
		return nil
	})
}

const apiKeyCols = `key_id, investigator_id, name, permissions, created_at, created_at_ns,
	expire_after, expire_after_ns, revoked_at, revoked_at_ns, last_used_at, last_used_at_ns, secret_hash`

func scanAPIKey(row pgx.Row) (store.APIKey, error) {
	var k store.APIKey
	var perms string
	var created time.Time
	var cns int16
	var expire, revoked, used pgtype.Timestamptz
	var ens, rns, uns pgtype.Int2
	if err := row.Scan(&k.KeyID, &k.InvestigatorID, &k.Name, &perms, &created, &cns,
		&expire, &ens, &revoked, &rns, &used, &uns, &k.SecretHash); err != nil {
		return k, err
	}
	var err error
	if k.Permissions, err = store.ParseAPIKeyPermissions(k.KeyID, perms); err != nil {
		return k, err
	}
	k.CreatedAt = joinTime(created, cns)
	k.ExpireAfter = joinNullTime(expire, ens)
	k.RevokedAt = joinNullTime(revoked, rns)
	k.LastUsedAt = joinNullTime(used, uns)
	return k, nil
}

// APIKey returns an API key with its hash; ErrNotFound if unknown.
func (s *Store) APIKey(ctx context.Context, keyID string) (store.APIKey, error) {
	if !validText(keyID) {
		return store.APIKey{}, fmt.Errorf("api key %q: %w", keyID, store.ErrNotFound)
	}
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE key_id = $1`, keyID))
	if errors.Is(err, pgx.ErrNoRows) {
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
		q += ` WHERE investigator_id = $1`
		args = append(args, investigatorID)
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY created_at, created_at_ns, key_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var out []action.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
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
	ts, ns := splitTime(storable(at, time.Now()))
	return s.updateAPIKey(ctx, "revoke", keyID,
		`UPDATE api_keys SET revoked_at = $1, revoked_at_ns = $2 WHERE key_id = $3 AND revoked_at IS NULL`,
		ts, ns, keyID)
}

// TouchAPIKey records the last use of a key, unless a later one is
// recorded; ErrNotFound if unknown.
func (s *Store) TouchAPIKey(ctx context.Context, keyID string, at time.Time) error {
	ts, ns := splitTime(storable(at, time.Now()))
	return s.updateAPIKey(store.WithoutAudit(ctx), "touch", keyID,
		`UPDATE api_keys SET last_used_at = $1, last_used_at_ns = $2 WHERE key_id = $3
		 AND (last_used_at IS NULL OR (last_used_at, last_used_at_ns) < ($1, $2))`,
		ts, ns, keyID)
}

// updateAPIKey runs an update of one key; when it changes nothing, it
// tells an unknown key (ErrNotFound) from one already up to date.
// The audit records of ctx are appended with the update (store.WithAudit).
func (s *Store) updateAPIKey(ctx context.Context, verb, keyID, query string, args ...any) error {
	if !validText(keyID) {
		return fmt.Errorf("api key %q: %w", keyID, store.ErrNotFound)
	}
	return s.audited(ctx, verb+" api key", func(q querier) error {
		tag, err := q.Exec(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("%s api key %q: %w", verb, keyID, err)
		}
		if tag.RowsAffected() > 0 {
			return nil
		}
		var one int
		err = q.QueryRow(ctx, `SELECT 1 FROM api_keys WHERE key_id = $1`, keyID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("api key %q: %w", keyID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s api key %q: %w", verb, keyID, err)
		}
		return nil
	})
}
