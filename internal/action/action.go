// Package action holds MIG's wire types: the Action an investigator signs, the
// Command that carries one action to one agent, the Result of each operation,
// the Agent record, and the messages that cross the relay. It also defines the
// deterministic encoding that investigators' signatures cover (see encoding.go).
//
// This package imports only the standard library; every other part of MIG
// depends on it, so it is the protocol.
package action

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/migplatform/mig/internal/strictjson"
)

// ProtocolVersion is the version of the messages exchanged between the server
// and agents over the relay. Bump it whenever a message changes shape.
//
//	1: first version: command, result, ack, heartbeat messages; signed
//	   encoding "mig-action-v1". Later extended, compatibly (an added
//	   optional field, which older readers ignore): result messages carry
//	   the agent's signature, ResultSignature ("mig-result-v1").
const ProtocolVersion = 1

// SyntaxVersion is the version of the action file format. MIG's action files
// use syntax version 2; files without a syntaxversion are read as version 2.
const SyntaxVersion = 2

// Limits on what an action may carry. They bound memory on every component and
// are checked by Validate, so a bad action is refused where it is first seen.
const (
	MaxNameLen        = 1024
	MaxTargetLen      = 16 << 10
	MaxOperations     = 64
	MaxParametersSize = 1 << 20 // per operation, JSON bytes
	MaxSignatures     = 16
	MaxSignatureLen   = 16 << 10
	MaxModuleNameLen  = 64
)

// Action statuses, as the server records them.
const (
	StatusPending   = "pending"   // stored, not dispatched yet
	StatusInFlight  = "inflight"  // commands sent, some not finished
	StatusCompleted = "completed" // every command finished
	StatusExpired   = "expired"   // expireafter passed before every command finished
)

// Action is MIG's investigation request, syntax version 2. An investigator
// writes it (or the mig command line builds it), signs its Encoding, and
// launches it. Fields after PGPSignatures are set by the platform and are not
// signed.
type Action struct {
	// ID identifies the action. It is chosen by the investigator's client
	// before signing and is covered by the signatures, so an agent can refuse
	// to run the same signed action twice.
	ID            uint64      `json:"id,omitempty"`
	Name          string      `json:"name"`
	Target        string      `json:"target"`
	Description   Description `json:"description,omitempty"`
	Threat        Threat      `json:"threat,omitempty"`
	ValidFrom     time.Time   `json:"validfrom"`
	ExpireAfter   time.Time   `json:"expireafter"`
	Operations    []Operation `json:"operations"`
	PGPSignatures []string    `json:"pgpsignatures,omitempty"`
	SyntaxVersion int         `json:"syntaxversion,omitempty"`

	// Platform fields: set by the server, never signed.
	Status         string         `json:"status,omitempty"`
	StartTime      time.Time      `json:"starttime,omitzero"`
	FinishTime     time.Time      `json:"finishtime,omitzero"`
	LastUpdateTime time.Time      `json:"lastupdatetime,omitzero"`
	Counters       Counters       `json:"counters,omitzero"`
	Investigators  []Investigator `json:"investigators,omitempty"`
}

// Description is free-form information about who wrote an action and why.
type Description struct {
	Author   string `json:"author,omitempty"`
	Email    string `json:"email,omitempty"`
	URL      string `json:"url,omitempty"`
	Revision int    `json:"revision,omitempty"`
}

// Threat classifies what an action looks for.
type Threat struct {
	Ref    string `json:"ref,omitempty"`
	Level  string `json:"level,omitempty"`
	Family string `json:"family,omitempty"`
	Type   string `json:"type,omitempty"`
}

// Operation is one module invocation. Parameters are the module's JSON
// parameters, kept as raw bytes so that every component sees exactly what was
// signed.
type Operation struct {
	Module     string          `json:"module"`
	Parameters json.RawMessage `json:"parameters"`
	// IsCompressed and WantCompressed are read so that MIG's action files
	// load; compressed parameters are refused by Validate (they would hide
	// what is signed from review), and neither field is signed.
	IsCompressed   bool `json:"is_compressed,omitempty"`
	WantCompressed bool `json:"want_compressed,omitempty"`
}

// Counters count an action's commands by status. Done is the number of
// commands in a terminal status; Sent counts every command created. The
// terminal counters always add up to Done.
type Counters struct {
	Sent      int `json:"sent"`
	Done      int `json:"done"`
	InFlight  int `json:"inflight"`
	Success   int `json:"success"`
	Failed    int `json:"failed"`
	TimeOut   int `json:"timeout"`
	Expired   int `json:"expired"`
	Cancelled int `json:"cancelled"`
}

// Investigator is a person allowed to sign actions and use the API, known by
// the fingerprint of their OpenPGP key.
type Investigator struct {
	ID          int64     `json:"id,omitempty"`
	Name        string    `json:"name"`
	Fingerprint string    `json:"pgpfingerprint"`
	PublicKey   string    `json:"publickey,omitempty"` // armored
	Status      string    `json:"status,omitempty"`    // "active" or "disabled"
	Permissions []string  `json:"permissions,omitempty"`
	CreatedAt   time.Time `json:"createdat,omitzero"`
}

// Investigator statuses.
const (
	InvestigatorActive   = "active"
	InvestigatorDisabled = "disabled"
)

// ErrInvalid is wrapped by every validation error in this package.
var ErrInvalid = errors.New("invalid action")

var moduleNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// ParseAction decodes an action file. It accepts MIG's syntax version 2
// files, with or without signatures, and rejects unknown fields and trailing
// data. It does not validate; call Validate.
func ParseAction(data []byte) (*Action, error) {
	var a Action
	if err := strictjson.Decode(data, &a); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if a.SyntaxVersion == 0 {
		a.SyntaxVersion = SyntaxVersion
	}
	return &a, nil
}

// Validate checks that an action is well formed: a name, a target, a validity
// window, known-shaped operations with JSON object parameters, and sizes within
// the package limits. Module-specific parameter checks belong to the module.
func (a *Action) Validate() error {
	_, err := a.validate()
	return err
}

// validate is Validate; it returns the canonical form of each operation's
// parameters, which it computes to check them.
func (a *Action) validate() ([][]byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if a.SyntaxVersion != 0 && a.SyntaxVersion != SyntaxVersion {
		return nil, bad("syntaxversion %d is not supported (want %d)", a.SyntaxVersion, SyntaxVersion)
	}
	if strings.TrimSpace(a.Name) == "" {
		return nil, bad("name is empty")
	}
	if len(a.Name) > MaxNameLen || !utf8.ValidString(a.Name) {
		return nil, bad("name is longer than %d bytes or not UTF-8", MaxNameLen)
	}
	if strings.TrimSpace(a.Target) == "" {
		return nil, bad("target is empty")
	}
	if len(a.Target) > MaxTargetLen || !utf8.ValidString(a.Target) {
		return nil, bad("target is longer than %d bytes or not UTF-8", MaxTargetLen)
	}
	if a.ValidFrom.IsZero() {
		return nil, bad("validfrom is not set")
	}
	if a.ExpireAfter.IsZero() {
		return nil, bad("expireafter is not set")
	}
	if !a.ExpireAfter.After(a.ValidFrom) {
		return nil, bad("expireafter %s is not after validfrom %s",
			a.ExpireAfter.Format(time.RFC3339), a.ValidFrom.Format(time.RFC3339))
	}
	if len(a.Operations) == 0 {
		return nil, bad("no operations")
	}
	if len(a.Operations) > MaxOperations {
		return nil, bad("%d operations, more than the limit of %d", len(a.Operations), MaxOperations)
	}
	canon := make([][]byte, len(a.Operations))
	for i, op := range a.Operations {
		if op.Module == "" {
			return nil, bad("operation %d: module is empty", i)
		}
		if len(op.Module) > MaxModuleNameLen || !moduleNameRE.MatchString(op.Module) {
			return nil, bad("operation %d: module name %q is not a valid module name", i, op.Module)
		}
		if op.IsCompressed || op.WantCompressed {
			return nil, bad("operation %d (%s): compressed parameters are not supported; give them as plain JSON", i, op.Module)
		}
		if len(op.Parameters) > MaxParametersSize {
			return nil, bad("operation %d (%s): parameters are %d bytes, more than the limit of %d",
				i, op.Module, len(op.Parameters), MaxParametersSize)
		}
		p := strings.TrimSpace(string(op.Parameters))
		if p == "" || p[0] != '{' {
			return nil, bad("operation %d (%s): parameters must be a JSON object", i, op.Module)
		}
		c, err := Canonical(op.Parameters)
		if err != nil {
			return nil, bad("operation %d (%s): parameters: %v", i, op.Module, err)
		}
		canon[i] = c
	}
	if len(a.PGPSignatures) > MaxSignatures {
		return nil, bad("%d signatures, more than the limit of %d", len(a.PGPSignatures), MaxSignatures)
	}
	for i, s := range a.PGPSignatures {
		if len(s) > MaxSignatureLen {
			return nil, bad("signature %d is %d bytes, more than the limit of %d", i, len(s), MaxSignatureLen)
		}
	}
	return canon, nil
}

// IsValidAt reports whether t is inside the action's validity window.
func (a *Action) IsValidAt(t time.Time) bool {
	return !t.Before(a.ValidFrom) && !t.After(a.ExpireAfter)
}

// Modules returns the distinct module names of the action's operations, in
// the order they first appear.
func (a *Action) Modules() []string {
	var out []string
	seen := map[string]bool{}
	for _, op := range a.Operations {
		if !seen[op.Module] {
			seen[op.Module] = true
			out = append(out, op.Module)
		}
	}
	return out
}
