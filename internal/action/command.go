package action

import (
	"encoding/json"
	"time"
)

// Command statuses. A command starts as StatusSent and ends in exactly one of
// the terminal statuses.
const (
	CmdSent      = "sent"
	CmdSuccess   = "success"
	CmdFailed    = "failed"
	CmdTimeout   = "timeout"
	CmdExpired   = "expired"
	CmdCancelled = "cancelled"
)

// IsTerminal reports whether a command status is final.
func IsTerminal(status string) bool {
	switch status {
	case CmdSuccess, CmdFailed, CmdTimeout, CmdExpired, CmdCancelled:
		return true
	}
	return false
}

// Rejection and failure codes. They cross the relay in results and are
// stable: match on them, never on the text that comes with them.
const (
	CodeBadEncoding   = "bad_encoding"   // the command or action does not parse
	CodeBadSignature  = "bad_signature"  // a signature is missing, malformed or does not verify
	CodeUntrusted     = "untrusted"      // a signer is not in the agent's keyring
	CodeACLDenied     = "acl_denied"     // signers' weights are under the module's minimum
	CodeNotYetValid   = "not_yet_valid"  // now is before validfrom
	CodeExpired       = "expired"        // now is after expireafter
	CodeReplay        = "replay"         // the agent already ran this action
	CodeNotTargeted   = "not_targeted"   // the agent does not match the signed target
	CodeUnknownModule = "unknown_module" // the agent has no such module
	CodeBadParameters = "bad_parameters" // the module refused its parameters
	CodeModuleFailed  = "module_failed"  // the module process crashed or returned garbage
	CodeModuleTimeout = "module_timeout" // the module did not finish in time
	CodeTooLarge      = "too_large"      // a message was over the size limit
	// CodeValidityTooLong: expireafter - validfrom is over the agent's
	// maxvalidity.
	CodeValidityTooLong = "validity_too_long"
)

// Command is one action for one agent.
type Command struct {
	ID         uint64    `json:"id"`
	Action     Action    `json:"action"`
	AgentID    string    `json:"agentid"`
	AgentName  string    `json:"agentname,omitempty"`
	Status     string    `json:"status"`
	Results    []Result  `json:"results,omitempty"`
	Code       string    `json:"code,omitempty"`  // why it failed, one of the Code constants
	Error      string    `json:"error,omitempty"` // human-readable detail for Code
	StartTime  time.Time `json:"starttime,omitzero"`
	FinishTime time.Time `json:"finishtime,omitzero"`
	// Signature is the agent's signature over its result, stored and
	// returned as the agent sent it (see VerifyResult); nil if the agent
	// sent none or the server ended the command.
	Signature *ResultSignature `json:"signature,omitempty"`
}

// Result is what one operation returned. Elements and Statistics are
// module-specific JSON; they hold metadata, never file or memory contents.
type Result struct {
	FoundAnything bool            `json:"foundanything"`
	Success       bool            `json:"success"`
	Elements      json.RawMessage `json:"elements,omitempty"`
	Statistics    json.RawMessage `json:"statistics,omitempty"`
	Errors        []string        `json:"errors,omitempty"`
}
