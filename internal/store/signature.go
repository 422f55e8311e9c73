package store

import (
	"encoding/json"
	"fmt"

	"github.com/migplatform/mig/internal/action"
)

// EncodeResultSignature returns the text a store keeps for a result's
// signature: its JSON, which DecodeResultSignature reads back to the same
// value, or ok false when the result has none (stored as NULL). The
// signature is kept exactly as the agent sent it: clients verify it against
// the stored result (action.VerifyResult).
func EncodeResultSignature(s *action.ResultSignature) (text string, ok bool, err error) {
	if s == nil {
		return "", false, nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", false, fmt.Errorf("result signature: %w", err)
	}
	return string(b), true, nil
}

// DecodeResultSignature reads a signature EncodeResultSignature wrote.
func DecodeResultSignature(text []byte) (*action.ResultSignature, error) {
	return action.DecodeResultSignature(text)
}
