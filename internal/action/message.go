package action

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxMessageSize is the largest relay message any component accepts or sends.
// A result larger than this is truncated by the agent with an error saying so.
const MaxMessageSize = 8 << 20

// ErrMessage is wrapped by every error decoding a relay message.
var ErrMessage = errors.New("bad relay message")

// CommandMessage carries one command from the server to one agent.
type CommandMessage struct {
	V       int     `json:"v"`
	Command Command `json:"command"`
}

// ResultMessage carries a command's outcome from an agent to the server. The
// server acknowledges it with an AckMessage only once it is stored; until then
// the agent keeps it on disk and sends it again.
type ResultMessage struct {
	V         int       `json:"v"`
	AgentID   string    `json:"agentid"`
	CommandID uint64    `json:"commandid"`
	ActionID  uint64    `json:"actionid"`
	Status    string    `json:"status"`
	Code      string    `json:"code,omitempty"`
	Error     string    `json:"error,omitempty"`
	Results   []Result  `json:"results,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
	// Signature is the agent's signature over the fields above (see
	// ResultEncoding); results of agents older than result signing have
	// none.
	Signature *ResultSignature `json:"signature,omitempty"`
}

// HeartbeatMessage is sent by an agent periodically and on every (re)connect,
// when Hello is true; on a hello the server sends the agent its commands that
// are still pending.
type HeartbeatMessage struct {
	V     int   `json:"v"`
	Hello bool  `json:"hello,omitempty"`
	Agent Agent `json:"agent"`
}

// AckMessage tells an agent which of its results are stored.
type AckMessage struct {
	V          int      `json:"v"`
	CommandIDs []uint64 `json:"commandids"`
}

// DecodeCommand decodes and checks a CommandMessage.
func DecodeCommand(data []byte) (*CommandMessage, error) {
	var m CommandMessage
	if err := decodeMessage(data, &m, &m.V); err != nil {
		return nil, err
	}
	if m.Command.ID == 0 {
		return nil, fmt.Errorf("%w: command has no id", ErrMessage)
	}
	if m.Command.AgentID == "" {
		return nil, fmt.Errorf("%w: command %d has no agent id", ErrMessage, m.Command.ID)
	}
	return &m, nil
}

// DecodeResult decodes and checks a ResultMessage.
func DecodeResult(data []byte) (*ResultMessage, error) {
	var m ResultMessage
	if err := decodeMessage(data, &m, &m.V); err != nil {
		return nil, err
	}
	if m.CommandID == 0 {
		return nil, fmt.Errorf("%w: result has no command id", ErrMessage)
	}
	if m.AgentID == "" {
		return nil, fmt.Errorf("%w: result for command %d has no agent id", ErrMessage, m.CommandID)
	}
	if !IsTerminal(m.Status) {
		return nil, fmt.Errorf("%w: result for command %d has status %q, not a terminal status",
			ErrMessage, m.CommandID, m.Status)
	}
	if len(m.Results) > MaxOperations {
		return nil, fmt.Errorf("%w: result for command %d has %d operation results, more than %d",
			ErrMessage, m.CommandID, len(m.Results), MaxOperations)
	}
	if m.Signature != nil {
		if err := m.Signature.Check(); err != nil {
			return nil, fmt.Errorf("%w: result for command %d: %v", ErrMessage, m.CommandID, err)
		}
	}
	return &m, nil
}

// DecodeHeartbeat decodes and checks a HeartbeatMessage.
func DecodeHeartbeat(data []byte) (*HeartbeatMessage, error) {
	var m HeartbeatMessage
	if err := decodeMessage(data, &m, &m.V); err != nil {
		return nil, err
	}
	if m.Agent.ID == "" {
		return nil, fmt.Errorf("%w: heartbeat has no agent id", ErrMessage)
	}
	if len(m.Agent.Name) > MaxNameLen || len(m.Agent.Tags) > 256 || len(m.Agent.Environment.Addresses) > 1024 {
		return nil, fmt.Errorf("%w: heartbeat from %s is over the attribute limits", ErrMessage, m.Agent.ID)
	}
	return &m, nil
}

// DecodeAck decodes and checks an AckMessage.
func DecodeAck(data []byte) (*AckMessage, error) {
	var m AckMessage
	if err := decodeMessage(data, &m, &m.V); err != nil {
		return nil, err
	}
	return &m, nil
}

// Marshal encodes a relay message, refusing one over MaxMessageSize.
func Marshal(m any) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: message is %d bytes, over the limit of %d", ErrMessage, len(b), MaxMessageSize)
	}
	return b, nil
}

func decodeMessage(data []byte, v any, version *int) error {
	if len(data) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, over the limit of %d", ErrMessage, len(data), MaxMessageSize)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMessage, err)
	}
	if *version != ProtocolVersion {
		return fmt.Errorf("%w: protocol version %d, want %d", ErrMessage, *version, ProtocolVersion)
	}
	return nil
}
