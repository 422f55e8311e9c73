package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/migplatform/mig/internal/store"
)

// UseTokenNonce records a token nonce; ErrReplayed if it is recorded. The
// primary key (key_id, nonce) makes the insert atomic: of concurrent
// inserts, one adds the row and the others wait for it and add nothing.
func (s *Store) UseTokenNonce(ctx context.Context, n store.TokenNonce) error {
	if err := store.CheckTokenNonce(n); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO token_nonces (key_id, nonce, expires) VALUES ($1, $2, $3)
		ON CONFLICT (key_id, nonce) DO NOTHING`, n.KeyID, n.Nonce, n.Expires.UTC())
	if err != nil {
		return fmt.Errorf("record token nonce of key %s: %w", n.KeyID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("token nonce %s of key %s: %w", n.Nonce, n.KeyID, store.ErrReplayed)
	}
	return nil
}

// PurgeTokenNonces deletes the nonces expired at or before now.
func (s *Store) PurgeTokenNonces(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM token_nonces WHERE expires <= $1`, storable(now, time.Now()).UTC())
	if err != nil {
		return 0, fmt.Errorf("purge token nonces: %w", err)
	}
	return tag.RowsAffected(), nil
}
