package target_test

import (
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/target"
)

func TestEval(t *testing.T) {
	hb := time.Date(2024, 5, 1, 10, 0, 0, 500_000_000, time.UTC)
	agent := &action.Agent{
		ID: "a1", Name: "db1.prod", QueueLoc: "linux.db1.a1", Mode: action.ModeDaemon,
		Version: "20240501-0.abc", PID: 1234, Status: action.AgentOnline,
		StartTime: hb.Add(-time.Hour), HeartbeatTime: hb.In(time.FixedZone("X", 3600)),
		Environment: action.Environment{Ident: "Ubuntu 22.04", OS: "linux", Arch: "amd64", IsProxied: true},
		Tags:        map[string]string{"operator": "IT", "odd": "50%_[x]*?"},
	}
	tests := []struct {
		target string
		want   bool
	}{
		{"TRUE", true},
		{"NOT TRUE", false},
		{"status='online'", true},
		{"status='Online'", false},
		{"status IN ('idle','online')", true},
		{"status NOT IN ('idle','online')", false},
		{"name LIKE '%db%'", true},
		{"name LIKE '%DB%'", false},
		{"name LIKE 'db_.prod'", true},
		{"name LIKE 'db__prod'", true},
		{"name LIKE 'db_prod'", false},
		{"name LIKE 'db1.pro'", false},
		{"name LIKE 'db1.prod%'", true},
		{"name LIKE '%%%'", true},
		{"name LIKE 'd%d'", true},
		{"name LIKE 'd%d%d'", false},
		{"name LIKE 'db1*'", false},
		{"name LIKE 'db[1].prod'", false},
		{"name NOT LIKE '%db%'", false},
		{`tags->>'odd' LIKE '50\%\_[x]*?'`, true},
		{`tags->>'odd' LIKE '50\%\__x%'`, true},
		{`tags->>'odd' LIKE '50\%\_x%'`, false},
		{`tags->>'odd' LIKE '5\0%'`, true},
		{`tags->>'odd' LIKE '%[x]%'`, true},
		{"queueloc LIKE 'linux.%'", true},
		{"environment->>'os' IN ('linux','darwin') AND mode='daemon'", true},
		{"environment->>'os' IN ('darwin') OR mode='checkin'", false},
		{"environment->>'ident' LIKE 'Ubuntu%'", true},
		{"environment->>'isproxied'='true'", true},
		{"environment->>'proxy'=''", true},
		{"environment->>'proxy' IS NULL", false},
		{"tags->>'operator'='IT'", true},
		{"tags->>'operator'='it'", false},
		{"tags->>'operator' IS NOT NULL", true},
		// A missing tag is NULL: neither a comparison nor its negation holds.
		{"tags->>'missing'='x'", false},
		{"tags->>'missing'!='x'", false},
		{"NOT tags->>'missing'='x'", false},
		{"tags->>'missing' NOT IN ('x')", false},
		{"tags->>'missing' NOT LIKE 'x%'", false},
		{"tags->>'missing' IS NULL", true},
		{"tags->>'missing'='x' OR TRUE", true},
		{"NOT (tags->>'missing'='x' AND status='offline')", true},
		{"NOT (tags->>'missing'='x' AND status='online')", false},
		{"NOT (tags->>'missing'='x' OR status='online')", false},
		{"pid > 100", true},
		{"pid > 1234", false},
		{"pid >= 1234", true},
		{"pid = 1234 AND pid <> 5", true},
		{"pid IN (1, 1234)", true},
		{"pid < 200", false}, // numeric, not "1234" < "200"
		{"version > '2024'", true},
		{"version < '20240501-0.abd'", true},
		{"id IN ('a1','b2')", true},
		{"NOT (name LIKE 'x%') OR (pid > 100 AND environment->>'arch'='amd64')", true},
		{"heartbeattime = '2024-05-01T10:00:00.5Z'", true},
		{"heartbeattime = '2024-05-01T12:00:00.5+02:00'", true},
		{"heartbeattime > '2024-05-01T10:00:00.499999999Z'", true},
		{"heartbeattime > '2024-05-01T10:00:00.5Z'", false},
		{"heartbeattime < '2024-05-02'", true},
	}
	for _, tt := range tests {
		e, err := target.Parse(tt.target)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.target, err)
		}
		if got := target.Eval(e, agent); got != tt.want {
			t.Errorf("Eval(%q) = %v, want %v", tt.target, got, tt.want)
		}
	}
	if target.Eval(&target.True{}, nil) {
		t.Errorf("Eval(TRUE, nil agent) = true, want false")
	}
}

// TestEvalLikeLong checks a pattern that would take exponential time with
// naive backtracking.
func TestEvalLikeLong(t *testing.T) {
	agent := &action.Agent{Name: strings.Repeat("a", 1000)}
	tests := []struct {
		pattern string
		want    bool
	}{
		{strings.Repeat("%a", 100) + "%b", false},
		{strings.Repeat("%a", 100) + "%", true},
		{strings.Repeat("_", 1000), true},
		{strings.Repeat("_", 999), false},
	}
	for _, tt := range tests {
		e, err := target.Parse("name LIKE '" + tt.pattern + "'")
		if err != nil {
			t.Fatal(err)
		}
		if got := target.Eval(e, agent); got != tt.want {
			t.Errorf("Eval(name LIKE %.30q...) = %v, want %v", tt.pattern, got, tt.want)
		}
	}
}
