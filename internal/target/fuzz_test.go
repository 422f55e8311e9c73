package target_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/migplatform/mig/internal/target"
)

// fuzzSeeds are the seed corpus of both fuzz targets.
func fuzzSeeds(f *testing.F) {
	for _, s := range compileTargets {
		f.Add(s)
	}
	for _, s := range []string{
		"1=1", "name='x'; DROP TABLE agents", "name = ", "name='x", "environment->>os='x'",
		"name='x' -- c", "name='x' /* c */", "(((", "NOT", "name IN (", "pid = 99999999999999999999",
		"tags->>'a'->>'b'='c'", "heartbeattime > '2024-02-30'", "name LIKE '\\'", "é",
	} {
		f.Add(s)
	}
}

func FuzzParse(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		e, err := target.Parse(s)
		if err != nil {
			if !errors.Is(err, target.ErrSyntax) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrSyntax", s, err)
			}
			return
		}
		canon := e.String()
		again, err := target.Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) gave %q, which does not parse: %v", s, canon, err)
		}
		if got := again.String(); got != canon {
			t.Fatalf("Parse(%q): canonical %q re-parses to %q", s, canon, got)
		}
		if diff := cmp.Diff(e, again); diff != "" {
			t.Fatalf("Parse(%q) and Parse(%q) differ (-first +again):\n%s", s, canon, diff)
		}
	})
}

func FuzzEvalCompile(f *testing.F) {
	fuzzSeeds(f)
	agents := fixtureAgents()
	db := openAgents(f, agents)
	f.Fuzz(func(t *testing.T, s string) {
		e, err := target.Parse(s)
		if err != nil {
			return
		}
		for _, d := range []target.Dialect{target.SQLite, target.Postgres} {
			where, args, err := target.Compile(e, d, 3)
			if err != nil {
				t.Fatalf("Compile(%q, %v): %v", s, d, err)
			}
			if d == target.SQLite {
				if n := strings.Count(where, "?"); n != len(args) {
					t.Fatalf("Compile(%q, SQLite): %d placeholders, %d args", s, n, len(args))
				}
				continue
			}
			for i := range args {
				if !strings.Contains(where, "$"+strconv.Itoa(3+i)) {
					t.Fatalf("Compile(%q, Postgres) = %s: no placeholder for argument %d", s, where, i+1)
				}
			}
			if strings.Contains(where, "$"+strconv.Itoa(3+len(args))) {
				t.Fatalf("Compile(%q, Postgres) = %s: placeholder beyond %d arguments", s, where, len(args))
			}
		}
		if got, want := sqliteIDs(t, db, e), evalIDs(e, agents); !slices.Equal(got, want) {
			t.Fatalf("target %q: SQLite selects %q, Eval selects %q", s, got, want)
		}
	})
}
