package action

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// ResultPrefix starts the bytes an agent signs over a result (see
// ResultEncoding). It keeps a result signature from being valid over
// anything else the agent's key signs (its enrollment proof starts with
// "mig-enroll-v1\n").
const ResultPrefix = "mig-result-v1\n"

// ErrForged is wrapped by every error of VerifyResult: the signature does
// not verify over the result's fields, or its key is not the key of the
// result's agent.
var ErrForged = errors.New("result signature does not verify")

// ResultSignature is an agent's signature over one result, made with the
// Ed25519 identity key that names it (AgentID(Key) is its agent ID). The
// server stores and returns it unchanged with the result, and clients
// verify it with VerifyResult: the server can neither alter the result of
// an agent whose key a client knows nor make one up.
type ResultSignature struct {
	// Key is the agent's Ed25519 public key.
	Key []byte `json:"key"`
	// Name is the agent's name when it signed.
	Name string `json:"name"`
	// ActionHash is the lower-case hex SHA-256 of the action's signed
	// Encoding as the agent checked it, or empty if the action did not
	// check (a result refusing it with CodeBadEncoding).
	ActionHash string `json:"actionhash,omitempty"`
	// Started and Finished are the times of the result message as the
	// agent signed them.
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Sig is the Ed25519 signature over ResultEncoding.
	Sig []byte `json:"sig"`
}

// ResultFields are the fields of a result that its signature covers with
// those of the ResultSignature itself.
type ResultFields struct {
	AgentID   string
	CommandID uint64
	ActionID  uint64
	Status    string
	Code      string
	Error     string
	Results   []Result
}

// Fields returns the signed fields of a result message.
func (m *ResultMessage) Fields() ResultFields {
	return ResultFields{AgentID: m.AgentID, CommandID: m.CommandID, ActionID: m.ActionID,
		Status: m.Status, Code: m.Code, Error: m.Error, Results: m.Results}
}

// ResultFields returns the signed fields of a command's result, as the
// server stored them.
func (c *Command) ResultFields() ResultFields {
	return ResultFields{AgentID: c.AgentID, CommandID: c.ID, ActionID: c.Action.ID,
		Status: c.Status, Code: c.Code, Error: c.Error, Results: c.Results}
}

// ActionHash returns the value of ResultSignature.ActionHash for a signed
// action encoding (Checked.Encoding).
func ActionHash(encoding []byte) string {
	sum := sha256.Sum256(encoding)
	return hex.EncodeToString(sum[:])
}

// ResultEncoding returns the bytes an agent signs for result f with the
// signature fields of s (all but Sig and Key, which AgentID binds).
//
// The format, version 1, is ResultPrefix followed by one JSON object with
// exactly these members, in this order:
//
//	actionhash  string, as ResultSignature.ActionHash
//	actionid    string, decimal
//	agentid     string
//	code        string
//	commandid   string, decimal
//	error       string
//	finished    string, RFC 3339 with nanoseconds, UTC; "" if zero
//	name        string
//	results     array of {elements, errors, foundanything, success, statistics}
//	started     string, like finished
//	status      string
//
// Strings are escaped as in Encoding (invalid UTF-8 becomes U+FFFD, as
// encoding/json writes it). In a result, errors is an array of strings
// ([] when there are none), elements and statistics are the module's JSON
// with whitespace removed and strings escaped the same way, object members
// kept in their order, numbers as their literal text, or null when absent.
// Reading and writing results with encoding/json any number of times, as
// the relay, the store and the API do, therefore does not change the
// encoding.
func ResultEncoding(f ResultFields, s *ResultSignature) ([]byte, error) {
	var b bytes.Buffer
	size := len(ResultPrefix) + 256 + len(f.Error) + len(s.Name)
	for _, r := range f.Results {
		size += len(r.Elements) + len(r.Statistics) + 64
		for _, e := range r.Errors {
			size += len(e) + 3
		}
	}
	b.Grow(size)
	b.WriteString(ResultPrefix)
	b.WriteString(`{"actionhash":`)
	writeString(&b, s.ActionHash)
	b.WriteString(`,"actionid":`)
	writeString(&b, strconv.FormatUint(f.ActionID, 10))
	b.WriteString(`,"agentid":`)
	writeString(&b, f.AgentID)
	b.WriteString(`,"code":`)
	writeString(&b, f.Code)
	b.WriteString(`,"commandid":`)
	writeString(&b, strconv.FormatUint(f.CommandID, 10))
	b.WriteString(`,"error":`)
	writeString(&b, f.Error)
	b.WriteString(`,"finished":`)
	writeString(&b, formatSignedTime(s.Finished))
	b.WriteString(`,"name":`)
	writeString(&b, s.Name)
	b.WriteString(`,"results":[`)
	for i, r := range f.Results {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"elements":`)
		if err := normalJSON(&b, r.Elements); err != nil {
			return nil, fmt.Errorf("result %d: elements: %w", i, err)
		}
		b.WriteString(`,"errors":[`)
		for k, e := range r.Errors {
			if k > 0 {
				b.WriteByte(',')
			}
			writeString(&b, e)
		}
		b.WriteString(`],"foundanything":`)
		b.WriteString(strconv.FormatBool(r.FoundAnything))
		b.WriteString(`,"statistics":`)
		if err := normalJSON(&b, r.Statistics); err != nil {
			return nil, fmt.Errorf("result %d: statistics: %w", i, err)
		}
		b.WriteString(`,"success":`)
		b.WriteString(strconv.FormatBool(r.Success))
		b.WriteByte('}')
	}
	b.WriteString(`],"started":`)
	writeString(&b, formatSignedTime(s.Started))
	b.WriteString(`,"status":`)
	writeString(&b, f.Status)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// formatSignedTime formats a signed time, "" for the zero time.
func formatSignedTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// normalJSON writes raw JSON in the form ResultEncoding describes: null if
// raw is empty, otherwise without whitespace, with canonical string escapes
// and members in their order. It refuses JSON that is not valid.
//
// It works on the bytes of a value json.Valid accepted: whitespace outside
// strings is dropped, numbers and literals are copied, and a string is
// copied as it is when writeString would write it so (no escape, valid
// UTF-8, no U+FFFD), otherwise decoded and written with writeString. This
// is what decoding every token and writing it again gives, at a fraction of
// the cost on megabytes of results.
func normalJSON(b *bytes.Buffer, raw json.RawMessage) error {
	raw = bytes.Trim(raw, " \t\r\n")
	if len(raw) == 0 {
		b.WriteString("null")
		return nil
	}
	if !json.Valid(raw) {
		return errors.New("bad JSON")
	}
	for i := 0; i < len(raw); {
		switch c := raw[i]; c {
		case ' ', '\t', '\r', '\n':
			i++
		case '"':
			j, escaped := i+1, false
			for ; raw[j] != '"'; j++ {
				if raw[j] == '\\' {
					escaped = true
					j++
				}
			}
			str := raw[i+1 : j]
			if !escaped && utf8.Valid(str) && !bytes.Contains(str, replacementChar) {
				b.Write(raw[i : j+1])
			} else {
				var s string
				if err := json.Unmarshal(raw[i:j+1], &s); err != nil {
					return fmt.Errorf("bad JSON string: %v", err)
				}
				writeString(b, s)
			}
			i = j + 1
		default:
			b.WriteByte(c)
			i++
		}
	}
	return nil
}

// replacementChar is U+FFFD in UTF-8, which writeString escapes.
var replacementChar = []byte("\uFFFD")

// SignResult signs result f for the agent whose identity key is key, with
// the signature fields of s (Key and Sig are set here), and returns the
// signature to send with the result.
func SignResult(key ed25519.PrivateKey, f ResultFields, s ResultSignature) (*ResultSignature, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign result of command %d: the key is %d bytes, not an Ed25519 private key", f.CommandID, len(key))
	}
	s.Key = bytes.Clone(key.Public().(ed25519.PublicKey))
	s.Sig = nil
	msg, err := ResultEncoding(f, &s)
	if err != nil {
		return nil, fmt.Errorf("sign result of command %d: %w", f.CommandID, err)
	}
	s.Sig = ed25519.Sign(key, msg)
	return &s, nil
}

// Check checks the shape of a signature: a key and a signature of the
// Ed25519 sizes, an action hash that is empty or 64 hex digits, a name of
// valid UTF-8 within MaxNameLen. It does not verify anything.
func (s *ResultSignature) Check() error {
	switch {
	case len(s.Key) != ed25519.PublicKeySize:
		return fmt.Errorf("result signature: key is %d bytes, want %d", len(s.Key), ed25519.PublicKeySize)
	case len(s.Sig) != ed25519.SignatureSize:
		return fmt.Errorf("result signature: signature is %d bytes, want %d", len(s.Sig), ed25519.SignatureSize)
	case len(s.Name) > MaxNameLen || !utf8.ValidString(s.Name):
		return fmt.Errorf("result signature: name is longer than %d bytes or not UTF-8", MaxNameLen)
	}
	if s.ActionHash != "" {
		h, err := hex.DecodeString(s.ActionHash)
		if err != nil || len(h) != sha256.Size || hex.EncodeToString(h) != s.ActionHash {
			return fmt.Errorf("result signature: action hash %.80q is not %d lower-case hex digits", s.ActionHash, 2*sha256.Size)
		}
	}
	return nil
}

// VerifyResult verifies that s is a valid signature over result f by the
// agent f names: s's key is the key AgentID derives f.AgentID from, and
// the signature verifies over ResultEncoding. Errors wrap ErrForged. It
// does not say whether the key is the one a client expects for that agent
// (pinning, package agentkeys), nor that the action hash is that of the
// action the client holds: callers compare ActionHash themselves.
func VerifyResult(f ResultFields, s *ResultSignature) error {
	if s == nil {
		return fmt.Errorf("%w: result of command %d is not signed", ErrForged, f.CommandID)
	}
	if err := s.Check(); err != nil {
		return fmt.Errorf("%w: command %d: %v", ErrForged, f.CommandID, err)
	}
	if id := AgentID(ed25519.PublicKey(s.Key)); id != f.AgentID {
		return fmt.Errorf("%w: result of command %d is signed by the key of agent %s, not of agent %s",
			ErrForged, f.CommandID, id, f.AgentID)
	}
	msg, err := ResultEncoding(f, s)
	if err != nil {
		return fmt.Errorf("%w: command %d: %v", ErrForged, f.CommandID, err)
	}
	if !ed25519.Verify(ed25519.PublicKey(s.Key), msg, s.Sig) {
		return fmt.Errorf("%w: the signature of agent %s over the result of command %d does not match the result",
			ErrForged, f.AgentID, f.CommandID)
	}
	return nil
}

// DecodeResultSignature decodes a ResultSignature as the store keeps it
// (its JSON) and checks its shape.
func DecodeResultSignature(data []byte) (*ResultSignature, error) {
	if len(data) > 64<<10 {
		return nil, fmt.Errorf("result signature: %d bytes, over the limit of %d", len(data), 64<<10)
	}
	var s ResultSignature
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("result signature: %w", err)
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	return &s, nil
}
