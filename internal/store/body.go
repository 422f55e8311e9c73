package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/migplatform/mig/internal/action"
)

// signedFields are the members of an action that investigators sign, plus
// their signatures: what a store keeps of an action besides the operations, which EncodeActionBody writes by hand to keep their parameters
// byte-exact.
type signedFields struct {
	ID            uint64             `json:"id"`
	Name          string             `json:"name"`
	Target        string             `json:"target"`
	Description   action.Description `json:"description"`
	Threat        action.Threat      `json:"threat"`
	ValidFrom     time.Time          `json:"validfrom"`
	ExpireAfter   time.Time          `json:"expireafter"`
	PGPSignatures []string           `json:"pgpsignatures,omitempty"`
	SyntaxVersion int                `json:"syntaxversion,omitempty"`
}

// storedBody is how a body is read back. Decoding into json.RawMessage keeps
// each operation's parameters exactly as they were written.
type storedBody struct {
	signedFields
	Operations []action.Operation `json:"operations"`
}

// EncodeActionBody returns the JSON every store keeps for an action: its signed fields, its
// signatures, and its operations with the parameters copied verbatim (the
// encoding/json package would compact them). Parameters must be valid JSON
// and every text valid UTF-8. Whitespace around a parameters value is not part of the value
// and is not kept (no JSON decoder of an action file keeps it either); the
// value itself comes back byte for byte.
func EncodeActionBody(a *action.Action) ([]byte, error) {
	texts := []string{a.Name, a.Target, a.Description.Author, a.Description.Email, a.Description.URL,
		a.Threat.Ref, a.Threat.Level, a.Threat.Family, a.Threat.Type}
	texts = append(texts, a.PGPSignatures...)
	for _, op := range a.Operations {
		texts = append(texts, op.Module)
	}
	for _, s := range texts {
		if !utf8.ValidString(s) {
			// JSON would replace the bad bytes: what is stored would not be
			// what was signed.
			return nil, fmt.Errorf("%w: a field is not valid UTF-8: %q", action.ErrInvalid, s)
		}
	}
	for i, op := range a.Operations {
		if !json.Valid(op.Parameters) || !utf8.Valid(op.Parameters) {
			return nil, fmt.Errorf("%w: operation %d (%s): parameters are not valid JSON in UTF-8", action.ErrInvalid, i, op.Module)
		}
	}
	head, err := json.Marshal(signedFields{
		ID: a.ID, Name: a.Name, Target: a.Target, Description: a.Description, Threat: a.Threat,
		ValidFrom: a.ValidFrom, ExpireAfter: a.ExpireAfter, PGPSignatures: a.PGPSignatures,
		SyntaxVersion: a.SyntaxVersion,
	})
	if err != nil {
		return nil, fmt.Errorf("encode action %d: %w", a.ID, err)
	}
	var b bytes.Buffer
	b.Write(head[:len(head)-1]) // without the closing brace
	b.WriteString(`,"operations":[`)
	for i, op := range a.Operations {
		if i > 0 {
			b.WriteByte(',')
		}
		mod, err := json.Marshal(op.Module)
		if err != nil {
			return nil, fmt.Errorf("encode action %d: operation %d: %w", a.ID, i, err)
		}
		b.WriteString(`{"module":`)
		b.Write(mod)
		b.WriteString(`,"parameters":`)
		b.Write(bytes.Trim(op.Parameters, jsonSpace))
		b.WriteByte('}')
	}
	b.WriteString(`]}`)
	return b.Bytes(), nil
}

// jsonSpace are the whitespace characters JSON allows between tokens.
const jsonSpace = " \t\r\n"

// DecodeActionBody fills the signed fields, signatures and operations of a from a
// stored body.
func DecodeActionBody(body []byte, a *action.Action) error {
	var sb storedBody
	if err := json.Unmarshal(body, &sb); err != nil {
		return fmt.Errorf("stored action body: %w", err)
	}
	f := sb.signedFields
	a.ID, a.Name, a.Target, a.Description, a.Threat = f.ID, f.Name, f.Target, f.Description, f.Threat
	a.ValidFrom, a.ExpireAfter, a.PGPSignatures, a.SyntaxVersion = f.ValidFrom, f.ExpireAfter, f.PGPSignatures, f.SyntaxVersion
	a.Operations = sb.Operations
	return nil
}
