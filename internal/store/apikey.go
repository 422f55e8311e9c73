package store

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"
)

// APIKeyIDLen is the length of an API key ID: 8 random bytes in hex.
const APIKeyIDLen = 16

// ValidAPIKeyID reports whether id is 16 lower-case hex digits.
func ValidAPIKeyID(id string) bool {
	if len(id) != APIKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// PrepareAPIKey checks a new API key the same way in every store (a valid
// key ID, an investigator, a SHA-256 hash) and sets its creation time to now
// when zero. It returns the permissions as the JSON array stores keep.
func PrepareAPIKey(k APIKey, now time.Time) (APIKey, []byte, error) {
	if !ValidAPIKeyID(k.KeyID) {
		return k, nil, fmt.Errorf("create api key: key id %q is not %d lower-case hex digits", k.KeyID, APIKeyIDLen)
	}
	if k.InvestigatorID <= 0 {
		return k, nil, fmt.Errorf("create api key %s: investigator id %d is not positive", k.KeyID, k.InvestigatorID)
	}
	if len(k.SecretHash) != sha256.Size {
		return k, nil, fmt.Errorf("create api key %s: secret hash is %d bytes, want %d", k.KeyID, len(k.SecretHash), sha256.Size)
	}
	perms := k.Permissions
	if perms == nil {
		perms = []string{}
	}
	pj, err := json.Marshal(perms)
	if err != nil {
		return k, nil, fmt.Errorf("create api key %s: permissions: %w", k.KeyID, err)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = now
	}
	return k, pj, nil
}

// ParseAPIKeyPermissions reads stored permissions; an empty list is nil.
func ParseAPIKeyPermissions(keyID string, data string) ([]string, error) {
	var perms []string
	if err := json.Unmarshal([]byte(data), &perms); err != nil {
		return nil, fmt.Errorf("api key %s: permissions: %w", keyID, err)
	}
	if len(perms) == 0 {
		perms = nil
	}
	return perms, nil
}
