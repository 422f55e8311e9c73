package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/target"
)

// bigFleet returns n agents whose attributes cycle through the fleet's, with
// IDs that do not sort in creation order.
func bigFleet(now time.Time, n int) []action.Agent {
	base := fleet(now)
	out := make([]action.Agent, n)
	for i := range out {
		a := base[i%len(base)]
		a.ID = fmt.Sprintf("%c%04d", 'z'-rune(i%26), i)
		a.Name = fmt.Sprintf("%s-%d", a.Name, i)
		a.PID = i
		out[i] = a
	}
	return out
}

// testSearchPaging pages through agents, commands and actions with filters,
// and checks that the pages visit exactly what one unpaged query returns, in
// order, once each.
func testSearchPaging(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	now := time.Now().UTC()
	agents := bigFleet(now, 300)
	if err := s.UpsertAgents(ctx, agents); err != nil {
		t.Fatalf("UpsertAgents: %v", err)
	}
	if err := s.MarkAgents(ctx, now.Add(-5*time.Minute), now.Add(-time.Hour)); err != nil {
		t.Fatalf("MarkAgents: %v", err)
	}
	stored, err := s.Agents(ctx, store.AgentQuery{})
	if err != nil {
		t.Fatalf("Agents: %v", err)
	}
	if !slices.IsSortedFunc(stored, func(a, b action.Agent) int { return compareStrings(a.ID, b.ID) }) {
		t.Errorf("Agents are not ordered by id")
	}
	for _, expr := range []string{
		`TRUE`,
		`status='online'`,
		`environment->>'os'='linux' AND pid > 100`,
		`name LIKE '%db%' OR tags->>'operator'='Sec'`,
		`NOT (mode='daemon') AND id > 't'`,
		`id IN ('z0000','y0001','a9999')`,
		`environment->>'os'='plan9'`,
	} {
		e, err := target.Parse(expr)
		if err != nil {
			t.Fatalf("target.Parse(%q): %v", expr, err)
		}
		var want []string
		for i := range stored {
			if target.Eval(e, &stored[i]) {
				want = append(want, stored[i].ID)
			}
		}
		n, err := s.CountAgents(ctx, e)
		if err != nil || n != len(want) {
			t.Errorf("CountAgents(%q) = %d, %v; want %d", expr, n, err, len(want))
		}
		for _, limit := range []int{1, 7, 50, 1000} {
			var got []string
			after := ""
			for pages := 0; pages <= len(stored)+1; pages++ {
				page, err := s.Agents(ctx, store.AgentQuery{Target: e, Limit: limit, After: after})
				if err != nil {
					t.Fatalf("Agents(%q, limit %d, after %q): %v", expr, limit, after, err)
				}
				if len(page) > limit {
					t.Fatalf("Agents(%q, limit %d) returned %d agents", expr, limit, len(page))
				}
				if len(page) == 0 {
					break
				}
				got = append(got, agentIDs(page)...)
				after = page[len(page)-1].ID
			}
			if d := diff(want, got); d != "" {
				t.Errorf("Agents(%q) in pages of %d (-want +got):\n%s", expr, limit, d)
			}
		}
	}

	// Commands of two actions, with every status and found flag.
	const aid, other = 71, 72
	mustCreateAction(t, s, newAction(aid, baseTime.Add(-time.Hour), baseTime.Add(time.Hour)))
	mustCreateAction(t, s, newAction(other, baseTime.Add(-time.Hour), baseTime.Add(time.Hour)))
	ids := agentIDs(agents)
	mustCreateCommands(t, s, commandsFor(aid, 10_000, ids...))
	mustCreateCommands(t, s, commandsFor(other, 20_000, ids[:40]...))
	statuses := []string{action.CmdSent, action.CmdSuccess, action.CmdFailed, action.CmdTimeout, action.CmdCancelled}
	var results []action.ResultMessage
	for i, ag := range ids {
		if st := statuses[i%len(statuses)]; st != action.CmdSent {
			results = append(results, result(ag, uint64(10_000+i), aid, st, i%3 == 0))
		}
	}
	storeResults(t, s, results...)
	all, err := s.Commands(ctx, store.CommandQuery{NoResults: true})
	if err != nil {
		t.Fatalf("Commands: %v", err)
	}
	if len(all) != len(ids)+40 {
		t.Fatalf("Commands returned %d commands, want %d", len(all), len(ids)+40)
	}
	foundIDs := map[uint64]bool{}
	for _, r := range results {
		if r.Results[0].FoundAnything {
			foundIDs[r.CommandID] = true
		}
	}
	queries := []store.CommandQuery{
		{ActionID: aid},
		{ActionID: aid, Status: action.CmdFailed},
		{ActionID: aid, FoundOnly: true},
		{ActionID: aid, Status: action.CmdSuccess, FoundOnly: true},
		{ActionID: other},
		{AgentID: ids[3]},
		{Status: action.CmdSent},
		{},
	}
	for _, q := range queries {
		var want []uint64
		for _, c := range all {
			if (q.ActionID == 0 || c.Action.ID == q.ActionID) && (q.AgentID == "" || c.AgentID == q.AgentID) &&
				(q.Status == "" || c.Status == q.Status) && (!q.FoundOnly || foundIDs[c.ID]) {
				want = append(want, c.ID)
			}
		}
		for _, limit := range []int{1, 13, 100} {
			var got []uint64
			pq := q
			pq.Limit, pq.NoResults = limit, true
			for pages := 0; pages <= len(all)+1; pages++ {
				page, err := s.Commands(ctx, pq)
				if err != nil {
					t.Fatalf("Commands(%+v): %v", pq, err)
				}
				if len(page) > limit {
					t.Fatalf("Commands(%+v) returned %d commands", pq, len(page))
				}
				if len(page) == 0 {
					break
				}
				for _, c := range page {
					got = append(got, c.ID)
				}
				pq.AfterID = page[len(page)-1].ID
			}
			if d := diff(want, got); d != "" {
				t.Errorf("Commands(%+v) in pages of %d (-want +got):\n%s", q, limit, d)
			}
		}
	}

	// Actions, newest first, by limit and offset.
	var wantActions []uint64
	for i := range 12 {
		id := uint64(100 + (i*7)%12)
		mustCreateAction(t, s, newAction(id, baseTime, baseTime.Add(time.Hour)))
		wantActions = append([]uint64{id}, wantActions...)
		time.Sleep(time.Millisecond) // distinct creation times
	}
	wantActions = append(wantActions, other, aid)
	for _, limit := range []int{1, 5, 14} {
		var got []uint64
		for offset := 0; offset <= len(wantActions); offset += limit {
			page, err := s.Actions(ctx, limit, offset)
			if err != nil {
				t.Fatalf("Actions(%d, %d): %v", limit, offset, err)
			}
			for _, a := range page {
				got = append(got, a.ID)
				checkCountersAddUp(t, a.Counters)
			}
		}
		if d := diff(wantActions, got); d != "" {
			t.Errorf("Actions in pages of %d (-want +got):\n%s", limit, d)
		}
	}
}

// compareStrings orders strings byte-wise, as Go does.
func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// testTimesOutOfRange checks that agents' times outside the years 0000-9999
// in UTC cannot make stored rows unreadable: a heartbeat is taken as now, a
// start time as zero.
func testTimesOutOfRange(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	far := action.Agent{ID: "far", Name: "far",
		HeartbeatTime: time.Date(9999, 12, 31, 23, 59, 59, 0, time.FixedZone("", -(23*3600+59*60))),
		StartTime:     time.Date(0, 1, 1, 0, 0, 0, 0, time.FixedZone("", 23*3600+59*60))}
	before := time.Now()
	if err := s.UpsertAgents(ctx, []action.Agent{far}); err != nil {
		t.Fatalf("UpsertAgents: %v", err)
	}
	got, err := s.Agents(ctx, store.AgentQuery{})
	if err != nil {
		t.Fatalf("Agents: %v", err)
	}
	if len(got) != 1 || got[0].HeartbeatTime.Before(before.Add(-time.Second)) || !got[0].StartTime.IsZero() {
		t.Errorf("Agents = %+v, want one agent with a heartbeat of now and no start time", got)
	}
}
