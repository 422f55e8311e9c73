package target_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/migplatform/mig/internal/target"
)

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		in   string
		want string // canonical String
	}{
		{"status='online'", "status='online'"},
		{"name LIKE '%db%'", "name LIKE '%db%'"},
		{"environment->>'os' IN ('linux','darwin') AND mode='daemon'",
			"environment->>'os' IN ('linux','darwin') AND mode='daemon'"},
		{"tags->>'operator'='IT'", "tags->>'operator'='IT'"},
		{"queueloc LIKE 'linux.%'", "queueloc LIKE 'linux.%'"},
		{"id IN ('a1','b2')", "id IN ('a1','b2')"},
		{"NOT (name LIKE 'x%') OR (pid > 100 AND environment->>'arch'='amd64')",
			"NOT name LIKE 'x%' OR pid>100 AND environment->>'arch'='amd64'"},
		{"environment->>'ident' LIKE 'Ubuntu%'", "environment->>'ident' LIKE 'Ubuntu%'"},
		{"environment->'os' = 'linux'", "environment->>'os'='linux'"},
		{"  TRUE  ", "TRUE"},
		{"true and not true", "TRUE AND NOT TRUE"},
		{"Name <> 'x'", "name!='x'"},
		{"name != 'x'", "name!='x'"},
		{"pid<=5 or pid>=7 or pid<1 or pid>9", "pid<=5 OR pid>=7 OR pid<1 OR pid>9"},
		{"pid = '42'", "pid=42"},
		{"pid IN (007, 8)", "pid IN (7,8)"},
		{"name NOT IN ('a')", "name NOT IN ('a')"},
		{"name NOT LIKE 'a%'", "name NOT LIKE 'a%'"},
		{"tags->>'x' IS NULL", "tags->>'x' IS NULL"},
		{"tags->>'x' is not null", "tags->>'x' IS NOT NULL"},
		{"name = 'it''s'", "name='it''s'"},
		{"name = ''", "name=''"},
		{"tags->>'' = 'v'", "tags->>''='v'"},
		{"name='a;b -- c /* d */'", "name='a;b -- c /* d */'"},
		{"name='line\nbreak'", "name='line\nbreak'"},
		{"((status='online'))", "status='online'"},
		{"(status='a' AND mode='b') AND version='c'", "status='a' AND mode='b' AND version='c'"},
		{"status='a' AND (mode='b' OR version='c')", "status='a' AND (mode='b' OR version='c')"},
		{"(status='a' OR mode='b') OR version='c'", "status='a' OR mode='b' OR version='c'"},
		{"NOT (status='a' AND mode='b')", "NOT (status='a' AND mode='b')"},
		{"NOT NOT status='a'", "NOT NOT status='a'"},
		{"heartbeattime > '2024-05-01T10:00:00Z'", "heartbeattime>'2024-05-01T10:00:00Z'"},
		{"starttime >= '2024-05-01'", "starttime>='2024-05-01'"},
		{"starttime < '2024-05-01 10:00:00.123+02:00'", "starttime<'2024-05-01 10:00:00.123+02:00'"},
		{"name='\t\u00e9\u6f22'", "name='\t\u00e9\u6f22'"},
		{"name=" + quoteTarget(strings.Repeat("x", target.MaxStringLen)), "name=" + quoteTarget(strings.Repeat("x", target.MaxStringLen))},
		{strings.Repeat("(", target.MaxDepth) + "TRUE" + strings.Repeat(")", target.MaxDepth), "TRUE"},
		{strings.Repeat("NOT ", target.MaxDepth) + "TRUE", strings.TrimSpace(strings.Repeat("NOT ", target.MaxDepth)) + " TRUE"},
	}
	for _, tt := range tests {
		e, err := target.Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := e.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		again, err := target.Parse(e.String())
		if err != nil {
			t.Errorf("Parse(%q) of the canonical form: %v", e.String(), err)
			continue
		}
		if diff := cmp.Diff(e, again); diff != "" {
			t.Errorf("Parse(%q) and Parse of its String differ (-first +again):\n%s", tt.in, diff)
		}
	}
}

func quoteTarget(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func TestParseTree(t *testing.T) {
	name := target.Field{Column: "name"}
	tests := []struct {
		in   string
		want target.Expr
	}{
		{"environment->>'os' IN ('linux','darwin') AND mode='daemon'", &target.And{Terms: []target.Expr{
			&target.In{Field: target.Field{Column: "environment", Key: "os"}, Values: []target.Value{{Str: "linux"}, {Str: "darwin"}}},
			&target.Compare{Field: target.Field{Column: "mode"}, Op: target.OpEq, Value: target.Value{Str: "daemon"}},
		}}},
		{"NOT name LIKE 'x%' OR pid > 100 AND tags->>'a' IS NOT NULL", &target.Or{Terms: []target.Expr{
			&target.Not{X: &target.Like{Field: name, Pattern: "x%"}},
			&target.And{Terms: []target.Expr{
				&target.Compare{Field: target.Field{Column: "pid"}, Op: target.OpGt, Value: target.Value{Int: 100, IsInt: true}},
				&target.IsNull{Field: target.Field{Column: "tags", Key: "a"}, Not: true},
			}},
		}}},
		{"name NOT IN ('a''b') OR TRUE", &target.Or{Terms: []target.Expr{
			&target.In{Field: name, Not: true, Values: []target.Value{{Str: "a'b"}}},
			&target.True{},
		}}},
	}
	for _, tt := range tests {
		got, err := target.Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		in    string
		pos   int
		token string // the offending token; "" at the end of the target
		msg   string // a fragment of the message
	}{
		{"1=1", 1, "1", "expected a field name"},
		{"name='x'; DROP TABLE agents", 9, ";", "semicolons"},
		{"name = ", 8, "", "expected a value"},
		{"name =", 7, "", "expected a value"},
		{"hostname='x'", 1, "hostname", "unknown field"},
		{"agents.name='x'", 1, "agents", "unknown field"},
		{"name='x", 6, "'x", "unterminated string"},
		{"name='it''s", 6, "'it''s", "unterminated string"},
		{"environment->>os='linux'", 15, "os", "quoted string"},
		{"environment='x'", 12, "=", "needs a key"},
		{"environment->>'addresses'='x'", 15, "'addresses'", "unknown environment key"},
		{"name->>'x'='y'", 5, "->>", "expected an operator"},
		{"name='x' -- comment", 10, "--", "comments"},
		{"name='x' /* c */", 10, "/*", "comments"},
		{"name='x' AND", 13, "", "expected a field name"},
		{"name='x' name='y'", 10, "name", "expected AND, OR"},
		{"(name='x'", 10, "", "expected )"},
		{"name='x')", 9, ")", "expected AND, OR"},
		{"name IN 'x'", 9, "'x'", "expected ( after IN"},
		{"name IN ()", 10, ")", "expected a value"},
		{"name IN ('a' 'b')", 14, "'b'", "expected , or )"},
		{"name IN ('a',)", 14, ")", "expected a value"},
		{"name LIKE x", 11, "x", "quoted pattern"},
		{`name LIKE 'x\'`, 11, `'x\'`, "backslash"},
		{"name NOT = 'x'", 10, "=", "expected IN or LIKE"},
		{"name IS 'x'", 9, "'x'", "expected NULL"},
		{"name = 12", 8, "12", "quoted string"},
		{"pid = 'abc'", 7, "'abc'", "integer"},
		{"pid = '-1'", 7, "'-1'", "integer"},
		{"pid = 99999999999999999999", 7, "99999999999999999999", "out of range"},
		{"pid = 12abc", 7, "12abc", "malformed number"},
		{"pid = 1.5", 7, "1.5", "malformed number"},
		{"pid = -1", 7, "-", "unexpected character"},
		{"pid LIKE '1%'", 5, "LIKE", "text fields"},
		{"heartbeattime LIKE '2024%'", 15, "LIKE", "text fields"},
		{"heartbeattime > 'yesterday'", 17, "'yesterday'", "timestamp"},
		{"heartbeattime > '0000-01-01T00:00:00+01:00'", 17, "'0000-01-01T00:00:00+01:00'", "0000-9999"},
		{"name = \"x\"", 8, "\"", "unexpected character"},
		{"name = 'x' && mode = 'y'", 12, "&", "unexpected character"},
		{"name = 'a\x00b'", 10, `\x00`, "NUL"},
		{"name = 'a\xffb'", 10, `\xff`, "UTF-8"},
		{"starttime < heartbeattime", 13, "heartbeattime", "expected a value"},
		{"FALSE", 1, "FALSE", "unknown field"},
		{"", 1, "", "empty"},
		{"   ", 4, "", "empty"},
		{"café='x'", 4, "é", "unexpected character"},
		{"é='x' AND", 1, "é", "unexpected character"},
		{"(a)", 2, "a", "unknown field"},
		{"name=" + quoteTarget(strings.Repeat("x", target.MaxStringLen+1)), 6, "'" + strings.Repeat("x", 39) + "...", "longer than the limit"},
		{strings.Repeat("(", target.MaxDepth+1) + "TRUE" + strings.Repeat(")", target.MaxDepth+1), target.MaxDepth + 1, "(", "nesting"},
		{strings.Repeat("NOT ", target.MaxDepth+1) + "TRUE", 4*target.MaxDepth + 1, "NOT", "nesting"},
		{"name='x' OR " + strings.Repeat(" ", target.MaxLen), target.MaxLen + 1, strings.Repeat(" ", 12), "more than the limit"},
	}
	for _, tt := range tests {
		e, err := target.Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%.60q) = %v, want an error", tt.in, e)
			continue
		}
		if !errors.Is(err, target.ErrSyntax) {
			t.Errorf("Parse(%.60q) error %v does not wrap ErrSyntax", tt.in, err)
		}
		var se *target.SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%.60q) error %T is not a *SyntaxError", tt.in, err)
			continue
		}
		if se.Pos != tt.pos || se.Token != tt.token {
			t.Errorf("Parse(%.60q) error at position %d near %q, want position %d near %q (%v)",
				tt.in, se.Pos, se.Token, tt.pos, tt.token, err)
		}
		if !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("Parse(%.60q) error message %q, want it to contain %q", tt.in, se.Msg, tt.msg)
		}
		if !strings.Contains(err.Error(), "position") {
			t.Errorf("Parse(%.60q) error %q does not name the position", tt.in, err)
		}
	}
}
