package store

import (
	"fmt"
	"time"
)

// Bounds of a token nonce's fields, checked by every store.
const (
	MaxNonceKeyIDLen = 128
	MaxNonceLen      = 256
)

// TokenNonce is the nonce of an investigator's API token, remembered until
// the token expires so that the token is accepted once (package sign,
// docs/API.md).
type TokenNonce struct {
	// KeyID is the signer's key fingerprint.
	KeyID string
	// Nonce is the token's nonce.
	Nonce string
	// Expires is when the token can no longer be accepted, and its nonce
	// may be forgotten.
	Expires time.Time
}

// CheckTokenNonce checks a nonce the same way in every store: a key ID and
// a nonce of printable ASCII within the bounds, and an expiry in the years
// 1 to 9999.
func CheckTokenNonce(n TokenNonce) error {
	if err := checkNonceField("key id", n.KeyID, MaxNonceKeyIDLen); err != nil {
		return err
	}
	if err := checkNonceField("nonce", n.Nonce, MaxNonceLen); err != nil {
		return err
	}
	if y := n.Expires.UTC().Year(); n.Expires.IsZero() || y < 1 || y > 9999 {
		return fmt.Errorf("token nonce %s of key %s: expiry %s is not in the years 1 to 9999", n.Nonce, n.KeyID, n.Expires)
	}
	return nil
}

func checkNonceField(what, s string, limit int) error {
	if s == "" || len(s) > limit {
		return fmt.Errorf("token nonce: %s is %d bytes, want 1 to %d", what, len(s), limit)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("token nonce: %s %q is not printable ASCII", what, s)
		}
	}
	return nil
}
