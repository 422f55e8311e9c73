package action

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
)

// AgentID returns the agent ID of an Ed25519 public key: the lower-case hex
// of the first 16 bytes of its SHA-256. The agent names itself with it and
// the server derives it at enrollment; both call this one function, since
// the two must agree byte for byte.
func AgentID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}
