package sqlitestore

import (
	"context"
	"fmt"
	"time"

	"github.com/migplatform/mig/internal/store"
)

// UseTokenNonce records a token nonce; ErrReplayed if it is recorded. The
// primary key (key_id, nonce) makes the insert atomic, across stores over
// the same file too.
func (s *Store) UseTokenNonce(ctx context.Context, n store.TokenNonce) error {
	if err := store.CheckTokenNonce(n); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO token_nonces (key_id, nonce, expires) VALUES (?, ?, ?)
		ON CONFLICT (key_id, nonce) DO NOTHING`, n.KeyID, n.Nonce, formatTime(n.Expires))
	if err != nil {
		return fmt.Errorf("record token nonce of key %s: %w", n.KeyID, err)
	}
	added, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("record token nonce of key %s: %w", n.KeyID, err)
	}
	if added == 0 {
		return fmt.Errorf("token nonce %s of key %s: %w", n.Nonce, n.KeyID, store.ErrReplayed)
	}
	return nil
}

// PurgeTokenNonces deletes the nonces expired at or before now.
func (s *Store) PurgeTokenNonces(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM token_nonces WHERE expires <= ?`,
		formatTime(storable(now, time.Now())))
	if err != nil {
		return 0, fmt.Errorf("purge token nonces: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge token nonces: %w", err)
	}
	return n, nil
}
