package pgstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/pgstore"
	"github.com/migplatform/mig/internal/store/pgstore/pgtest"
	"github.com/migplatform/mig/internal/store/storetest"
)

// schemas gives each test its own schema, the same one every time the test
// opens a store (storetest's Reopen and two-instance tests rely on it).
var schemas sync.Map // *testing.T -> *schemaOnce

type schemaOnce struct {
	once sync.Once
	url  string
}

func testURL(t *testing.T) string {
	v, _ := schemas.LoadOrStore(t, &schemaOnce{})
	so := v.(*schemaOnce)
	so.once.Do(func() {
		so.url = pgtest.Schema(t, 4)
		t.Cleanup(func() { schemas.Delete(t) })
	})
	if so.url == "" {
		t.Fatalf("no test schema")
	}
	return so.url
}

func openTest(t *testing.T) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(t.Context(), testURL(t), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	pgtest.URL(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}

// rawConn connects to the test's schema directly, to look at or tamper with
// what the store wrote.
func rawConn(t *testing.T) *pgxpool.Pool {
	t.Helper()
	c, err := pgxpool.New(t.Context(), testURL(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestOpenRecordsMigrations(t *testing.T) {
	for i := range 3 {
		s := openTest(t)
		if err := s.UpsertAgents(t.Context(), []action.Agent{{ID: fmt.Sprintf("agent-%d", i), Name: "n"}}); err != nil {
			t.Fatalf("open %d: UpsertAgents: %v", i, err)
		}
		if n, err := s.CountAgents(t.Context(), nil); err != nil || n != i+1 {
			t.Errorf("open %d: CountAgents = %d, %v; want %d", i, n, err, i+1)
		}
		s.Close()
	}
	var versions []int32
	rows, err := rawConn(t).Query(t.Context(), "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatalf("schema_migrations: %v", err)
	}
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatalf("schema_migrations: %v", err)
	}
	if len(versions) == 0 || versions[0] != 1 {
		t.Errorf("schema_migrations versions = %v, want 1 first, each once", versions)
	}
	for i := 1; i < len(versions); i++ {
		if versions[i] == versions[i-1] {
			t.Errorf("schema_migrations versions = %v: %d recorded twice", versions, versions[i])
		}
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	openTest(t).Close()
	if _, err := rawConn(t).Exec(t.Context(),
		"INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', now())"); err != nil {
		t.Fatal(err)
	}
	_, err := pgstore.Open(t.Context(), testURL(t), nil)
	if !errors.Is(err, pgstore.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: error = %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "9999") {
		t.Errorf("error %q does not name the database's schema version", err)
	}
}

func TestOpenErrors(t *testing.T) {
	base := pgtest.URL(t)
	tests := []struct {
		name string
		conn string
	}{
		{"not a connection string", "postgres://user:secret@host:notaport/db"},
		{"unknown sslmode", "postgres://user:secret@127.0.0.1:5432/db?sslmode=sometimes"},
		{"nobody listening", "postgres://user:secret@127.0.0.1:1/db?connect_timeout=2"},
		{"missing CA file", withQuery(t, base, "sslmode", "verify-full", "sslrootcert", "/nonexistent/ca.pem")},
	}
	for _, tt := range tests {
		s, err := pgstore.Open(t.Context(), tt.conn, nil)
		if err == nil {
			s.Close()
			t.Errorf("%s: Open(%q) succeeded, want an error", tt.name, tt.conn)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error %q shows the password", tt.name, err)
		}
	}
}

// withQuery sets URL query parameters (name, value, name, value...).
func withQuery(t *testing.T, raw string, kv ...string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s: %v", pgtest.EnvURL, err)
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// TestTextPostgresCannotHold checks that agents' NUL bytes and invalid UTF-8
// are replaced rather than failing a whole batch.
func TestTextPostgresCannotHold(t *testing.T) {
	s := openTest(t)
	defer s.Close()
	ctx := t.Context()
	odd := action.Agent{ID: "odd", Name: "nul\x00name", QueueLoc: "bad\xffutf8", Mode: "daemon",
		Environment: action.Environment{OS: "li\x00nux", Addresses: []string{"10.0.0.1\x00"}},
		Tags:        map[string]string{"k\x00": "v\x00", "ok": "fine"}}
	fine := action.Agent{ID: "fine", Name: "fine", Environment: action.Environment{OS: "linux"}}
	if err := s.UpsertAgents(ctx, []action.Agent{odd, fine, {ID: "bad\x00id"}}); err != nil {
		t.Fatalf("UpsertAgents: %v", err)
	}
	got, err := s.Agents(ctx, store.AgentQuery{})
	if err != nil {
		t.Fatalf("Agents: %v", err)
	}
	if len(got) != 2 || got[0].ID != "fine" || got[1].ID != "odd" {
		t.Fatalf("Agents = %+v, want fine and odd", got)
	}
	o := got[1]
	if o.Name != "nul\uFFFDname" || o.QueueLoc != "bad\uFFFDutf8" || o.Environment.OS != "li\uFFFDnux" ||
		o.Tags["k\uFFFD"] != "v\uFFFD" || o.Tags["ok"] != "fine" {
		t.Errorf("odd agent = %+v, want U+FFFD in place of NUL and invalid bytes", o)
	}

	a := &action.Action{ID: 9, Name: "n", Target: "TRUE", ValidFrom: time.Now().Add(-time.Hour), ExpireAfter: time.Now().Add(time.Hour),
		Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{}`)}}}
	if err := s.CreateAction(ctx, a); err != nil {
		t.Fatalf("CreateAction: %v", err)
	}
	if err := s.CreateCommands(ctx, []action.Command{{ID: 1, Action: action.Action{ID: 9}, AgentID: "odd"},
		{ID: 2, Action: action.Action{ID: 9}, AgentID: "fine"}}); err != nil {
		t.Fatalf("CreateCommands: %v", err)
	}
	results := []action.ResultMessage{
		{AgentID: "odd", CommandID: 1, Status: action.CmdFailed, Code: "c\x00", Error: "e\xff\x00",
			Results: []action.Result{{Elements: json.RawMessage(`{"f":"\u0000 ` + "\xff" + `"}`)}}},
		{AgentID: "fine\x00", CommandID: 2, Status: action.CmdSuccess}, // a stranger: refused
		{AgentID: "odd\x00", CommandID: 77, Status: action.CmdSuccess}, // unknown: acknowledged
	}
	ack, err := s.StoreResults(ctx, results)
	if err != nil {
		t.Fatalf("StoreResults: %v", err)
	}
	if d := fmt.Sprint(ack); d != "[1 77]" {
		t.Errorf("acks = %s, want [1 77]", d)
	}
	c, err := s.Command(ctx, 1)
	if err != nil {
		t.Fatalf("Command: %v", err)
	}
	if c.Status != action.CmdFailed || c.Code != "c\uFFFD" || c.Error != "e\uFFFD\uFFFD" || len(c.Results) != 1 ||
		string(c.Results[0].Elements) != "{\"f\":\"\\u0000 \uFFFD\"}" {
		t.Errorf("command 1 = %q %q %q %s, want the odd bytes replaced", c.Status, c.Code, c.Error, c.Results[0].Elements)
	}
	if c, err := s.Command(ctx, 2); err != nil || c.Status != action.CmdSent {
		t.Errorf("command 2 = %v, %v; want still sent", c, err)
	}
}

// TestDeadlockFreeBatches stores overlapping batches in opposite orders from
// two stores at once, as two servers receiving resent results do.
func TestDeadlockFreeBatches(t *testing.T) {
	s1, s2 := openTest(t), openTest(t)
	defer s1.Close()
	defer s2.Close()
	ctx := t.Context()
	const n = 2000
	a := &action.Action{ID: 1, Name: "n", Target: "TRUE", ValidFrom: time.Now().Add(-time.Hour), ExpireAfter: time.Now().Add(time.Hour),
		Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{}`)}}}
	if err := s1.CreateAction(ctx, a); err != nil {
		t.Fatal(err)
	}
	cmds := make([]action.Command, n)
	results := make([]action.ResultMessage, n)
	for i := range cmds {
		agent := fmt.Sprintf("ag%05d", i)
		cmds[i] = action.Command{ID: uint64(i + 1), Action: action.Action{ID: 1}, AgentID: agent}
		results[i] = action.ResultMessage{AgentID: agent, CommandID: uint64(i + 1), Status: action.CmdSuccess}
	}
	if err := s1.CreateCommands(ctx, cmds); err != nil {
		t.Fatal(err)
	}
	reversed := make([]action.ResultMessage, n)
	for i := range results {
		reversed[n-1-i] = results[i]
	}
	var wg sync.WaitGroup
	acks := make([][]uint64, 2)
	for i, s := range []*pgstore.Store{s1, s2} {
		batch := results
		if i == 1 {
			batch = reversed
		}
		wg.Go(func() {
			for start := 0; start < n; start += 500 {
				ack, err := s.StoreResults(ctx, batch[start:start+500])
				if err != nil {
					t.Errorf("store %d: StoreResults: %v", i, err)
					return
				}
				acks[i] = append(acks[i], ack...)
			}
		})
	}
	wg.Wait()
	for i, ack := range acks {
		if len(ack) != n {
			t.Errorf("store %d acknowledged %d results, want all %d", i, len(ack), n)
		}
	}
	got, err := s2.Action(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Counters.Success != n || got.Counters.Sent != n {
		t.Errorf("counters = %+v, want %d successes", got.Counters, n)
	}
}

// BenchmarkStoreResults ingests 100,000 results in batches of 1,000, the
// server's hot path, into PostgreSQL. The goal is at least 50,000
// results/s.
func BenchmarkStoreResults(b *testing.B) {
	const total, batch = 100_000, 1_000
	ctx := context.Background()
	s, err := pgstore.Open(ctx, pgtest.Schema(b, 4), nil)
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

// FuzzStoreResults feeds arbitrary batches of results, as agents could send
// them, to StoreResults on PostgreSQL, and checks its rules: the first
// terminal result of a command's owner is stored, the stored, the already
// terminal-and-owned and the unknown commands are acknowledged, once, and
// nothing fails the batch.
func FuzzStoreResults(f *testing.F) {
	for _, s := range []string{
		`[]`,
		`[{"v":1,"agentid":"a1","commandid":1,"actionid":1,"status":"success","results":[{"foundanything":true,"success":true,"elements":{"x":[1]}}]}]`,
		`[{"agentid":"a2","commandid":2,"status":"failed","code":"module_failed","error":"boom"},{"agentid":"a2","commandid":2,"status":"success"}]`,
		`[{"agentid":"a9","commandid":3,"status":"success"},{"agentid":"a3","commandid":3,"status":"timeout"}]`,
		`[{"agentid":"a4","commandid":999,"status":"success"},{"agentid":"a4","commandid":0,"status":"success"}]`,
		`[{"agentid":"a5","commandid":5,"status":"sent"},{"agentid":"a5","commandid":18446744073709551615,"status":"expired"}]`,
		`[{"agentid":"a1\u0000","commandid":1,"status":"cancelled","error":"\u0000","finished":"2025-01-01T00:00:00Z"}]`,
	} {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	url := pgtest.Schema(f, 2)
	s, err := pgstore.Open(ctx, url, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	raw, err := pgxpool.New(ctx, url)
	if err != nil {
		f.Fatal(err)
	}
	defer raw.Close()
	a := &action.Action{ID: 1, Name: "fuzz", Target: "TRUE", ValidFrom: time.Unix(0, 0), ExpireAfter: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{}`)}}}
	if err := s.CreateAction(ctx, a); err != nil {
		f.Fatal(err)
	}
	owners := map[uint64]string{1: "a1", 2: "a2", 3: "a3", 4: "a4", 5: "a5"}
	var cmds []action.Command
	for id, agent := range owners {
		cmds = append(cmds, action.Command{ID: id, Action: action.Action{ID: 1}, AgentID: agent})
	}
	if err := s.CreateCommands(ctx, cmds); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var results []action.ResultMessage
		if json.Unmarshal(data, &results) != nil {
			return
		}
		if _, err := raw.Exec(ctx, `UPDATE commands SET status = 'sent', code = '', error = '', results = NULL,
			found = false, finishtime = NULL, finishtime_ns = NULL`); err != nil {
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
		winner := map[uint64]*action.ResultMessage{}
		for i := range results {
			r := &results[i]
			if owner, ok := owners[r.CommandID]; ok && r.AgentID == owner && action.IsTerminal(r.Status) && winner[r.CommandID] == nil {
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
			case w != nil && (c.Status != w.Status || !acked[c.ID]):
				t.Errorf("command %d = %q, acknowledged %v; want the first owner's result %q, acknowledged",
					c.ID, c.Status, acked[c.ID], w.Status)
			}
			delete(acked, c.ID)
		}
		for id := range acked {
			sent := false
			for _, r := range results {
				sent = sent || (r.CommandID == id && action.IsTerminal(r.Status))
			}
			if !sent {
				t.Errorf("acknowledged %d, for which no terminal result was sent", id)
			}
		}
		c := counters(t, s)
		if c.Sent != len(cmds) || c.Done+c.InFlight != c.Sent ||
			c.Success+c.Failed+c.TimeOut+c.Expired+c.Cancelled != c.Done {
			t.Errorf("counters %+v do not add up to %d commands", c, len(cmds))
		}
	})
}

// counters returns the counters of action 1.
func counters(t *testing.T, s *pgstore.Store) action.Counters {
	t.Helper()
	a, err := s.Action(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	return a.Counters
}
