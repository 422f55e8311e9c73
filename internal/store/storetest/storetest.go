// Package storetest is the conformance suite every store.Store
// implementation passes: its package test calls Run with a function that
// opens a store over an empty database.
//
// The suite checks behaviour, not SQL: agents and their liveness, target
// queries agreeing with the agent-side evaluation (target.Eval), credentials,
// investigators, API keys, token nonces used once (under concurrent use
// too), signed actions kept byte for byte, command fan-out, result
// ingestion with its acknowledgement rules, exact counters, expiry,
// redelivery of pending commands, search with paging, concurrent writers in
// one store and in two stores over one database (two servers), migrations
// from an empty database by stores opened at once, reopening a database, and
// the hash-chained audit log (one chain under concurrent appends), and
// mig-loader's manifests and their files.
package storetest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

// Opener opens a store for a test. Each new t gets a store over a new, empty
// database. Calling it again with the same t opens another store over the
// same database, whether the earlier ones are closed (the Reopen test) or
// still open (the TwoInstances test: two servers sharing a database). It may
// be called from several goroutines at once (MigrateFromEmpty: servers
// starting together on an empty database); when it fails it calls t.Fatal,
// and the suite then reports the test as failed. Run closes every store it
// opens; the opener must not.
type Opener = func(t *testing.T) store.Store

// Run runs the conformance suite against the stores open returns.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"AgentUpsert", testAgentUpsert},
		{"AgentLiveness", testAgentLiveness},
		{"AgentTargets", testAgentTargets},
		{"AgentRefs", testAgentRefs},
		{"AgentCredentials", testAgentCredentials},
		{"Investigators", testInvestigators},
		{"APIKeys", testAPIKeys},
		{"TokenNonces", testTokenNonces},
		{"TokenNoncesConcurrent", testTokenNoncesConcurrent},
		{"ActionCreate", testActionCreate},
		{"ActionParametersByteExact", testActionParametersByteExact},
		{"ActionList", testActionList},
		{"CommandFanOut", testCommandFanOut},
		{"CommandCreateErrors", testCommandCreateErrors},
		{"ResultsAcks", testResultsAcks},
		{"ResultsCounters", testResultsCounters},
		{"ResultSignatures", testResultSignatures},
		{"Expiry", testExpiry},
		{"PendingCommands", testPendingCommands},
		{"CommandsPaging", testCommandsPaging},
		{"SearchPaging", testSearchPaging},
		{"TimesOutOfRange", testTimesOutOfRange},
		{"ConcurrentWriters", testConcurrentWriters},
		{"TwoInstances", testTwoInstances},
		{"DispatchLease", testDispatchLease},
		{"DispatchLeaseTwoInstances", testDispatchLeaseTwoInstances},
		{"MigrateFromEmpty", testMigrateFromEmpty},
		{"Reopen", testReopen},
		{"Audit", testAudit},
		{"AuditConcurrent", testAuditConcurrent},
		{"Manifests", testManifests},
		{"ManifestFiles", testManifestFiles},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

// openStore opens a store and closes it when the test ends.
func openStore(t *testing.T, open Opener) store.Store {
	t.Helper()
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// baseTime is a fixed instant with a fraction of a second; tests that need
// the wall clock use time.Now.
var baseTime = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// testParameters are file module parameters as an investigator might write
// them: indented, keys out of order, escapes and non-ASCII text. Stores must
// give them back byte for byte.
const testParameters = `{
  "searches": {
    "s1": {"paths": ["/etc"], "names": ["^passwd$"], "options": {"maxdepth": 1.50e1}},
    "s0": {"contents": ["<script>&amp;\u00e9 \"q\""], "paths": ["/var/www"]}
  },
  "note": "café ✓"
}`

// newAction returns a signed-looking action valid from validFrom to expire.
func newAction(id uint64, validFrom, expire time.Time) *action.Action {
	return &action.Action{
		ID:     id,
		Name:   "find passwd",
		Target: "environment->>'os'='linux'",
		Description: action.Description{
			Author: "Alice Investigator", Email: "alice@example.com", URL: "https://example.com/ir/42", Revision: 2,
		},
		Threat:      action.Threat{Ref: "IR-42", Level: "info", Family: "compliance", Type: "system"},
		ValidFrom:   validFrom,
		ExpireAfter: expire,
		Operations: []action.Operation{
			{Module: "file", Parameters: json.RawMessage(testParameters)},
			{Module: "netstat", Parameters: json.RawMessage(`{"connectedip":["13.37.66.66"]}`)},
		},
		PGPSignatures: []string{
			"-----BEGIN PGP SIGNATURE-----\n\nwnUEABYKACcFAmXz\n=AbCd\n-----END PGP SIGNATURE-----\n",
			"-----BEGIN PGP SIGNATURE-----\n\nwnUEABYKACcFAmX0\n=EfGh\n-----END PGP SIGNATURE-----\n",
		},
		SyntaxVersion: action.SyntaxVersion,
		Investigators: []action.Investigator{
			{ID: 1, Name: "Alice Investigator", Fingerprint: "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678", Status: action.InvestigatorActive},
		},
	}
}

// mustCreateAction stores a and fails the test on error.
func mustCreateAction(t *testing.T, s store.Store, a *action.Action) {
	t.Helper()
	if err := s.CreateAction(t.Context(), a); err != nil {
		t.Fatalf("CreateAction(%d): %v", a.ID, err)
	}
}

// commandsFor returns one command of actionID per agent, with IDs from
// firstID.
func commandsFor(actionID, firstID uint64, agents ...string) []action.Command {
	cmds := make([]action.Command, len(agents))
	for i, ag := range agents {
		cmds[i] = action.Command{
			ID:        firstID + uint64(i),
			Action:    action.Action{ID: actionID},
			AgentID:   ag,
			AgentName: "host-" + ag,
			StartTime: baseTime,
		}
	}
	return cmds
}

// mustCreateCommands stores cmds and fails the test on error.
func mustCreateCommands(t *testing.T, s store.Store, cmds []action.Command) {
	t.Helper()
	if err := s.CreateCommands(t.Context(), cmds); err != nil {
		t.Fatalf("CreateCommands(%d commands): %v", len(cmds), err)
	}
}

// result returns a result message of agent for command id.
func result(agent string, id, actionID uint64, status string, found bool) action.ResultMessage {
	return action.ResultMessage{
		V: action.ProtocolVersion, AgentID: agent, CommandID: id, ActionID: actionID, Status: status,
		Results: []action.Result{
			{FoundAnything: found, Success: status == action.CmdSuccess,
				Elements:   json.RawMessage(`{"s1":[{"file":"/etc/passwd","search":{"names":["^passwd$"]}}]}`),
				Statistics: json.RawMessage(`{"filescount":12}`)},
			{FoundAnything: false, Success: true, Errors: []string{"no such directory /var/www"}},
		},
		Started:  baseTime.Add(time.Second),
		Finished: baseTime.Add(2 * time.Second),
	}
}

// storeResults stores results and returns the sorted acks.
func storeResults(t *testing.T, s store.Store, results ...action.ResultMessage) []uint64 {
	t.Helper()
	ack, err := s.StoreResults(t.Context(), results)
	if err != nil {
		t.Fatalf("StoreResults(%d results): %v", len(results), err)
	}
	slices.Sort(ack)
	return ack
}

// counters returns the counters of action id.
func counters(t *testing.T, s store.Store, id uint64) action.Counters {
	t.Helper()
	a, err := s.Action(t.Context(), id)
	if err != nil {
		t.Fatalf("Action(%d): %v", id, err)
	}
	checkCountersAddUp(t, a.Counters)
	return a.Counters
}

// checkCountersAddUp checks the invariants every action's counters hold.
func checkCountersAddUp(t *testing.T, c action.Counters) {
	t.Helper()
	if terminal := c.Success + c.Failed + c.TimeOut + c.Expired + c.Cancelled; terminal != c.Done {
		t.Errorf("counters %+v: terminal counters add up to %d, Done is %d", c, terminal, c.Done)
	}
	if c.Done+c.InFlight != c.Sent {
		t.Errorf("counters %+v: Done+InFlight = %d, Sent is %d", c, c.Done+c.InFlight, c.Sent)
	}
}

// commandStatuses returns each command's status by ID.
func commandStatuses(t *testing.T, s store.Store, q store.CommandQuery) map[uint64]string {
	t.Helper()
	q.NoResults = true
	cmds, err := s.Commands(t.Context(), q)
	if err != nil {
		t.Fatalf("Commands(%+v): %v", q, err)
	}
	out := map[uint64]string{}
	for _, c := range cmds {
		out[c.ID] = c.Status
	}
	return out
}

// diff returns a readable difference between want and got, empty if equal.
func diff(want, got any, opts ...cmp.Option) string {
	return cmp.Diff(want, got, opts...)
}
