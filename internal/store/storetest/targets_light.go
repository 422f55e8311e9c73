package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/target"
)

// testAgentRefs checks the light target query that dispatch uses: for every
// target, AgentRefs returns the IDs and names of exactly the agents Agents
// returns, in the same order, with the same paging, and can leave out the
// agents that already have a command of an action.
func testAgentRefs(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	if err := s.UpsertAgents(ctx, fleet(now)); err != nil {
		t.Fatalf("UpsertAgents: %v", err)
	}
	if err := s.MarkAgents(ctx, now.Add(-5*time.Minute), now.Add(-time.Hour)); err != nil {
		t.Fatalf("MarkAgents: %v", err)
	}
	const aid, other = 61, 62
	mustCreateAction(t, s, newAction(aid, baseTime, baseTime.Add(time.Hour)))
	mustCreateAction(t, s, newAction(other, baseTime, baseTime.Add(time.Hour)))
	// a01, a05 and an agent that is not in the fleet have a command of
	// aid; a02 has one of another action only.
	mustCreateCommands(t, s, commandsFor(aid, 1, "a01", "a05", "gone"))
	mustCreateCommands(t, s, commandsFor(other, 11, "a02"))
	refsOf := func(rs []store.AgentRef) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID+" "+r.Name)
		}
		return out
	}
	for _, tgt := range []string{`TRUE`, `status='online'`, `environment->>'os'='linux'`, `tags->>'operator'='IT'`,
		`name LIKE '%db%'`, `NOT environment->>'os'='linux'`, `id IN ('a01','zzz')`, `name='nobody'`} {
		e, err := target.Parse(tgt)
		if err != nil {
			t.Fatalf("target.Parse(%q): %v", tgt, err)
		}
		for _, q := range []store.AgentQuery{
			{Target: e},
			{Target: e, Limit: 2},
			{Target: e, After: "a02", Limit: 3},
			{Target: e, WithoutCommandOf: aid},
			{Target: e, WithoutCommandOf: aid, After: "a01", Limit: 2},
		} {
			name := fmt.Sprintf("%q after %q limit %d without %d", tgt, q.After, q.Limit, q.WithoutCommandOf)
			full, err := s.Agents(ctx, q)
			if err != nil {
				t.Fatalf("Agents(%s): %v", name, err)
			}
			var want []string
			for _, a := range full {
				if q.WithoutCommandOf != 0 && (a.ID == "a01" || a.ID == "a05") {
					t.Errorf("Agents(%s) returned %s, which has a command of the action", name, a.ID)
				}
				want = append(want, a.ID+" "+a.Name)
			}
			got, err := s.AgentRefs(ctx, q)
			if err != nil {
				t.Fatalf("AgentRefs(%s): %v", name, err)
			}
			if d := diff(want, refsOf(got)); d != "" {
				t.Errorf("AgentRefs(%s) against Agents (-want +got):\n%s", name, d)
			}
		}
	}
	// Without a target, every agent but those with a command of aid.
	got, err := s.AgentRefs(ctx, store.AgentQuery{WithoutCommandOf: aid})
	if err != nil {
		t.Fatalf("AgentRefs(without %d): %v", aid, err)
	}
	want := []string{"a02 web1.prod.example.com", "a03 mac-alice", "a04 win-db", "a06 build_1", "a07 mac-bob", "a08 100%db"}
	if d := diff(want, refsOf(got)); d != "" {
		t.Errorf("AgentRefs(without %d) (-want +got):\n%s", aid, d)
	}
	// An action ID no store can hold is an error, not a panic.
	if _, err := s.AgentRefs(ctx, store.AgentQuery{WithoutCommandOf: 1 << 63}); err == nil {
		t.Errorf("AgentRefs(without action 2^63) = nil error, want an error")
	}
}
