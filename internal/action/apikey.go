package action

import (
	"errors"
	"fmt"
	"time"
)

// APIKey describes an investigator's API key, as the API lists it: never
// the secret nor its hash. The key itself ("mig_<keyid>_<secret>") is shown
// once, when it is created. A key authenticates requests as its investigator
// with at most Permissions (intersected at each request with the
// investigator's current permissions); it can never sign an action.
type APIKey struct {
	// KeyID is the public, random part of the key: 16 lower-case hex
	// digits.
	KeyID string `json:"keyid"`
	// InvestigatorID is the investigator the key acts for.
	InvestigatorID int64 `json:"investigatorid"`
	// Name says what the key is for.
	Name string `json:"name"`
	// Permissions are the most the key may do.
	Permissions []string `json:"permissions"`
	// CreatedAt is when the key was made.
	CreatedAt time.Time `json:"createdat"`
	// ExpireAfter, when not zero, is when the key stops working.
	ExpireAfter time.Time `json:"expireafter,omitzero"`
	// RevokedAt, when not zero, is when the key was revoked.
	RevokedAt time.Time `json:"revokedat,omitzero"`
	// LastUsedAt is when the key last authenticated a request (updated at
	// most about once a minute); zero if never.
	LastUsedAt time.Time `json:"lastusedat,omitzero"`
}

// API key format: "mig_" + KeyID (16 lower-case hex digits) + "_" + secret
// (32 random bytes, 64 lower-case hex digits).
const (
	APIKeyPrefix    = "mig_"
	APIKeyIDLen     = 16
	APIKeySecretLen = 64
	// APIKeyLen is the length of a whole key.
	APIKeyLen = len(APIKeyPrefix) + APIKeyIDLen + 1 + APIKeySecretLen
)

// ErrAPIKeyFormat is wrapped by ParseAPIKey's errors.
var ErrAPIKeyFormat = errors.New("malformed API key")

// ParseAPIKey splits a key into its ID and secret. Its errors never quote
// the secret, nor anything of a key that does not parse but its length.
func ParseAPIKey(key string) (keyID, secret string, err error) {
	if len(key) != APIKeyLen {
		return "", "", fmt.Errorf("%w: %d characters long, want %d (mig_<16 hex digits>_<64 hex digits>)",
			ErrAPIKeyFormat, len(key), APIKeyLen)
	}
	if key[:len(APIKeyPrefix)] != APIKeyPrefix || key[len(APIKeyPrefix)+APIKeyIDLen] != '_' {
		return "", "", fmt.Errorf("%w: not of the form mig_<16 hex digits>_<64 hex digits>", ErrAPIKeyFormat)
	}
	keyID = key[len(APIKeyPrefix) : len(APIKeyPrefix)+APIKeyIDLen]
	secret = key[len(APIKeyPrefix)+APIKeyIDLen+1:]
	if !isLowerHex(keyID) {
		return "", "", fmt.Errorf("%w: key id is not 16 lower-case hex digits", ErrAPIKeyFormat)
	}
	if !isLowerHex(secret) {
		return "", "", fmt.Errorf("%w: key %s: secret is not 64 lower-case hex digits", ErrAPIKeyFormat, keyID)
	}
	return keyID, secret, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
