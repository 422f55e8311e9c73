package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay/natsrelay"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// benchFleet is the number of agent rows in the dispatch benchmark.
const benchFleet = 10000

// benchAgents returns n agents with the attributes a real agent reports
// (addresses, modules, tags), so that reading them costs what it costs in
// production.
func benchAgents(n int) []action.Agent {
	modules := []string{"file", "netstat", "memory", "pkg", "scribe", "ping", "timedrift", "sshkey", "yara", "fswatch", "audit"}
	out := make([]action.Agent, n)
	for i := range out {
		out[i] = action.Agent{ID: agentID(i), Name: fmt.Sprintf("host-%05d.example.net", i), QueueLoc: fmt.Sprintf("linux.host-%05d", i),
			Mode: action.ModeDaemon, Version: "20261122-0.abcdef", PID: 4000 + i,
			Environment: action.Environment{Init: "systemd", Ident: "Debian 12", OS: "linux", Arch: "amd64",
				Addresses: []string{fmt.Sprintf("10.%d.%d.%d/16", i>>16&255, i>>8&255, i&255), "fe80::1/64"},
				PublicIP:  "203.0.113.7", Modules: modules},
			Tags: map[string]string{"operator": "IT", "datacenter": "dc1"}}
	}
	return out
}

// benchAction returns an action shaped like a signed investigation: a file
// search and two signatures, about 1.5 KB of JSON.
func benchAction() *action.Action {
	id, _ := NewID()
	now := time.Now()
	sig := "-----BEGIN PGP SIGNATURE-----\n\n" + strings.Repeat("wnUEABYKACcFAmXzAbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/\n", 6) + "=AbCd\n-----END PGP SIGNATURE-----\n"
	return &action.Action{ID: id, Name: "find .boto", Target: "environment->>'os'='linux'",
		Description: action.Description{Author: "Alice Investigator", Email: "alice@example.com"},
		Threat:      action.Threat{Level: "info", Family: "compliance"},
		ValidFrom:   now.Add(-time.Minute), ExpireAfter: now.Add(time.Hour),
		Operations: []action.Operation{{Module: "file",
			Parameters: json.RawMessage(`{"searches":{"s1":{"paths":["/"],"names":["^\\.boto$"],"contents":["abcdef123456"]}}}`)}},
		PGPSignatures: []string{sig, sig}, SyntaxVersion: action.SyntaxVersion, Status: action.StatusPending}
}

// newBenchScheduler returns a scheduler over a real SQLite store in a temp
// directory holding n agents, and the embedded NATS relay's in-process hub.
// Nobody subscribes to the agents' inboxes: this measures dispatch, not
// delivery.
func newBenchScheduler(b *testing.B, n int, cfg Config) (*Scheduler, store.Store) {
	b.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "mig.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	agents := benchAgents(n)
	for start := 0; start < len(agents); start += 1000 {
		if err := st.UpsertAgents(ctx, agents[start:min(len(agents), start+1000)]); err != nil {
			b.Fatal(err)
		}
	}
	rs, err := natsrelay.StartServer(natsrelay.ServerConfig{Listen: "127.0.0.1:0",
		Authenticate: func(string, string) bool { return false }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rs.Shutdown)
	hub, err := rs.NewHub(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hub.Close() })
	return New(cfg, st, hub, nil), st
}

// BenchmarkDispatch10000 measures Scheduler.Dispatch of one action to
// 10,000 agents on the embedded defaults: resolve the target, store 10,000
// commands in SQLite, send them on the embedded NATS relay, set the action
// in flight.
func BenchmarkDispatch10000(b *testing.B) {
	s, st := newBenchScheduler(b, benchFleet, Config{})
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		a := benchAction()
		if err := st.CreateAction(ctx, a); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n, err := s.Dispatch(ctx, a)
		if err != nil {
			b.Fatal(err)
		}
		if n != benchFleet {
			b.Fatalf("dispatched %d commands, want %d", n, benchFleet)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/dispatch")
}
