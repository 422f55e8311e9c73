package target_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	_ "modernc.org/sqlite"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/target"
)

// fixtureAgents returns agents whose attributes exercise the corners of the
// language: case, wildcard and GLOB metacharacters in values, odd tag keys,
// missing tags, fractional-second times and the zero time.
func fixtureAgents() []action.Agent {
	hb := time.Date(2024, 5, 1, 10, 0, 0, 500_000_000, time.UTC)
	return []action.Agent{
		{
			ID: "a1", Name: "db1.prod", QueueLoc: "linux.db1.a1", Mode: action.ModeDaemon,
			Version: "20240501-0.abc", PID: 1234, Status: action.AgentOnline,
			StartTime: hb.Add(-time.Hour), HeartbeatTime: hb,
			Environment: action.Environment{Init: "systemd", Ident: "Ubuntu 22.04", OS: "linux",
				Arch: "amd64", IsProxied: true, Proxy: "http://proxy:3128", PublicIP: "203.0.113.5"},
			Tags: map[string]string{"operator": "IT", "env": "prod"},
		},
		{
			ID: "a2", Name: "DB2", QueueLoc: "darwin.db2.a2", Mode: action.ModeCheckIn,
			Version: "20231201-0.def", PID: 100, Status: action.AgentIdle,
			StartTime: hb.Add(-48 * time.Hour), HeartbeatTime: hb.Add(-time.Hour + 1),
			Environment: action.Environment{OS: "darwin", Arch: "arm64", Ident: "macOS 14"},
			Tags:        map[string]string{"operator": "it"},
		},
		{
			ID: "a3", Name: "web_1", QueueLoc: "windows.web_1.a3", Mode: action.ModeDaemon,
			Version: "20240501-0.abc", PID: 0, Status: action.AgentOffline,
			Environment: action.Environment{OS: "windows", Arch: "amd64"},
		},
		{
			ID: "a4", Name: `a*b?c[d]e%f_g\h'i`, QueueLoc: "linux.weird.a4", Mode: action.ModeFleetSim,
			Version: "1", PID: 99999, Status: action.AgentOnline,
			StartTime: hb, HeartbeatTime: hb.Add(time.Nanosecond),
			Environment: action.Environment{OS: "linux", Arch: "386", Ident: "Debian 12", Init: "sysvinit"},
			Tags: map[string]string{`we"ird.key\`: "v", "": "empty", "$.x[0]": "dollar",
				"operator": "IT ops", "sp ace": "a'b"},
		},
		{
			ID: "a5", Name: "café-δ", QueueLoc: "linux.cafe.a5", Mode: action.ModeDaemon,
			Version: "20240601-1.xyz", PID: 101, Status: action.AgentOnline,
			StartTime: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Hour), HeartbeatTime: hb.Add(time.Hour),
			Environment: action.Environment{OS: "linux", Arch: "arm64", Ident: "Ubuntu 24.04", IsProxied: false,
				PublicIP: "198.51.100.7"},
			Tags: map[string]string{"operator": "", "env": "dev"},
		},
	}
}

// compileTargets are targets whose SQL selection must equal Eval's.
var compileTargets = []string{
	"TRUE",
	"NOT TRUE",
	"status='online'",
	"status IN ('online','idle')",
	"name LIKE '%db%'",
	"name LIKE '%DB%'",
	"name LIKE 'db_.prod'",
	"name LIKE 'DB_'",
	"name LIKE 'caf_-_'",
	"name LIKE '%*%'",
	"name LIKE '%?%'",
	"name LIKE '%[d]%'",
	"name LIKE '%]%'",
	"name LIKE '%[%'",
	`name LIKE '%\%%'`,
	`name LIKE '%\_%'`,
	`name LIKE '%\\%'`,
	`name LIKE 'a\*b%'`,
	"name LIKE '%''%'",
	"name NOT LIKE '%b%'",
	"name LIKE '%'",
	"name LIKE ''",
	"queueloc LIKE 'linux.%'",
	"id IN ('a1','b2')",
	"id NOT IN ('a1','a3')",
	"environment->>'os' IN ('linux','darwin') AND mode='daemon'",
	"environment->>'os' NOT IN ('linux')",
	"tags->>'operator'='IT'",
	"tags->>'operator'!='IT'",
	"NOT tags->>'operator'='IT'",
	"tags->>'operator' NOT IN ('IT')",
	"tags->>'operator' IS NULL",
	"tags->>'operator' IS NOT NULL",
	"tags->>'operator' IS NULL OR pid>1000",
	"NOT (tags->>'operator' LIKE 'IT%')",
	"tags->>'operator' NOT LIKE 'IT%'",
	"tags->>'operator'=''",
	"tags->>'operator'<'J'",
	`tags->>'we"ird.key\'='v'`,
	"tags->>''='empty'",
	"tags->>'$.x[0]'='dollar'",
	"tags->>'sp ace'='a''b'",
	"tags->>'env' IN ('prod','dev') AND NOT tags->>'operator'='it'",
	"NOT (name LIKE 'x%') OR (pid > 100 AND environment->>'arch'='amd64')",
	"environment->>'ident' LIKE 'Ubuntu%'",
	"environment->'os'='linux'",
	"environment->>'isproxied'='true'",
	"environment->>'isproxied'='false'",
	"environment->>'isproxied'!='true'",
	"environment->>'proxy'=''",
	"environment->>'proxy' IS NULL",
	"environment->>'proxy' IS NOT NULL",
	"environment->>'init'>'sys'",
	"environment->>'publicip' LIKE '198.%'",
	"pid > 100",
	"pid >= 100",
	"pid = 0",
	"pid <> 100",
	"pid IN (0, 100, 99999)",
	"pid NOT IN (1234)",
	"pid='101'",
	"name < 'a'",
	"name > 'caf'",
	"name <= 'db1.prod'",
	"version >= '20240101'",
	"heartbeattime > '2024-05-01T10:00:00Z'",
	"heartbeattime = '2024-05-01T10:00:00.5Z'",
	"heartbeattime = '2024-05-01T10:00:00.500000001Z'",
	"heartbeattime < '2024-05-01T10:00:00.500000001Z'",
	"heartbeattime >= '2024-05-01 12:00:00.5+02:00'",
	"heartbeattime IN ('2024-05-01T10:00:00.5Z','2024-05-01T11:00:00.5Z')",
	"heartbeattime < '2024-05-01'",
	"heartbeattime > '2024-05-01T09:00:00'",
	"starttime < '0002-01-01'",
	"starttime = '0001-01-01T00:00:00Z'",
	"starttime IS NULL",
	"heartbeattime IS NOT NULL",
	"(status='online' OR status='idle') AND NOT (mode='checkin' OR pid<50)",
	"NOT NOT NOT status='online'",
	"TRUE AND tags->>'missing'='x'",
	"TRUE OR tags->>'missing'='x'",
	"NOT (TRUE AND tags->>'missing'='x')",
	"NOT (tags->>'missing'='x' OR status='offline')",
	"nAmE like '%1' and NOT Mode = 'daemon' or ID in ('a5')",
}

// openAgents returns an in-memory SQLite database holding the agents in an
// agents table laid out as Compile documents, times in time.RFC3339Nano.
func openAgents(t testing.TB, agents []action.Agent) *sql.DB {
	return openAgentsTimeFormat(t, agents, time.RFC3339Nano)
}

// openAgentsTimeFormat is openAgents with times stored in layout, which must
// be RFC 3339 in UTC, with or without trailing zeros in the fraction.
func openAgentsTimeFormat(t testing.TB, agents []action.Agent, layout string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	db.SetMaxOpenConns(1) // one connection: one in-memory database
	t.Cleanup(func() { db.Close() })
	const schema = `CREATE TABLE agents (
		id TEXT PRIMARY KEY, name TEXT NOT NULL, queueloc TEXT NOT NULL, mode TEXT NOT NULL,
		version TEXT NOT NULL, pid INTEGER NOT NULL, status TEXT NOT NULL,
		heartbeattime TEXT NOT NULL, starttime TEXT NOT NULL,
		environment TEXT NOT NULL, tags TEXT NOT NULL)`
	if _, err := db.Exec(schema); err != nil {
		t.Fatalf("create table: %v", err)
	}
	for _, a := range agents {
		env, err := json.Marshal(a.Environment)
		if err != nil {
			t.Fatal(err)
		}
		tags, err := json.Marshal(a.Tags)
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.Exec(`INSERT INTO agents VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
			a.ID, a.Name, a.QueueLoc, a.Mode, a.Version, a.PID, a.Status,
			a.HeartbeatTime.UTC().Format(layout), a.StartTime.UTC().Format(layout),
			string(env), string(tags))
		if err != nil {
			t.Fatalf("insert agent %s: %v", a.ID, err)
		}
	}
	return db
}

// sqliteIDs returns the IDs of the agents the compiled target selects.
func sqliteIDs(t testing.TB, db *sql.DB, e target.Expr) []string {
	t.Helper()
	where, args, err := target.Compile(e, target.SQLite, 1)
	if err != nil {
		t.Fatalf("Compile(%q, SQLite): %v", e, err)
	}
	rows, err := db.Query("SELECT id FROM agents WHERE "+where+" ORDER BY id", args...)
	if err != nil {
		t.Fatalf("query for %q: %v\nSQL: %s\nargs: %q", e, err, where, args)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("query for %q: %v", e, err)
	}
	return ids
}

// evalIDs returns the IDs of the agents Eval matches, in ID order.
func evalIDs(e target.Expr, agents []action.Agent) []string {
	ids := []string{}
	for i := range agents {
		if target.Eval(e, &agents[i]) {
			ids = append(ids, agents[i].ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestCompileSQLiteMatchesEval is the property that matters: the store and
// the agents agree on who is targeted.
func TestCompileSQLiteMatchesEval(t *testing.T) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000000000Z07:00"} {
		t.Run(layout, func(t *testing.T) { testCompileSQLiteMatchesEval(t, layout) })
	}
}

func testCompileSQLiteMatchesEval(t *testing.T, layout string) {
	agents := fixtureAgents()
	db := openAgentsTimeFormat(t, agents, layout)
	selective := 0
	for _, s := range compileTargets {
		e, err := target.Parse(s)
		if err != nil {
			t.Errorf("Parse(%q): %v", s, err)
			continue
		}
		got := sqliteIDs(t, db, e)
		want := evalIDs(e, agents)
		if !slices.Equal(got, want) {
			where, args, _ := target.Compile(e, target.SQLite, 1)
			t.Errorf("target %q: SQLite selects %q, Eval selects %q\nSQL: %s\nargs: %q", s, got, want, where, args)
		}
		if len(want) > 0 && len(want) < len(agents) {
			selective++
		}
	}
	// Guard against a fixture that makes the comparison vacuous.
	if selective < len(compileTargets)/2 {
		t.Errorf("only %d of %d targets select some but not all agents", selective, len(compileTargets))
	}
}

// TestCompileSQLiteSelects pins some selections, so that Eval and SQLite
// cannot agree on a wrong answer.
func TestCompileSQLiteSelects(t *testing.T) {
	agents := fixtureAgents()
	db := openAgents(t, agents)
	tests := []struct {
		target string
		want   []string
	}{
		{"name LIKE '%db%'", []string{"a1"}},
		{"name LIKE '%[d]%'", []string{"a4"}},
		{`name LIKE '%\%%'`, []string{"a4"}},
		{"name LIKE '%_%'", []string{"a1", "a2", "a3", "a4", "a5"}},
		{`name LIKE '%\_%'`, []string{"a3", "a4"}},
		{"name LIKE 'caf_-_'", []string{"a5"}},
		{`tags->>'we"ird.key\'='v'`, []string{"a4"}},
		{"tags->>''='empty'", []string{"a4"}},
		{"NOT tags->>'operator'='IT'", []string{"a2", "a4", "a5"}},
		{"tags->>'operator' IS NULL", []string{"a3"}},
		{"environment->>'isproxied'='true'", []string{"a1"}},
		{"environment->>'proxy'=''", []string{"a2", "a3", "a4", "a5"}},
		{"heartbeattime = '2024-05-01T10:00:00.5Z'", []string{"a1"}},
		{"heartbeattime > '2024-05-01T10:00:00.5Z'", []string{"a4", "a5"}},
		{"starttime < '0002-01-01'", []string{"a3", "a5"}},
		{"pid > 100", []string{"a1", "a4", "a5"}},
	}
	for _, tt := range tests {
		e, err := target.Parse(tt.target)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.target, err)
		}
		if got := sqliteIDs(t, db, e); !slices.Equal(got, tt.want) {
			t.Errorf("SQLite %q selects %q, want %q", tt.target, got, tt.want)
		}
		if got := evalIDs(e, agents); !slices.Equal(got, tt.want) {
			t.Errorf("Eval %q selects %q, want %q", tt.target, got, tt.want)
		}
	}
}

func TestCompilePostgres(t *testing.T) {
	tests := []struct {
		target   string
		firstArg int
		want     string
		args     []any
	}{
		{"status='online'", 1, "(status = $1)", []any{"online"}},
		{"name LIKE '%db%' AND pid>=100", 3, "((name LIKE $3) AND (pid >= $4))", []any{"%db%", int64(100)}},
		{"environment->>'os' IN ('linux','darwin') AND mode='daemon'", 2,
			"((COALESCE((environment->>$2::text), '') IN ($3,$4)) AND (mode = $5))",
			[]any{"os", "linux", "darwin", "daemon"}},
		{"tags->>'operator'<'IT'", 1, `((tags->>$1::text) COLLATE "C" < $2)`, []any{"operator", "IT"}},
		{"environment->>'isproxied'='true'", 1, "(COALESCE((environment->>$1::text), 'false') = $2)",
			[]any{"isproxied", "true"}},
		{"NOT name NOT LIKE 'x%' OR tags->>'a' IS NULL", 7, "((NOT (name NOT LIKE $7)) OR ((tags->>$8::text) IS NULL))",
			[]any{"x%", "a"}},
		{"heartbeattime > '2024-05-01 12:00:00+02:00'", 1, "(heartbeattime > $1)",
			[]any{time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)}},
		{"TRUE", 1, "(1=1)", nil},
		{"id NOT IN ('a','b')", 10, "(id NOT IN ($10,$11))", []any{"a", "b"}},
	}
	for _, tt := range tests {
		e, err := target.Parse(tt.target)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.target, err)
		}
		where, args, err := target.Compile(e, target.Postgres, tt.firstArg)
		if err != nil {
			t.Fatalf("Compile(%q, Postgres, %d): %v", tt.target, tt.firstArg, err)
		}
		if where != tt.want {
			t.Errorf("Compile(%q, Postgres, %d) = %s, want %s", tt.target, tt.firstArg, where, tt.want)
		}
		if diff := cmp.Diff(tt.args, args); diff != "" {
			t.Errorf("Compile(%q, Postgres) args (-want +got):\n%s", tt.target, diff)
		}
	}
}

func TestCompileSQLiteText(t *testing.T) {
	tests := []struct {
		target string
		want   string
		args   []any
	}{
		{"status='online'", "(status = ?)", []any{"online"}},
		{"name LIKE 'a*b?[c]%_'", "(name GLOB ?)", []any{"a[*]b[?][[]c[]]*?"}},
		{`tags->>'a"b'='x'`, "(json_extract(tags, ?) = ?)", []any{`$."a\"b"`, "x"}},
		{"pid IN (1,2)", "(pid IN (?,?))", []any{int64(1), int64(2)}},
	}
	for _, tt := range tests {
		e, err := target.Parse(tt.target)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.target, err)
		}
		where, args, err := target.Compile(e, target.SQLite, 5)
		if err != nil {
			t.Fatalf("Compile(%q, SQLite): %v", tt.target, err)
		}
		if where != tt.want {
			t.Errorf("Compile(%q, SQLite) = %s, want %s", tt.target, where, tt.want)
		}
		if diff := cmp.Diff(tt.args, args); diff != "" {
			t.Errorf("Compile(%q, SQLite) args (-want +got):\n%s", tt.target, diff)
		}
	}
}

func TestCompileInvalid(t *testing.T) {
	name := target.Field{Column: "name"}
	tests := []struct {
		name string
		e    target.Expr
		d    target.Dialect
		arg  int
	}{
		{"nil", nil, target.SQLite, 1},
		{"typed nil", (*target.And)(nil), target.SQLite, 1},
		{"empty and", &target.And{}, target.SQLite, 1},
		{"empty or", &target.Or{}, target.Postgres, 1},
		{"nil in not", &target.Not{}, target.SQLite, 1},
		{"unknown column", &target.Compare{Field: target.Field{Column: "password"}, Op: target.OpEq, Value: target.Value{Str: "x"}}, target.SQLite, 1},
		{"unknown env key", &target.IsNull{Field: target.Field{Column: "environment", Key: "addresses"}}, target.SQLite, 1},
		{"bad op", &target.Compare{Field: name, Op: "; DROP", Value: target.Value{Str: "x"}}, target.SQLite, 1},
		{"int for text", &target.Compare{Field: name, Op: target.OpEq, Value: target.Value{Int: 1, IsInt: true}}, target.SQLite, 1},
		{"string for pid", &target.Compare{Field: target.Field{Column: "pid"}, Op: target.OpEq, Value: target.Value{Str: "1"}}, target.SQLite, 1},
		{"bad time", &target.Compare{Field: target.Field{Column: "starttime"}, Op: target.OpEq, Value: target.Value{Str: "yesterday"}}, target.SQLite, 1},
		{"empty in", &target.In{Field: name}, target.SQLite, 1},
		{"like on pid", &target.Like{Field: target.Field{Column: "pid"}, Pattern: "1%"}, target.SQLite, 1},
		{"bad pattern", &target.Like{Field: name, Pattern: `x\`}, target.SQLite, 1},
		{"bad dialect", &target.True{}, target.Dialect(7), 1},
		{"postgres arg 0", &target.True{}, target.Postgres, 0},
	}
	for _, tt := range tests {
		_, _, err := target.Compile(tt.e, tt.d, tt.arg)
		if !errors.Is(err, target.ErrInvalid) {
			t.Errorf("%s: Compile error = %v, want one wrapping ErrInvalid", tt.name, err)
		}
		if target.Eval(tt.e, &fixtureAgents()[0]) && tt.d == target.SQLite {
			t.Errorf("%s: Eval of an invalid expression = true, want false", tt.name)
		}
	}
}
