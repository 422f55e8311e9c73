package amqprelay

import (
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/relay"
)

const fuzzID = "0123456789abcdef0123456789abcdef"

// FuzzParseServerDelivery: whatever an agent puts in a delivery's routing
// key and user-id, a message is attributed only to a well-formed agent ID
// that both name, with a kind agents may publish.
func FuzzParseServerDelivery(f *testing.F) {
	seeds := [][3]string{
		{ServerExchange, "result." + fuzzID, fuzzID},
		{ServerExchange, "heartbeat." + fuzzID, fuzzID},
		{ServerExchange, "result." + fuzzID, ""},
		{ServerExchange, "command." + fuzzID, fuzzID},
		{ServerExchange, "result.*", "*"},
		{ServerExchange, "result." + fuzzID + ".x", fuzzID + ".x"},
		{AgentExchange, "result." + fuzzID, fuzzID},
		{"", "", ""},
		{ServerExchange, "result", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, exchange, key, user string) {
		id, kind, err := parseServerDelivery(exchange, key, user)
		if err != nil {
			if id != "" || kind != "" {
				t.Errorf("parseServerDelivery(%q, %q, %q) = (%q, %q, %v), want empty results with an error", exchange, key, user, id, kind, err)
			}
			return
		}
		if exchange != ServerExchange || id != user || key != kind+"."+id {
			t.Errorf("parseServerDelivery(%q, %q, %q) = (%q, %q), not the exchange, user and key given", exchange, key, user, id, kind)
		}
		if relay.CheckAgentID(id) != nil || (kind != relay.KindResult && kind != relay.KindHeartbeat) {
			t.Errorf("parseServerDelivery(%q, %q, %q) accepted agent %q kind %q", exchange, key, user, id, kind)
		}
		if k, err := serverKey(id, kind); err != nil || k != key {
			t.Errorf("serverKey(%q, %q) = (%q, %v), want (%q, nil)", id, kind, k, err, key)
		}
	})
}

// FuzzParseInboxDelivery: an agent accepts only its own routing key from
// the agent exchange, with a kind the server sends.
func FuzzParseInboxDelivery(f *testing.F) {
	f.Add(AgentExchange, fuzzID, relay.KindCommand)
	f.Add(AgentExchange, fuzzID, relay.KindAck)
	f.Add(AgentExchange, fuzzID, relay.KindResult)
	f.Add("", AgentQueue(fuzzID), relay.KindCommand)
	f.Add(AgentExchange, strings.ToUpper(fuzzID), relay.KindCommand)
	f.Add(ServerExchange, fuzzID, "")
	f.Fuzz(func(t *testing.T, exchange, key, typ string) {
		kind, err := parseInboxDelivery(fuzzID, exchange, key, typ)
		if err != nil {
			return
		}
		if exchange != AgentExchange || key != fuzzID || kind != typ || checkInboxKind(kind) != nil {
			t.Errorf("parseInboxDelivery(%q, %q, %q) = %q, want an error", exchange, key, typ, kind)
		}
	})
}
