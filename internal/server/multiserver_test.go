package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/client"
	_ "github.com/migplatform/mig/internal/module/file" // the actions' module
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/natsrelay"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/pgstore"
	"github.com/migplatform/mig/internal/store/pgstore/pgtest"
	"github.com/migplatform/mig/internal/target"
)

// TestSeveralServers runs two servers against one PostgreSQL database and
// one external NATS, with agents that answer every command, launches actions
// through both, stops one server in the middle of the run, and checks that
// every action was dispatched once (one command per agent), every result was
// stored once and acknowledged, and every action finished with counters that
// add up: the other server took over receiving through the NATS queue group,
// and agents resent what the stopped one had not acknowledged.
func TestSeveralServers(t *testing.T) {
	pgURL := pgtest.Schema(t, 4)
	ctx := t.Context()
	const (
		nAgents   = 30
		hubUser   = "mig-hub"
		firstRun  = 4 // actions launched before the stop, alternating servers
		secondRun = 2 // actions launched through the survivor after it
	)
	hubPass, err := relay.NewPassword()
	if err != nil {
		t.Fatal(err)
	}

	// The agents' relay credentials, and the external NATS configured with
	// them: each agent may read only its inbox and publish only as itself.
	agents := make([]*simAgent, nAgents)
	users := []*natsserver.User{{Username: hubUser, Password: hubPass}}
	for i := range agents {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		pw, err := relay.NewPassword()
		if err != nil {
			t.Fatal(err)
		}
		a := &simAgent{id: hex.EncodeToString(b[:]), name: fmt.Sprintf("ms-%02d", i), password: pw,
			unacked: map[uint64]pendingResult{}, received: map[uint64]int{}}
		agents[i] = a
		users = append(users, &natsserver.User{Username: a.id, Password: pw, Permissions: &natsserver.Permissions{
			Publish: &natsserver.SubjectPermission{Allow: []string{
				"mig.server." + relay.KindResult + "." + a.id, "mig.server." + relay.KindHeartbeat + "." + a.id}},
			Subscribe: &natsserver.SubjectPermission{Allow: []string{"mig.agent." + a.id + ".>"}},
		}})
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true, Users: users})
	if err != nil {
		t.Fatalf("NATS server: %v", err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}

	dir := t.TempDir()
	caFile, certFile, keyFile, err := EnsureDevTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string) *Server {
		cfg := DefaultConfig()
		cfg.API.Listen, cfg.API.Cert, cfg.API.Key = "127.0.0.1:0", certFile, keyFile
		cfg.Relay.URL, cfg.Relay.User, cfg.Relay.Password = ns.ClientURL(), hubUser, hubPass
		cfg.Store = pgURL
		cfg.EnrollmentTokens = []string{"multi-server-test-token"}
		srv, err := Start(ctx, cfg, testLogger(t, name))
		if err != nil {
			t.Fatalf("start server %s: %v", name, err)
		}
		return srv
	}
	srvA, srvB := start("a"), start("b")
	stoppedA := false
	t.Cleanup(func() {
		if !stoppedA {
			srvA.Close()
		}
		srvB.Close()
	})
	if got := srvA.RelayURL(); got != ns.ClientURL() {
		t.Errorf("relay URL handed to agents = %q, want the external NATS %q", got, ns.ClientURL())
	}

	// An investigator, and a client of each server.
	priv, pub, fp, err := sign.GenerateKey("Multi Server", "multi@mig.invalid")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sign.NewKeySigner(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ensureInvestigator(ctx, srvA.Store, "Multi Server", string(pub), fp); err != nil {
		t.Fatal(err)
	}
	newClient := func(srv *Server) *client.Client {
		var cc client.Config
		cc.API.URL, cc.API.CA, cc.KeySigner = srv.APIURL(), caFile, signer
		c, err := client.New(cc)
		if err != nil {
			t.Fatalf("client of %s: %v", srv.APIURL(), err)
		}
		return c
	}
	clients := []*client.Client{newClient(srvA), newClient(srvB)}

	// The agents, until the test ends.
	agentCtx, stopAgents := context.WithCancel(context.WithoutCancel(ctx))
	var agentsWG sync.WaitGroup
	t.Cleanup(func() { stopAgents(); agentsWG.Wait() })
	for _, a := range agents {
		agentsWG.Go(func() { a.run(agentCtx, t, ns.ClientURL()) })
	}

	checker, err := pgstore.Open(ctx, pgURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checker.Close() })
	online, err := target.Parse("name LIKE 'ms-%' AND status='online'")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every agent online", func() bool {
		n, err := checker.CountAgents(ctx, online)
		return err == nil && n == nAgents
	})

	launch := func(c *client.Client, i int) uint64 {
		t.Helper()
		a := &action.Action{Name: fmt.Sprintf("multi-server %d", i), Target: "name LIKE 'ms-%'",
			Operations: []action.Operation{{Module: "file",
				Parameters: json.RawMessage(`{"searches":{"s1":{"paths":["/etc"],"names":["^passwd$"]}}}`)}}}
		client.PrepareAction(a, 5*time.Minute, time.Now())
		if err := sign.SignAction(a, signer); err != nil {
			t.Fatalf("sign action %d: %v", i, err)
		}
		got, err := c.CreateAction(ctx, a)
		if err != nil {
			t.Fatalf("launch action %d: %v", i, err)
		}
		return got.ID
	}
	var ids []uint64
	for i := range firstRun {
		ids = append(ids, launch(clients[i%2], i))
	}
	// Stop server A while results are coming in: some are stored, some are
	// queued in A or in flight to it. Its relay connection goes first, as
	// when the process dies: what it received is not acknowledged.
	done := 0
	waitFor(t, 60*time.Second, "some results stored", func() bool {
		done = 0
		for _, id := range ids {
			if a, err := checker.Action(ctx, id); err == nil {
				done += a.Counters.Done
			}
		}
		return done >= nAgents
	})
	_ = srvA.hub.Close()
	srvA.Close()
	stoppedA = true
	t.Logf("server A stopped with %d of %d results stored", done, firstRun*nAgents)
	for i := range secondRun {
		ids = append(ids, launch(clients[1], firstRun+i))
	}

	waitFor(t, 90*time.Second, "every action finished", func() bool {
		for _, id := range ids {
			a, err := checker.Action(ctx, id)
			if err != nil || a.Counters.Done < nAgents || a.Status != action.StatusCompleted {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		a, err := checker.Action(ctx, id)
		if err != nil {
			t.Fatalf("Action(%d): %v", id, err)
		}
		want := action.Counters{Sent: nAgents, Done: nAgents, Success: nAgents}
		if a.Counters != want {
			t.Errorf("action %d counters = %+v, want %+v", id, a.Counters, want)
		}
		cmds, err := checker.Commands(ctx, store.CommandQuery{ActionID: id})
		if err != nil {
			t.Fatalf("Commands(%d): %v", id, err)
		}
		perAgent := map[string]int{}
		for _, c := range cmds {
			perAgent[c.AgentID]++
			if len(c.Results) != 1 || c.Results[0].FoundAnything != (c.AgentID[0]%2 == 0) {
				t.Errorf("command %d of agent %s: results %+v, want the agent's one result", c.ID, c.AgentID, c.Results)
			}
		}
		for _, ag := range agents {
			if perAgent[ag.id] != 1 {
				t.Errorf("action %d has %d commands for agent %s, want 1", id, perAgent[ag.id], ag.id)
			}
		}
	}
	// Every result is acknowledged in the end, each agent got each command.
	waitFor(t, 30*time.Second, "every result acknowledged", func() bool {
		for _, a := range agents {
			if a.pending() > 0 {
				return false
			}
		}
		return true
	})
	for _, a := range agents {
		a.mu.Lock()
		for _, id := range ids {
			if a.actions[id] == 0 {
				t.Errorf("agent %s never received a command of action %d", a.id, id)
			}
		}
		a.mu.Unlock()
	}
}

// pendingResult is a result an agent has not seen acknowledged.
type pendingResult struct {
	data []byte
	due  time.Time // when to send it (again)
}

// simAgent speaks the agent side of the relay protocol over a real relay
// connection (natsrelay.Dial): hello and heartbeats, one result per command
// after a random delay, kept and resent until the server acknowledges it.
// The real agent (internal/agent) is tested on its own; this one lets the
// test run many at the speed it needs.
type simAgent struct {
	id, name, password string

	mu       sync.Mutex
	unacked  map[uint64]pendingResult
	received map[uint64]int // command ID -> times received
	actions  map[uint64]int // action ID -> commands received
}

// resendEvery is how long an agent waits for an acknowledgement before it
// sends a result again.
const resendEvery = 300 * time.Millisecond

func (a *simAgent) pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.unacked)
}

// run connects and serves until ctx ends.
func (a *simAgent) run(ctx context.Context, t *testing.T, url string) {
	conn, err := natsrelay.Dial(ctx, a.id, relay.Credentials{URL: url, User: a.id, Password: a.password})
	if err != nil {
		t.Errorf("agent %s: dial: %v", a.name, err)
		return
	}
	defer conn.Close()
	hello := make(chan struct{}, 1)
	conn.OnConnect(func() {
		select {
		case hello <- struct{}{}:
		default:
		}
	})
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = conn.Subscribe(ctx, a.handle) })
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastBeat := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hello:
			a.heartbeat(ctx, conn, true)
			lastBeat = time.Now()
		case now := <-tick.C:
			if now.Sub(lastBeat) > time.Second {
				a.heartbeat(ctx, conn, false)
				lastBeat = now
			}
			a.mu.Lock()
			var due [][]byte
			for id, p := range a.unacked {
				if !now.Before(p.due) {
					due = append(due, p.data)
					p.due = now.Add(resendEvery)
					a.unacked[id] = p
				}
			}
			a.mu.Unlock()
			for _, d := range due {
				_ = conn.Publish(ctx, relay.KindResult, d) // kept and resent on failure
			}
		}
	}
}

func (a *simAgent) heartbeat(ctx context.Context, conn relay.Conn, hello bool) {
	data, err := action.Marshal(action.HeartbeatMessage{V: action.ProtocolVersion, Hello: hello, Agent: action.Agent{
		ID: a.id, Name: a.name, QueueLoc: "linux." + a.name, Mode: action.ModeDaemon, Version: "test", PID: 1,
		StartTime: time.Now(), Environment: action.Environment{OS: "linux", Arch: "amd64"}}})
	if err != nil {
		return
	}
	_ = conn.Publish(ctx, relay.KindHeartbeat, data)
}

// handle answers commands (once each, however often they arrive) and drops
// acknowledged results.
func (a *simAgent) handle(kind string, data []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch kind {
	case relay.KindCommand:
		m, err := action.DecodeCommand(data)
		if err != nil || m.Command.AgentID != a.id {
			return
		}
		a.received[m.Command.ID]++
		if a.received[m.Command.ID] > 1 {
			return // redelivered: the result is already kept
		}
		if a.actions == nil {
			a.actions = map[uint64]int{}
		}
		a.actions[m.Command.Action.ID]++
		res, err := action.Marshal(action.ResultMessage{V: action.ProtocolVersion, AgentID: a.id,
			CommandID: m.Command.ID, ActionID: m.Command.Action.ID, Status: action.CmdSuccess,
			Results: []action.Result{{FoundAnything: a.id[0]%2 == 0, Success: true,
				Elements: json.RawMessage(`{"s1":[]}`)}},
			Finished: time.Now()})
		if err != nil {
			return
		}
		delay, _ := rand.Int(rand.Reader, big.NewInt(int64(500*time.Millisecond)))
		a.unacked[m.Command.ID] = pendingResult{data: res, due: time.Now().Add(time.Duration(delay.Int64()))}
	case relay.KindAck:
		m, err := action.DecodeAck(data)
		if err != nil {
			return
		}
		for _, id := range m.CommandIDs {
			delete(a.unacked, id)
		}
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// testLogger logs warnings and errors of a server to the test's output.
func testLogger(t *testing.T, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).With("server", name)
}

func TestStoreAndRelaySettings(t *testing.T) {
	caFile, _, _, err := EnsureDevTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := func() Config {
		c := DefaultConfig()
		c.API.Cert, c.API.Key = "cert.pem", "key.pem"
		c.EnrollmentTokens = []string{"a-long-enough-token"}
		return c
	}
	tests := []struct {
		name    string
		store   string
		relay   string
		listen  string
		wantErr string // "" for valid
	}{
		{"sqlite", "sqlite:/var/lib/mig/mig.db", "", DefaultRelayAddr, ""},
		{"postgres with TLS", "postgres://mig:secret@db.example.com:5432/mig?sslmode=verify-full&sslrootcert=" + caFile, "", DefaultRelayAddr, ""},
		{"postgres with a missing CA file", "postgres://mig:secret@db/mig?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "", DefaultRelayAddr, "CA file"},
		{"postgresql scheme", "postgresql://mig@db/mig", "", DefaultRelayAddr, ""},
		{"external NATS cluster, no listen address", "sqlite:/x.db", "nats://n1:4222,nats://n2:4222,tls://n3:4222", "", ""},
		{"empty sqlite path", "sqlite:", "", DefaultRelayAddr, "sqlite path is empty"},
		{"unknown store scheme", "mysql://root:secret@db/mig", "", DefaultRelayAddr, "want sqlite:"},
		{"bad postgres URL", "postgres://mig:secret@db:notaport/mig", "", DefaultRelayAddr, "postgres URL"},
		{"bad postgres sslmode", "postgres://mig@db/mig?sslmode=sometimes", "", DefaultRelayAddr, "postgres URL"},
		{"relay URL scheme", "sqlite:/x.db", "redis://guest:secret@cache:6379/", "", "relay.url"},
		{"rabbitmq without management URL", "sqlite:/x.db", "amqp://guest:secret@rabbit:5672/", "", "relay.managementurl"},
		{"relay URL without host", "sqlite:/x.db", "nats://", "", "relay.url"},
		{"no relay at all", "sqlite:/x.db", "", "", "relay.listen"},
	}
	for _, tt := range tests {
		c := base()
		c.Store, c.Relay.URL, c.Relay.Listen = tt.store, tt.relay, tt.listen
		err := c.Validate()
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: Validate() = %v, want nil", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: Validate() = %v, want an error about %q", tt.name, err, tt.wantErr)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("%s: Validate() = %v: the error shows a password", tt.name, err)
		}
	}
	env := map[string]string{"MIG_SERVER_STORE": "postgres://mig@db/mig", "MIG_SERVER_RELAY_URL": "nats://n1:4222",
		"MIG_SERVER_RELAY_USER": "hub", "MIG_SERVER_RELAY_PASSWORD": "pw"}
	c := base()
	ApplyEnv(&c, func(k string) string { return env[k] })
	if c.Store != env["MIG_SERVER_STORE"] || c.Relay.URL != "nats://n1:4222" || c.Relay.User != "hub" || c.Relay.Password != "pw" {
		t.Errorf("after ApplyEnv: store %q relay %q %q %q, want the environment's", c.Store, c.Relay.URL, c.Relay.User, c.Relay.Password)
	}
	if got := redactStore("postgres://mig:secret@db/mig"); strings.Contains(got, "secret") {
		t.Errorf("redactStore = %q, shows the password", got)
	}
}
