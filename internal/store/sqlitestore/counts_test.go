package sqlitestore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// TestActionCounts checks that the counters kept by triggers
// (action_counts) always equal a count of the commands, through creation,
// results, duplicates, expiry and a raw change of status.
func TestActionCounts(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "counts.db")
	s, err := sqlitestore.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	now := time.Now().UTC()
	for _, a := range []*action.Action{
		{ID: 1, Name: "long", Target: "TRUE", ValidFrom: now.Add(-time.Hour), ExpireAfter: now.Add(time.Hour)},
		{ID: 2, Name: "short", Target: "TRUE", ValidFrom: now.Add(-time.Hour), ExpireAfter: now.Add(time.Second)},
	} {
		a.Operations = []action.Operation{{Module: "file", Parameters: json.RawMessage(`{}`)}}
		if err := s.CreateAction(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	var cmds []action.Command
	for i := range 10 {
		cmds = append(cmds, action.Command{ID: uint64(100 + i), Action: action.Action{ID: uint64(1 + i%2)}, AgentID: "agent" + string(rune('a'+i))})
	}
	steps := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"create", func(t *testing.T) {
			if err := s.CreateCommands(ctx, cmds); err != nil {
				t.Fatal(err)
			}
		}},
		{"results and a duplicate", func(t *testing.T) {
			rs := []action.ResultMessage{
				{AgentID: "agenta", CommandID: 100, Status: action.CmdSuccess},
				{AgentID: "agentb", CommandID: 101, Status: action.CmdFailed},
				{AgentID: "agenta", CommandID: 100, Status: action.CmdTimeout},
				{AgentID: "intruder", CommandID: 102, Status: action.CmdSuccess},
			}
			if _, err := s.StoreResults(ctx, rs); err != nil {
				t.Fatal(err)
			}
		}},
		{"expiry", func(t *testing.T) {
			if _, err := s.ExpireCommands(ctx, now.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}},
		{"raw status change", func(t *testing.T) {
			if _, err := raw.ExecContext(ctx, `UPDATE commands SET status = 'sent' WHERE id IN (100, 101)`); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do(t)
			want := counts(t, ctx, raw, `SELECT action_id, status, COUNT(*) FROM commands GROUP BY action_id, status`)
			got := counts(t, ctx, raw, `SELECT action_id, status, n FROM action_counts WHERE n > 0`)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("action_counts against a count of commands (-want +got):\n%s", diff)
			}
			for id := uint64(1); id <= 2; id++ {
				a, err := s.Action(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				c := a.Counters
				var n int
				for k, v := range want {
					if k[0] == int64(id) {
						n += v
					}
				}
				if c.Sent != n || c.Sent != c.Done+countOf(want, id, action.CmdSent) {
					t.Errorf("action %d counters %+v, want sent %d of which %d done", id, c, n, n-countOf(want, id, action.CmdSent))
				}
			}
		})
	}
}

func counts(t *testing.T, ctx context.Context, db *sql.DB, q string) map[[2]int64]int {
	t.Helper()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[[2]int64]int{}
	statuses := map[string]int64{}
	for i, s := range []string{action.CmdSent, action.CmdSuccess, action.CmdFailed, action.CmdTimeout, action.CmdExpired, action.CmdCancelled} {
		statuses[s] = int64(i)
	}
	for rows.Next() {
		var id int64
		var status string
		var n int
		if err := rows.Scan(&id, &status, &n); err != nil {
			t.Fatal(err)
		}
		out[[2]int64{id, statuses[status]}] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func countOf(m map[[2]int64]int, id uint64, status string) int {
	if status != action.CmdSent {
		return 0
	}
	return m[[2]int64{int64(id), 0}]
}
