package scheduler

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// TestSweepAgesAgents checks that a sweep marks agents online, idle or
// offline by the age of their last heartbeat, on a clock the test holds.
func TestSweepAgesAgents(t *testing.T) {
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "mig.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	ages := []time.Duration{0, time.Minute, 3*time.Minute - time.Second, 3*time.Minute + time.Second, 59 * time.Minute, time.Hour + time.Second, 48 * time.Hour}
	want := []string{action.AgentOnline, action.AgentOnline, action.AgentOnline, action.AgentIdle, action.AgentIdle, action.AgentOffline, action.AgentOffline}
	var agents []action.Agent
	for i, age := range ages {
		agents = append(agents, action.Agent{ID: agentID(i), Name: "a" + agentID(i)[28:], Mode: action.ModeDaemon,
			Status: action.AgentOnline, HeartbeatTime: now.Add(-age), Environment: action.Environment{OS: "linux"}})
	}
	if err := st.UpsertAgents(t.Context(), agents); err != nil {
		t.Fatal(err)
	}
	s := New(Config{OnlineWindow: 3 * time.Minute, IdleWindow: time.Hour}, st, nil, nil)
	s.now = func() time.Time { return now }
	s.Sweep(t.Context())

	check := func(what string, want []string) {
		t.Helper()
		got, err := st.Agents(t.Context(), store.AgentQuery{})
		if err != nil {
			t.Fatal(err)
		}
		status := map[string]string{}
		for _, a := range got {
			status[a.ID] = a.Status
		}
		for i := range ages {
			if status[agentID(i)] != want[i] {
				t.Errorf("%s: agent with a heartbeat %s old is %q, want %q", what, ages[i], status[agentID(i)], want[i])
			}
		}
	}
	check("first sweep", want)

	// 58 minutes later with no heartbeat, only the two youngest are still
	// idle; an agent that heartbeats again is online.
	now = now.Add(58 * time.Minute)
	back := agents[6]
	back.HeartbeatTime, back.Status = now, action.AgentOnline
	if err := st.UpsertAgents(t.Context(), []action.Agent{back}); err != nil {
		t.Fatal(err)
	}
	s.Sweep(t.Context())
	check("58 minutes later", []string{action.AgentIdle, action.AgentIdle, action.AgentOffline, action.AgentOffline, action.AgentOffline, action.AgentOffline, action.AgentOnline})
}
