package e2e

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/pgstore"
	"github.com/migplatform/mig/internal/store/pgstore/pgtest"
	"github.com/migplatform/mig/internal/store/sqlitestore"
	"github.com/migplatform/mig/internal/target"
)

// TestTargetDifferential is a differential fuzz between the two places a
// target is evaluated: the server's store, which compiles it to SQL to pick
// the agents it sends commands to, and each agent, which evaluates the
// signed target against its own attributes (target.Eval) before running
// anything. Random targets over a fleet with varied attributes (case
// variants, non-ASCII, LIKE metacharacters, missing tags, empty values)
// must select the same agents on SQLite and on PostgreSQL as the agents
// select themselves. A disagreement is a misaddressed action: agents that
// the investigator targeted never get it, or the server sends it to agents
// that then refuse it.
func TestTargetDifferential(t *testing.T) {
	stores := []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"sqlite", func(t *testing.T) store.Store {
			s, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "mig.db"), nil)
			must(t, err)
			return s
		}},
		{"postgresql", func(t *testing.T) store.Store {
			s, err := pgstore.Open(t.Context(), pgtest.Schema(t, 4), nil)
			must(t, err)
			return s
		}},
	}
	const targets = 1000
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			atk := attack(t, "target-differential", fmt.Sprintf("%d random targets on %s", targets, st.name))
			s := st.open(t)
			t.Cleanup(func() { s.Close() })
			ctx := t.Context()
			rng := rand.New(rand.NewPCG(12, uint64(len(st.name))))
			now := time.Now().UTC().Truncate(time.Second)
			must(t, s.UpsertAgents(ctx, diffFleet(rng, now)))
			must(t, s.MarkAgents(ctx, now.Add(-3*time.Minute), now.Add(-time.Hour)))
			stored, err := s.Agents(ctx, store.AgentQuery{})
			must(t, err)

			parsed, selected := 0, 0
			for range targets {
				src := randTarget(rng, 3)
				e, err := target.Parse(src)
				if err != nil {
					continue
				}
				parsed++
				var want []string
				for i := range stored {
					if target.Eval(e, &stored[i]) {
						want = append(want, stored[i].ID)
					}
				}
				got, err := s.Agents(ctx, store.AgentQuery{Target: e})
				if err != nil {
					atk.executed("target %q: the store fails: %v", src, err)
					continue
				}
				var gotIDs []string
				for _, a := range got {
					gotIDs = append(gotIDs, a.ID)
				}
				slices.Sort(want)
				slices.Sort(gotIDs)
				if !slices.Equal(want, gotIDs) {
					atk.executed("target %q: the store selects %q, the agents select %q", src, gotIDs, want)
					return
				}
				if n, err := s.CountAgents(ctx, e); err != nil || n != len(want) {
					atk.executed("target %q: CountAgents = %d, %v; the agents select %d", src, n, err, len(want))
					return
				}
				if len(want) > 0 && len(want) < len(stored) {
					selected++
				}
			}
			// The generator must exercise the comparison: most targets
			// parse, and many select some agents but not all.
			if parsed < targets/2 || selected < targets/10 {
				t.Fatalf("of %d random targets %d parsed and %d selected some but not all agents: the generator is too weak", targets, parsed, selected)
			}
			t.Logf("%s: %d targets parsed, %d selected some but not all of %d agents", st.name, parsed, selected, len(stored))
			atk.refused()
		})
	}
}

// Attribute values of the fleet and of the targets: they overlap, so that
// comparisons match, and differ by case, accents, folding and LIKE
// metacharacters, where SQL and Go most easily disagree.
var (
	diffNames  = []string{"web1", "WEB1", "db-prod", "db_prod", "db%prod", "Ünïcode", "ſtrange", "straße", "", "x'y", "a b", "web10", "WEB-10"}
	diffOS     = []string{"linux", "Linux", "darwin", "windows", ""}
	diffArch   = []string{"amd64", "arm64", "386"}
	diffIdent  = []string{"Debian 12", "debian 12", "Ubuntu 24.04", "", "Red Hat 9.4"}
	diffModes  = []string{action.ModeDaemon, action.ModeCheckIn, "Daemon"}
	diffVers   = []string{"1.0.0", "1.10.0", "1.9.0", "2.0.0-rc1", ""}
	diffTagVal = []string{"IT", "it", "Sec", "", "ops%", "ops_1", "ümlaut"}
	diffTagKey = []string{"operator", "team", "Operator", "missing"}
)

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

// diffFleet makes 60 agents with attributes drawn from the lists above,
// heartbeats spread over the online, idle and offline windows, and tags
// present or not.
func diffFleet(rng *rand.Rand, now time.Time) []action.Agent {
	var out []action.Agent
	for i := range 60 {
		a := action.Agent{
			ID:            fmt.Sprintf("agent-%02d-%s", i, strings.ToLower(pick(rng, diffArch))),
			Name:          pick(rng, diffNames),
			QueueLoc:      pick(rng, diffOS) + "." + pick(rng, diffNames),
			Mode:          pick(rng, diffModes),
			Version:       pick(rng, diffVers),
			PID:           []int{0, 1, 99, 100, 101, 65535, 1 << 30}[rng.IntN(7)],
			StartTime:     now.Add(-time.Duration(rng.IntN(72)) * time.Hour),
			HeartbeatTime: now.Add(-time.Duration(rng.IntN(120)) * time.Minute),
			Environment: action.Environment{
				Init: pick(rng, []string{"systemd", "upstart", ""}), Ident: pick(rng, diffIdent),
				OS: pick(rng, diffOS), Arch: pick(rng, diffArch), IsProxied: rng.IntN(2) == 0,
				Proxy: pick(rng, []string{"", "http://proxy:3128"}), PublicIP: pick(rng, []string{"", "192.0.2.1", "2001:db8::1"}),
			},
		}
		if rng.IntN(4) > 0 {
			a.Tags = map[string]string{}
			for range 1 + rng.IntN(2) {
				a.Tags[pick(rng, diffTagKey[:3])] = pick(rng, diffTagVal)
			}
		}
		out = append(out, a)
	}
	return out
}

// randTarget returns a random target of depth at most depth, in MIG's
// syntax; some are invalid (a string for pid, a bad time), which Parse
// refuses and the test skips.
func randTarget(rng *rand.Rand, depth int) string {
	if depth > 0 {
		switch rng.IntN(6) {
		case 0:
			return randTarget(rng, depth-1) + " AND " + randTarget(rng, depth-1)
		case 1:
			return randTarget(rng, depth-1) + " OR " + randTarget(rng, depth-1)
		case 2:
			return "NOT (" + randTarget(rng, depth-1) + ")"
		case 3:
			return "(" + randTarget(rng, depth-1) + ")"
		}
	}
	field, values := randField(rng)
	switch rng.IntN(10) {
	case 0:
		return field + " IS NULL"
	case 1:
		return field + " IS NOT NULL"
	case 2, 3:
		n := 1 + rng.IntN(4)
		var vs []string
		for range n {
			vs = append(vs, pick(rng, values))
		}
		not := ""
		if rng.IntN(3) == 0 {
			not = "NOT "
		}
		return field + " " + not + "IN (" + strings.Join(vs, ",") + ")"
	case 4, 5:
		if !strings.HasPrefix(values[0], "'") {
			break
		}
		not := ""
		if rng.IntN(3) == 0 {
			not = "NOT "
		}
		return field + " " + not + "LIKE " + randLike(rng, pick(rng, values))
	case 6:
		if rng.IntN(8) == 0 {
			return "TRUE"
		}
	}
	return field + " " + pick(rng, []string{"=", "!=", "<>", "<", "<=", ">", ">="}) + " " + pick(rng, values)
}

// randLike turns a quoted value into a LIKE pattern: characters replaced by
// _ or runs by %, or % around it.
func randLike(rng *rand.Rand, quoted string) string {
	s := []rune(strings.TrimSuffix(strings.TrimPrefix(quoted, "'"), "'"))
	var b strings.Builder
	b.WriteString("'")
	if rng.IntN(2) == 0 {
		b.WriteString("%")
	}
	for _, r := range s {
		switch rng.IntN(6) {
		case 0:
			b.WriteString("_")
		case 1:
			b.WriteString("%")
		default:
			b.WriteRune(r)
		}
	}
	if rng.IntN(2) == 0 {
		b.WriteString("%")
	}
	b.WriteString("'")
	return b.String()
}

// randField returns a field and quoted values to compare it with.
func randField(rng *rand.Rand) (string, []string) {
	q := func(list []string) []string {
		out := make([]string, len(list))
		for i, s := range list {
			out[i] = "'" + strings.ReplaceAll(s, "'", "''") + "'"
		}
		return out
	}
	now := time.Now().UTC()
	times := []string{"'" + now.Add(-30*time.Minute).Format(time.RFC3339) + "'", "'" + now.Add(-24*time.Hour).Format("2006-01-02 15:04:05") + "'",
		"'" + now.Format("2006-01-02") + "'", "'not a time'"}
	switch rng.IntN(14) {
	case 0:
		return "name", q(diffNames)
	case 1:
		return "id", q([]string{"agent-07-amd64", "agent-3", "agent-", "AGENT-07-AMD64", "agent-59-arm64"})
	case 2:
		return "queueloc", q([]string{"linux.web1", "Linux.WEB1", "darwin.", "windows.db%prod"})
	case 3:
		return "mode", q(diffModes)
	case 4:
		return "version", q(diffVers)
	case 5:
		return "pid", []string{"0", "1", "100", "101", "'100'", "65535", "-1", "9223372036854775807", "'x'"}
	case 6:
		return "status", q([]string{action.AgentOnline, action.AgentIdle, action.AgentOffline, "Online"})
	case 7:
		return pick(rng, []string{"heartbeattime", "starttime"}), times
	case 8:
		return "environment->>'os'", q(diffOS)
	case 9:
		return "environment->>'ident'", q(diffIdent)
	case 10:
		return "environment->>'isproxied'", q([]string{"true", "false", "TRUE", ""})
	case 11:
		return pick(rng, []string{"environment->>'arch'", "environment->>'init'", "environment->>'publicip'", "environment->>'proxy'"}),
			q([]string{"amd64", "arm64", "systemd", "", "192.0.2.1", "2001:db8::1", "http://proxy:3128"})
	default:
		return "tags->>'" + pick(rng, diffTagKey) + "'", q(diffTagVal)
	}
}
