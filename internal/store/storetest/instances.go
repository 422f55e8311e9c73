package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

// testMigrateFromEmpty opens two stores at once over one empty database, as
// two servers starting together do: both must bring the schema up and see
// each other's writes.
func testMigrateFromEmpty(t *testing.T, open Opener) {
	ctx := t.Context()
	stores := make([]store.Store, 3)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i] = open(t) })
	}
	wg.Wait()
	for i, s := range stores {
		if s == nil {
			t.Fatalf("opening store %d over an empty database failed", i)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close store %d: %v", i, err)
			}
		})
	}
	for i, s := range stores {
		if err := s.UpsertAgents(ctx, []action.Agent{{ID: fmt.Sprintf("m%d", i), Name: "m"}}); err != nil {
			t.Fatalf("store %d: UpsertAgents: %v", i, err)
		}
	}
	for i, s := range stores {
		if n, err := s.CountAgents(ctx, nil); err != nil || n != len(stores) {
			t.Errorf("store %d: CountAgents = %d, %v; want %d", i, n, err, len(stores))
		}
	}
	a := newAction(81, baseTime.Add(-time.Hour), baseTime.Add(time.Hour))
	mustCreateAction(t, stores[0], a)
	if err := stores[1].CreateAction(ctx, a); err == nil {
		t.Errorf("the second store created an action the first had stored")
	}
	got, err := stores[2].Action(ctx, a.ID)
	if err != nil || got.Name != a.Name {
		t.Errorf("the third store reads action %d as %v, %v", a.ID, got, err)
	}
}

// testTwoInstances runs two stores over one database at once, as two
// servers do, each storing results (some for the same commands, some
// conflicting), heartbeats and expiry: every command ends in exactly one
// terminal status, the first result stored for it, and both stores
// acknowledge every result of the command's owner.
func testTwoInstances(t *testing.T, open Opener) {
	s1 := openStore(t, open)
	s2 := openStore(t, open)
	ctx := t.Context()
	const (
		n     = 1200
		batch = 100
		aid   = 91
		gone  = 92 // expires while results are stored
	)
	mustCreateAction(t, s1, newAction(aid, baseTime.Add(-time.Hour), baseTime.Add(time.Hour)))
	mustCreateAction(t, s2, newAction(gone, baseTime.Add(-2*time.Hour), baseTime.Add(-time.Hour)))
	var cmds []action.Command
	for i := range n {
		cmds = append(cmds, action.Command{ID: uint64(i + 1), Action: action.Action{ID: aid}, AgentID: fmt.Sprintf("t%04d", i)})
	}
	mustCreateCommands(t, s1, cmds[:n/2])
	mustCreateCommands(t, s2, cmds[n/2:])
	var goneCmds []action.Command
	for i := range 300 {
		goneCmds = append(goneCmds, action.Command{ID: uint64(100_000 + i), Action: action.Action{ID: gone}, AgentID: fmt.Sprintf("t%04d", i)})
	}
	mustCreateCommands(t, s1, goneCmds)

	// Store i sends success for every command, store 1 failed for the
	// commands whose ID is a multiple of 3: whoever stores first wins.
	stores := []store.Store{s1, s2}
	acks := []map[uint64]int{{}, {}}
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			for start := 0; start < n; start += batch {
				var rs []action.ResultMessage
				for _, c := range cmds[start : start+batch] {
					status := action.CmdSuccess
					if i == 1 && c.ID%3 == 0 {
						status = action.CmdFailed
					}
					rs = append(rs, result(c.AgentID, c.ID, aid, status, c.ID%2 == 0))
				}
				// Late results for the expiring action, from both.
				rs = append(rs, result(goneCmds[start/batch].AgentID, goneCmds[start/batch].ID, gone, action.CmdSuccess, false))
				ack, err := s.StoreResults(ctx, rs)
				if err != nil {
					t.Errorf("store %d: StoreResults: %v", i, err)
					return
				}
				for _, id := range ack {
					acks[i][id]++
				}
			}
		})
		wg.Go(func() {
			for round := range 10 {
				agents := fleet(time.Now())
				for j := range agents {
					agents[j].PID = round*10 + i
				}
				if err := s.UpsertAgents(ctx, agents); err != nil {
					t.Errorf("store %d: UpsertAgents: %v", i, err)
					return
				}
				if _, err := s.ExpireCommands(ctx, baseTime); err != nil {
					t.Errorf("store %d: ExpireCommands: %v", i, err)
					return
				}
				if err := s.MarkAgents(ctx, time.Now().Add(-5*time.Minute), time.Now().Add(-time.Hour)); err != nil {
					t.Errorf("store %d: MarkAgents: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := range stores {
		for _, c := range cmds {
			if acks[i][c.ID] != 1 {
				t.Errorf("store %d acknowledged command %d %d times, want once", i, c.ID, acks[i][c.ID])
				break
			}
		}
	}
	got, err := s2.Commands(ctx, store.CommandQuery{ActionID: aid, NoResults: true})
	if err != nil {
		t.Fatalf("Commands: %v", err)
	}
	var success, failed int
	for _, c := range got {
		switch {
		case c.Status == action.CmdSuccess:
			success++
		case c.Status == action.CmdFailed && c.ID%3 == 0:
			failed++
		default:
			t.Errorf("command %d is %q, want success or (ID a multiple of 3) failed", c.ID, c.Status)
		}
	}
	want := action.Counters{Sent: n, Done: n, Success: success, Failed: failed}
	for i, s := range stores {
		if d := diff(want, counters(t, s, aid)); d != "" {
			t.Errorf("store %d: counters (-want +got):\n%s", i, d)
		}
	}
	if _, err := s1.ExpireCommands(ctx, baseTime); err != nil {
		t.Fatalf("ExpireCommands: %v", err)
	}
	c := counters(t, s2, gone)
	if c.Sent != len(goneCmds) || c.InFlight != 0 || c.Success+c.Expired != len(goneCmds) {
		t.Errorf("counters of the expired action = %+v, want %d commands all success or expired", c, len(goneCmds))
	}
	if n, err := s1.CountAgents(ctx, nil); err != nil || n != len(fleet(time.Now())) {
		t.Errorf("CountAgents = %d, %v; want %d", n, err, len(fleet(time.Now())))
	}
}
