package action

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestAgentIDKnownVector(t *testing.T) {
	// The SHA-256 of 32 zero bytes starts 66687aadf862bd776c8fc18b8e9f8e20.
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	if got, want := AgentID(pub), "66687aadf862bd776c8fc18b8e9f8e20"; got != want {
		t.Errorf("AgentID(zeros) = %s, want %s", got, want)
	}
	seed := sha256.Sum256([]byte("mig agent id"))
	key := ed25519.NewKeyFromSeed(seed[:])
	id := AgentID(key.Public().(ed25519.PublicKey))
	if len(id) != 32 {
		t.Fatalf("AgentID is %d characters, want 32", len(id))
	}
	if _, err := hex.DecodeString(id); err != nil {
		t.Errorf("AgentID %q is not hex: %v", id, err)
	}
}
