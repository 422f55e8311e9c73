package sqlitestore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	_ "modernc.org/sqlite"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/sqlitestore"
	"github.com/migplatform/mig/internal/store/storetest"
)

// dbPaths gives each test its own database file, the same one every time
// the test opens a store (storetest's Reopen and TwoInstances rely on it),
// even when it opens several at once (MigrateFromEmpty).
var dbPaths sync.Map // *testing.T -> *dbPathOnce

type dbPathOnce struct {
	once sync.Once
	path string
}

func dbPath(t *testing.T) string {
	v, _ := dbPaths.LoadOrStore(t, &dbPathOnce{})
	p := v.(*dbPathOnce)
	p.once.Do(func() {
		p.path = filepath.Join(t.TempDir(), "mig.db")
		t.Cleanup(func() { dbPaths.Delete(t) })
	})
	return p.path
}

func openTest(t *testing.T) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(t.Context(), dbPath(t), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}

// rawDB opens the database file directly, to look at or tamper with what the
// store wrote.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenSettings(t *testing.T) {
	s := openTest(t)
	defer s.Close()
	db := rawDB(t, dbPath(t))
	var mode string
	if err := db.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatalf("journal_mode: %v", err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	var versions []int
	rows, err := db.QueryContext(t.Context(), "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatalf("schema_migrations: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	if len(versions) == 0 || versions[0] != 1 {
		t.Errorf("schema_migrations versions = %v, want 1 first", versions)
	}
}

func TestOpenIdempotent(t *testing.T) {
	ctx := t.Context()
	for i := range 3 {
		s := openTest(t)
		if err := s.UpsertAgents(ctx, []action.Agent{{ID: fmt.Sprintf("agent-%d", i), Name: "n"}}); err != nil {
			t.Fatalf("open %d: UpsertAgents: %v", i, err)
		}
		n, err := s.CountAgents(ctx, nil)
		if err != nil || n != i+1 {
			t.Errorf("open %d: CountAgents = %d, %v; want %d", i, n, err, i+1)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	var n int
	if err := rawDB(t, dbPath(t)).QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("migration 1 recorded %d times, want once", n)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	s := openTest(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rawDB(t, dbPath(t)).ExecContext(t.Context(),
		"INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', '2030-01-01T00:00:00.000000000Z')"); err != nil {
		t.Fatal(err)
	}
	_, err := sqlitestore.Open(t.Context(), dbPath(t), nil)
	if !errors.Is(err, sqlitestore.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: error = %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "9999") {
		t.Errorf("error %q does not name the database's schema version", err)
	}
}

func TestOpenBadPath(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro", filepath.Join(t.TempDir(), "missing", "dir", "x.db")} {
		s, err := sqlitestore.Open(t.Context(), p, nil)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", p)
		}
	}
}

func TestTimesStoredSortable(t *testing.T) {
	s := openTest(t)
	defer s.Close()
	ctx := t.Context()
	hb := []time.Time{
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 1, 1, 0, 0, 0, 100, time.FixedZone("X", 3600)).Add(time.Hour),
		time.Date(2025, 1, 1, 0, 0, 0, 5e8, time.UTC),
	}
	var agents []action.Agent
	for i, h := range hb {
		agents = append(agents, action.Agent{ID: fmt.Sprintf("a%d", i), HeartbeatTime: h})
	}
	if err := s.UpsertAgents(ctx, agents); err != nil {
		t.Fatal(err)
	}
	rows, err := rawDB(t, dbPath(t)).QueryContext(ctx, "SELECT id, heartbeattime FROM agents ORDER BY heartbeattime")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id, h string
		if err := rows.Scan(&id, &h); err != nil {
			t.Fatal(err)
		}
		got = append(got, id+"="+h)
	}
	want := []string{
		"a0=2025-01-01T00:00:00.000000000Z",
		"a1=2025-01-01T00:00:00.000000100Z",
		"a2=2025-01-01T00:00:00.500000000Z",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("stored heartbeats by text order:\n got %v\nwant %v", got, want)
	}
}

func TestBodyRoundTrip(t *testing.T) {
	s := openTest(t)
	defer s.Close()
	ctx := t.Context()
	params := "{ \"a\" : [1, 2 ,3],\n \"b\": \"\\u003c>\" }"
	a := &action.Action{ID: 9, Name: "n", Target: "TRUE", ValidFrom: time.Unix(0, 0), ExpireAfter: time.Unix(3600, 0),
		Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(params)}}}
	if err := s.CreateAction(ctx, a); err != nil {
		t.Fatal(err)
	}
	var body string
	if err := rawDB(t, dbPath(t)).QueryRowContext(ctx, "SELECT body FROM actions WHERE id = 9").Scan(&body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, `"parameters":`+params+`}`) {
		t.Errorf("stored body %s does not hold the parameters verbatim", body)
	}
	if !json.Valid([]byte(body)) {
		t.Errorf("stored body is not valid JSON: %s", body)
	}
}

// BenchmarkStoreResults ingests 100,000 results in batches of 1,000, the
// server's hot path. The goal is at least 50,000 results/s.
func BenchmarkStoreResults(b *testing.B) {
	const total, batch = 100_000, 1_000
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var nextID uint64
	var elapsed time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		aid := uint64(i + 1)
		a := &action.Action{ID: aid, Name: "bench", Target: "TRUE", ValidFrom: time.Now().Add(-time.Hour),
			ExpireAfter: time.Now().Add(time.Hour),
			Operations:  []action.Operation{{Module: "file", Parameters: json.RawMessage(`{"searches":{"s1":{"paths":["/etc"]}}}`)}}}
		if err := s.CreateAction(ctx, a); err != nil {
			b.Fatal(err)
		}
		cmds := make([]action.Command, total)
		results := make([]action.ResultMessage, total)
		for j := range cmds {
			nextID++
			agent := fmt.Sprintf("agent-%06d", j)
			cmds[j] = action.Command{ID: nextID, Action: action.Action{ID: aid}, AgentID: agent, AgentName: agent + ".example.com"}
			results[j] = action.ResultMessage{V: action.ProtocolVersion, AgentID: agent, CommandID: nextID, ActionID: aid,
				Status: action.CmdSuccess, Finished: time.Now(),
				Results: []action.Result{{FoundAnything: j%10 == 0, Success: true,
					Elements:   json.RawMessage(`{"s1":[{"file":"/etc/passwd","fileinfo":{"size":2345,"mode":"-rw-r--r--"}}]}`),
					Statistics: json.RawMessage(`{"filescount":42,"totalhits":1}`)}}}
		}
		if err := s.CreateCommands(ctx, cmds); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		for k := 0; k < total; k += batch {
			ack, err := s.StoreResults(ctx, results[k:k+batch])
			if err != nil {
				b.Fatal(err)
			}
			if len(ack) != batch {
				b.Fatalf("acknowledged %d of %d results", len(ack), batch)
			}
		}
		elapsed += time.Since(start)
	}
	b.ReportMetric(float64(total*b.N)/elapsed.Seconds(), "results/s")
}

// BenchmarkStoreResultsBaseline is the baseline of BenchmarkStoreResults in
// the same driver: what modernc.org/sqlite itself does with the update of
// testdata's ingest-baseline.sh (internal/store/pgstore/testdata), 100,000
// rows of a table shaped like commands, without triggers, in 100
// transactions of one UPDATE of 1,000 rows each, with the data generated in
// the statement. The script runs the same SQL in the sqlite3 CLI (native C).
func BenchmarkStoreResultsBaseline(b *testing.B) {
	const total, batch = 100_000, 1_000
	const res = `[{"foundanything":false,"success":true,"elements":{"s1":[{"file":"/etc/passwd","fileinfo":{"size":2345,"mode":"-rw-r--r--"}}]},"statistics":{"filescount":42,"totalhits":1}}]`
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(b.TempDir(), "baseline.db")+
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-32768)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE commands (id INTEGER PRIMARY KEY, action_id INTEGER NOT NULL,
		agent_id TEXT NOT NULL, agent_name TEXT NOT NULL, status TEXT NOT NULL, code TEXT NOT NULL DEFAULT '',
		error TEXT NOT NULL DEFAULT '', results TEXT, found INTEGER NOT NULL DEFAULT 0, starttime TEXT NOT NULL,
		finishtime TEXT) STRICT`); err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{`CREATE INDEX commands_action ON commands (action_id, id)`,
		`CREATE INDEX commands_agent_status ON commands (agent_id, status)`,
		`CREATE INDEX commands_action_status ON commands (action_id, status)`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	var next int64
	var elapsed time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		if _, err := db.ExecContext(ctx, `WITH RECURSIVE g(n) AS (SELECT ? UNION ALL SELECT n+1 FROM g WHERE n < ?)
			INSERT INTO commands (id, action_id, agent_id, agent_name, status, starttime)
			SELECT n, ?, printf('agent-%06d', n), 'x', 'sent', '2025-01-01T00:00:00.000000000Z' FROM g`,
			next+1, next+total, i+1); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		for lo := next + 1; lo <= next+total; lo += batch {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE commands SET status = 'success', results = '`+res+`',
				finishtime = '2025-01-01T00:00:01.000000000Z' WHERE id BETWEEN ? AND ? AND status = 'sent'`,
				lo, lo+batch-1); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		elapsed += time.Since(start)
		next += total
	}
	b.ReportMetric(float64(total*b.N)/elapsed.Seconds(), "rows/s")
}

// TestStoreResultsLargeBatch stores a batch larger than one UPDATE
// statement, over several actions, with duplicates, strangers, unknown
// commands and commands stored earlier, and checks the acknowledgements,
// the commands and the counters kept in action_counts.
func TestStoreResultsLargeBatch(t *testing.T) {
	s := openTest(t)
	defer s.Close()
	ctx := t.Context()
	const n = 350
	for aid := uint64(1); aid <= 3; aid++ {
		a := &action.Action{ID: aid, Name: "n", Target: "TRUE", ValidFrom: time.Now().Add(-time.Hour), ExpireAfter: time.Now().Add(time.Hour),
			Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{}`)}}}
		if err := s.CreateAction(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	statuses := []string{action.CmdSuccess, action.CmdFailed, action.CmdTimeout}
	cmds := make([]action.Command, n)
	var early, batch []action.ResultMessage
	want := map[uint64]string{} // command ID -> status after the batch
	wantAck := map[uint64]bool{}
	for i := range cmds {
		id, agent := uint64(i+1), fmt.Sprintf("ag%03d", i)
		cmds[i] = action.Command{ID: id, Action: action.Action{ID: uint64(1 + i%3)}, AgentID: agent}
		r := action.ResultMessage{AgentID: agent, CommandID: id, Status: statuses[i%3],
			Results: []action.Result{{FoundAnything: i%2 == 0, Success: true, Elements: json.RawMessage(`{"i":` + fmt.Sprint(i) + `}`)}}}
		switch {
		case i%7 == 0: // a stranger's result only
			r.AgentID = "x" + agent
			want[id] = action.CmdSent
		case i%11 == 0: // stored before, then sent again with another status
			early = append(early, r)
			want[id], wantAck[id] = r.Status, true
			r.Status = action.CmdCancelled
		default:
			want[id], wantAck[id] = r.Status, true
		}
		batch = append(batch, r)
		if i%5 == 0 { // a second result of the owner: the first one wins
			dup := r
			dup.AgentID, dup.Status = agent, action.CmdExpired
			batch = append(batch, dup)
			if want[id] == action.CmdSent {
				want[id] = action.CmdExpired // the stranger did not store, the owner did
				wantAck[id] = true
			}
		}
	}
	for id := uint64(5000); id < 5010; id++ {
		batch = append(batch, action.ResultMessage{AgentID: "ghost", CommandID: id, Status: action.CmdSuccess})
		wantAck[id] = true
	}
	if err := s.CreateCommands(ctx, cmds); err != nil {
		t.Fatal(err)
	}
	if ack, err := s.StoreResults(ctx, early); err != nil || len(ack) != len(early) {
		t.Fatalf("StoreResults(early) = %d acks, %v; want %d", len(ack), err, len(early))
	}
	ack, err := s.StoreResults(ctx, batch)
	if err != nil {
		t.Fatalf("StoreResults: %v", err)
	}
	got := map[uint64]bool{}
	for _, id := range ack {
		if got[id] {
			t.Errorf("command %d acknowledged twice", id)
		}
		got[id] = true
	}
	if diff := cmp.Diff(wantAck, got); diff != "" {
		t.Errorf("acknowledged (-want +got):\n%s", diff)
	}
	stored, err := s.Commands(ctx, store.CommandQuery{})
	if err != nil {
		t.Fatal(err)
	}
	gotStatus := map[uint64]string{}
	for _, c := range stored {
		gotStatus[c.ID] = c.Status
		if c.Status != action.CmdSent && (len(c.Results) != 1 || string(c.Results[0].Elements) != fmt.Sprintf(`{"i":%d}`, c.ID-1)) {
			t.Errorf("command %d results = %+v, want its own", c.ID, c.Results)
		}
	}
	if diff := cmp.Diff(want, gotStatus); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	db := rawDB(t, dbPath(t))
	wantCounts := counts(t, ctx, db, `SELECT action_id, status, COUNT(*) FROM commands GROUP BY action_id, status`)
	gotCounts := counts(t, ctx, db, `SELECT action_id, status, n FROM action_counts WHERE n <> 0`)
	if diff := cmp.Diff(wantCounts, gotCounts); diff != "" {
		t.Errorf("action_counts against a count of commands (-want +got):\n%s", diff)
	}
	var deferred int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM counts_deferred`).Scan(&deferred); err != nil || deferred != 0 {
		t.Errorf("counts_deferred holds %d rows (%v), want none outside StoreResults", deferred, err)
	}
}

// FuzzStoreResults feeds arbitrary batches of results, as agents could send
// them, to StoreResults and checks its rules: a command moves only on the
// first terminal result of its own agent, exactly the stored, already
// terminal-and-owned, and unknown commands are acknowledged, and nothing
// fails the batch.
func FuzzStoreResults(f *testing.F) {
	seeds := []string{
		`[]`,
		`[{"v":1,"agentid":"a1","commandid":1,"actionid":1,"status":"success","results":[{"foundanything":true,"success":true,"elements":{"x":[1]}}]}]`,
		`[{"agentid":"a2","commandid":2,"status":"failed","code":"module_failed","error":"boom"},{"agentid":"a2","commandid":2,"status":"success"}]`,
		`[{"agentid":"a9","commandid":3,"status":"success"},{"agentid":"a3","commandid":3,"status":"timeout"}]`,
		`[{"agentid":"a4","commandid":999,"status":"success"},{"agentid":"a4","commandid":0,"status":"success"}]`,
		`[{"agentid":"a5","commandid":5,"status":"sent"},{"agentid":"a5","commandid":18446744073709551615,"status":"expired"}]`,
		`[{"agentid":"","commandid":6,"status":"cancelled","finished":"2025-01-01T00:00:00Z"}]`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	path := filepath.Join(f.TempDir(), "fuzz.db")
	s, err := sqlitestore.Open(ctx, path, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	a := &action.Action{ID: 1, Name: "fuzz", Target: "TRUE", ValidFrom: time.Unix(0, 0), ExpireAfter: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{}`)}}}
	if err := s.CreateAction(ctx, a); err != nil {
		f.Fatal(err)
	}
	owners := map[uint64]string{1: "a1", 2: "a2", 3: "a3", 4: "a4", 5: "a5", 6: ""}
	var cmds []action.Command
	for id, agent := range owners {
		if agent == "" {
			continue
		}
		cmds = append(cmds, action.Command{ID: id, Action: action.Action{ID: 1}, AgentID: agent})
	}
	if err := s.CreateCommands(ctx, cmds); err != nil {
		f.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		f.Fatal(err)
	}
	defer raw.Close()

	f.Fuzz(func(t *testing.T, data []byte) {
		var results []action.ResultMessage
		if json.Unmarshal(data, &results) != nil {
			return
		}
		if _, err := raw.ExecContext(ctx, `UPDATE commands SET status = 'sent', code = '', error = '', results = NULL,
			found = 0, finishtime = NULL`); err != nil {
			t.Fatal(err)
		}
		ack, err := s.StoreResults(ctx, results)
		if err != nil {
			t.Fatalf("StoreResults: %v", err)
		}
		acked := map[uint64]bool{}
		for _, id := range ack {
			if acked[id] {
				t.Errorf("command %d acknowledged twice", id)
			}
			acked[id] = true
		}
		// The first terminal result of each command's owner wins.
		winner := map[uint64]*action.ResultMessage{}
		for i := range results {
			r := &results[i]
			if owner, ok := owners[r.CommandID]; ok && owner != "" && r.AgentID == owner &&
				action.IsTerminal(r.Status) && winner[r.CommandID] == nil {
				winner[r.CommandID] = r
			}
		}
		got, err := s.Commands(ctx, store.CommandQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range got {
			w := winner[c.ID]
			switch {
			case w == nil && (c.Status != action.CmdSent || acked[c.ID]):
				t.Errorf("command %d with no result of its owner: status %q, acknowledged %v", c.ID, c.Status, acked[c.ID])
			case w != nil && (c.Status != w.Status || c.Code != w.Code || c.Error != w.Error || !acked[c.ID]):
				t.Errorf("command %d = %q %q %q, acknowledged %v; want the first owner's result %q %q %q, acknowledged",
					c.ID, c.Status, c.Code, c.Error, acked[c.ID], w.Status, w.Code, w.Error)
			}
			delete(acked, c.ID)
		}
		// What is left must be unknown commands that got a terminal result.
		for id := range acked {
			if _, known := owners[id]; known && owners[id] != "" {
				continue
			}
			sent := false
			for _, r := range results {
				sent = sent || (r.CommandID == id && id != 0 && action.IsTerminal(r.Status))
			}
			if !sent {
				t.Errorf("acknowledged %d, for which no terminal result was sent", id)
			}
		}
		stored, err := s.Action(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		c := stored.Counters
		if c.Sent != len(cmds) || c.Done+c.InFlight != c.Sent ||
			c.Success+c.Failed+c.TimeOut+c.Expired+c.Cancelled != c.Done {
			t.Errorf("counters %+v do not add up to %d commands", c, len(cmds))
		}
	})
}

// TestTimesOutOfRange checks that agents' times that fall outside the years
// 0000-9999 in UTC cannot make stored rows unreadable.
func TestTimesOutOfRange(t *testing.T) {
	s := openTest(t)
	defer s.Close()
	ctx := t.Context()
	var hb action.HeartbeatMessage
	msg := `{"v":1,"agent":{"id":"far","heartbeattime":"9999-12-31T23:59:59-23:59","starttime":"0000-01-01T00:00:00+23:59"}}`
	if err := json.Unmarshal([]byte(msg), &hb); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if err := s.UpsertAgents(ctx, []action.Agent{hb.Agent}); err != nil {
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
