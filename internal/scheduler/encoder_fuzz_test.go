package scheduler

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
)

// FuzzCommandEncoder: the dispatch's hand-built command messages are
// byte for byte what action.Marshal writes for the wire type
// action.CommandMessage, and decode to the command that was meant, for
// any agent name, action name, parameters and start time.
func FuzzCommandEncoder(f *testing.F) {
	f.Add("host-1.example.net", "find .boto", `{"searches":{"s1":{"names":["<a&b>"]}}}`, int64(1764000000123456789), uint64(42))
	f.Add("bad utf8 \xff\xfe \u2028", "quo\"te\\", `{ "a" : [1, 2.50, "\u00e9"] }`, int64(0), uint64(1<<53-1))
	f.Add("", "", `{}`, int64(-62135596800000000), uint64(1))
	f.Fuzz(func(t *testing.T, agentName, actionName, params string, startNanos int64, cmdID uint64) {
		if cmdID == 0 || cmdID >= 1<<53 {
			return // the scheduler's command IDs are in [1, 2^53)
		}
		a := benchAction()
		a.Name = actionName
		a.Operations[0].Parameters = json.RawMessage(params)
		if _, err := a.Check(); err != nil {
			return // the API refuses such actions before any dispatch
		}
		enc, err := newCommandEncoder(a)
		if err != nil {
			t.Fatalf("newCommandEncoder refused a checked action: %v", err)
		}
		var start time.Time
		if startNanos != 0 {
			start = time.Unix(0, startNanos).UTC()
		}
		c := action.Command{ID: cmdID, Action: *a, AgentID: agentID(0), AgentName: agentName,
			Status: action.CmdSent, StartTime: start}
		want, err := action.Marshal(action.CommandMessage{V: action.ProtocolVersion, Command: c})
		if err != nil {
			return // nothing the reference can encode, nothing to compare
		}
		ref := c
		ref.Action = action.Action{ID: a.ID}
		msgs, err := enc.messages([]action.Command{ref}, a.ExpireAfter)
		if err != nil {
			t.Fatalf("messages: %v (action.Marshal encoded it)", err)
		}
		if !bytes.Equal(msgs[0].Data, want) {
			t.Fatalf("encoder and action.Marshal differ:\n got %s\nwant %s", msgs[0].Data, want)
		}
		m, err := action.DecodeCommand(msgs[0].Data)
		if err != nil {
			t.Fatalf("DecodeCommand: %v", err)
		}
		if m.Command.ID != c.ID || m.Command.AgentID != c.AgentID || m.Command.Action.ID != a.ID ||
			m.Command.Action.Name != a.Name || !m.Command.StartTime.Equal(c.StartTime) {
			t.Fatalf("decodes to %+v", m.Command)
		}
	})
}
