package relay

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
)

// AgentIDLen is the length of an agent ID: the lower-case hex of 16 bytes.
const AgentIDLen = 32

// ErrAgentID is wrapped by CheckAgentID's errors. Relays refuse an agent ID
// that is not well formed before they build a subject, queue or routing key
// from it, so that no wildcard, separator or space can reach the broker.
var ErrAgentID = errors.New("invalid agent id")

// CheckAgentID returns nil if id is a well-formed agent ID (AgentIDLen
// lower-case hexadecimal digits), and an error wrapping ErrAgentID otherwise.
func CheckAgentID(id string) error {
	if len(id) != AgentIDLen {
		return fmt.Errorf("%w: %q is %d bytes long, want %d", ErrAgentID, id, len(id), AgentIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%w: %q has %q at offset %d, want lower-case hex", ErrAgentID, id, c, i)
		}
	}
	return nil
}

// passwordBytes is how much randomness a relay password carries.
const passwordBytes = 32

// NewPassword returns a new relay password: 32 bytes from crypto/rand,
// base64url-encoded without padding.
func NewPassword() (string, error) {
	b := make([]byte, passwordBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random password bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashPassword returns the hash of a relay password that the server stores
// instead of the password itself: its SHA-256.
//
// A fast hash is the right choice here, unlike for passwords people choose:
// relay passwords come from NewPassword and carry 256 random bits, so there is
// no dictionary to try and a slow key-derivation function would only make
// every agent connection (thousands at once after a broker restart) cost CPU
// without adding any protection.
func HashPassword(p string) []byte {
	sum := sha256.Sum256([]byte(p))
	return sum[:]
}

// CheckPassword reports whether p is the password whose HashPassword is hash.
// The comparison takes the same time wherever the hashes differ.
func CheckPassword(hash []byte, p string) bool {
	want := HashPassword(p)
	return subtle.ConstantTimeCompare(hash, want) == 1
}
