package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/natsrelay"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// rig is a scheduler over a real SQLite store and a real embedded NATS relay,
// with simple agents that answer over real relay connections.
type rig struct {
	t     *testing.T
	st    store.Store
	relay *natsrelay.Server
	sched *Scheduler
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "mig.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := natsrelay.StartServer(natsrelay.ServerConfig{Listen: "127.0.0.1:0",
		Authenticate: func(id, pw string) bool { return pw == "pw-"+id }})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := rs.NewHub(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, st: st, relay: rs, sched: New(cfg, st, hub, nil)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.sched.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		hub.Close()
		rs.Shutdown()
		st.Close()
	})
	r.waitReceiving()
	return r
}

// waitReceiving returns once the scheduler receives from the relay: the
// relay keeps nothing, so a hello published before the scheduler's
// subscription is in place would be lost. A probe agent publishes a result
// for an unknown command (which changes nothing in the store) until it is
// acknowledged.
func (r *rig) waitReceiving() {
	r.t.Helper()
	const probe = "ffffffffffffffffffffffffffffffff"
	conn, err := natsrelay.Dial(r.t.Context(), probe, relay.Credentials{URL: r.relay.ClientURL(), User: probe, Password: "pw-" + probe})
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(r.t.Context())
	acked := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = conn.Subscribe(ctx, func(kind string, _ []byte) {
			if kind == relay.KindAck {
				once.Do(func() { close(acked) })
			}
		})
	}()
	defer func() { cancel(); <-done }()
	res, err := action.Marshal(action.ResultMessage{V: action.ProtocolVersion, AgentID: probe, CommandID: 1, ActionID: 1,
		Status: action.CmdSuccess})
	if err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second) // a hang guard, not a timing test
	for {
		if err := conn.Publish(ctx, relay.KindResult, res); err != nil {
			r.t.Fatal(err)
		}
		select {
		case <-acked:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.t.Fatal("the scheduler does not receive from the relay")
		}
	}
}

func agentID(i int) string { return fmt.Sprintf("%032x", i+1) }

// fakeAgent answers every command with a result carrying its own ID, unless
// silent, and records the acks it gets.
type fakeAgent struct {
	id     string
	conn   relay.Conn
	silent atomic.Bool
	mu     sync.Mutex
	cmds   []uint64
	acked  map[uint64]bool
}

func (r *rig) agent(i int, os string, hello bool) *fakeAgent {
	r.t.Helper()
	a := &fakeAgent{id: agentID(i), acked: map[uint64]bool{}}
	conn, err := natsrelay.Dial(r.t.Context(), a.id, relay.Credentials{URL: r.relay.ClientURL(), User: a.id, Password: "pw-" + a.id})
	if err != nil {
		r.t.Fatal(err)
	}
	a.conn = conn
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = conn.Subscribe(ctx, func(kind string, data []byte) {
			switch kind {
			case relay.KindCommand:
				m, err := action.DecodeCommand(data)
				if err != nil {
					r.t.Errorf("agent %s: %v", a.id, err)
					return
				}
				a.mu.Lock()
				a.cmds = append(a.cmds, m.Command.ID)
				a.mu.Unlock()
				if a.silent.Load() {
					return
				}
				res, _ := action.Marshal(action.ResultMessage{V: action.ProtocolVersion, AgentID: a.id,
					CommandID: m.Command.ID, ActionID: m.Command.Action.ID, Status: action.CmdSuccess,
					Results: []action.Result{{Success: true, FoundAnything: true, Elements: json.RawMessage(`{"who":"` + a.id + `"}`)}}})
				if err := conn.Publish(ctx, relay.KindResult, res); err != nil {
					r.t.Errorf("agent %s publish: %v", a.id, err)
				}
			case relay.KindAck:
				m, err := action.DecodeAck(data)
				if err != nil {
					r.t.Errorf("agent %s: %v", a.id, err)
					return
				}
				a.mu.Lock()
				for _, id := range m.CommandIDs {
					a.acked[id] = true
				}
				a.mu.Unlock()
			}
		})
	}()
	r.t.Cleanup(func() { cancel(); conn.Close(); <-done })
	ag := action.Agent{ID: a.id, Name: fmt.Sprintf("host%03d", i), Mode: action.ModeDaemon,
		Environment: action.Environment{OS: os, Arch: "amd64"}}
	if hello {
		hb, _ := action.Marshal(action.HeartbeatMessage{V: action.ProtocolVersion, Hello: true, Agent: ag})
		if err := conn.Publish(r.t.Context(), relay.KindHeartbeat, hb); err != nil {
			r.t.Fatal(err)
		}
	} else if err := r.st.UpsertAgents(r.t.Context(), []action.Agent{ag}); err != nil {
		r.t.Fatal(err)
	}
	return a
}

// counts returns the distinct commands the agent got and the acks. A command
// can arrive twice (sent by Dispatch and again by the redelivery a hello
// triggers, when the two race); agents ignore the second copy.
func (a *fakeAgent) counts() (cmds, acks int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[uint64]bool{}
	for _, id := range a.cmds {
		seen[id] = true
	}
	return len(seen), len(a.acked)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second) // a hang guard on a loaded machine, not a timing test
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *rig) launch(tgt string, expire time.Duration) *action.Action {
	r.t.Helper()
	id, _ := NewID()
	now := time.Now()
	a := &action.Action{ID: id, Name: "t", Target: tgt, ValidFrom: now.Add(-time.Second), ExpireAfter: now.Add(expire),
		Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{}`)}}, Status: action.StatusPending}
	if err := r.st.CreateAction(r.t.Context(), a); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.sched.Dispatch(r.t.Context(), a); err != nil {
		r.t.Fatal(err)
	}
	return a
}

func checkCounters(t *testing.T, c action.Counters) {
	t.Helper()
	if c.Success+c.Failed+c.TimeOut+c.Expired+c.Cancelled != c.Done || c.Done+c.InFlight != c.Sent {
		t.Errorf("counters do not add up: %+v", c)
	}
}

func TestDispatchResultsAndAcks(t *testing.T) {
	r := newRig(t, Config{BatchSize: 16})
	var linux []*fakeAgent
	var others []*fakeAgent
	for i := range 40 {
		if i%4 == 0 {
			others = append(others, r.agent(i, "darwin", true))
		} else {
			linux = append(linux, r.agent(i, "linux", true))
		}
	}
	waitUntil(t, "heartbeats stored", func() bool {
		n, _ := r.st.CountAgents(t.Context(), nil)
		return n == 40
	})
	a := r.launch("environment->>'os'='linux'", time.Minute)
	waitUntil(t, "every result stored", func() bool {
		got, _ := r.st.Action(t.Context(), a.ID)
		return got.Counters.Done == len(linux)
	})
	waitUntil(t, "every result acknowledged", func() bool {
		for _, ag := range linux {
			if c, k := ag.counts(); c != 1 || k != 1 {
				return false
			}
		}
		return true
	})
	for _, ag := range others {
		if c, _ := ag.counts(); c != 0 {
			t.Errorf("agent %s is not targeted but got %d commands", ag.id, c)
		}
	}
	got, err := r.st.Action(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Counters.Sent != len(linux) || got.Counters.Success != len(linux) {
		t.Errorf("counters %+v, want %d sent and success", got.Counters, len(linux))
	}
	checkCounters(t, got.Counters)
	waitUntil(t, "the action to be completed", func() bool {
		got, _ := r.st.Action(t.Context(), a.ID)
		return got.Status == action.StatusCompleted
	})
}

func TestExpiry(t *testing.T) {
	r := newRig(t, Config{SweepEvery: 50 * time.Millisecond})
	quiet := r.agent(0, "linux", true)
	quiet.silent.Store(true)
	waitUntil(t, "heartbeat stored", func() bool { n, _ := r.st.CountAgents(t.Context(), nil); return n == 1 })
	a := r.launch("status='online'", 300*time.Millisecond)
	waitUntil(t, "the command to expire", func() bool {
		got, _ := r.st.Action(t.Context(), a.ID)
		return got.Counters.Expired == 1 && got.Status == action.StatusExpired
	})
	got, _ := r.st.Action(t.Context(), a.ID)
	checkCounters(t, got.Counters)
}

// An agent that was offline when an action was launched gets its command
// when it says hello, while the action is still valid.
func TestRedeliveryOnHello(t *testing.T) {
	r := newRig(t, Config{})
	ag := action.Agent{ID: agentID(7), Name: "late", Mode: action.ModeDaemon, Environment: action.Environment{OS: "linux"}}
	if err := r.st.UpsertAgents(t.Context(), []action.Agent{ag}); err != nil {
		t.Fatal(err)
	}
	a := r.launch("name='late'", time.Minute)
	late := r.agent(7, "linux", true) // connects and says hello now
	waitUntil(t, "the redelivered command's result", func() bool {
		got, _ := r.st.Action(t.Context(), a.ID)
		return got.Counters.Success == 1
	})
	if c, _ := late.counts(); c < 1 {
		t.Errorf("late agent got %d commands", c)
	}
}

// A result published by one agent for another agent's command is not stored.
func TestResultFromWrongAgentIgnored(t *testing.T) {
	r := newRig(t, Config{})
	victim := r.agent(1, "linux", true)
	victim.silent.Store(true)
	attacker := r.agent(2, "linux", true)
	attacker.silent.Store(true)
	waitUntil(t, "heartbeats", func() bool { n, _ := r.st.CountAgents(t.Context(), nil); return n == 2 })
	a := r.launch("name='host001'", time.Minute)
	waitUntil(t, "the victim's command", func() bool { c, _ := victim.counts(); return c == 1 })
	victim.mu.Lock()
	cmdID := victim.cmds[0]
	victim.mu.Unlock()
	for _, claimed := range []string{victim.id, attacker.id} {
		res, _ := action.Marshal(action.ResultMessage{V: action.ProtocolVersion, AgentID: claimed, CommandID: cmdID,
			ActionID: a.ID, Status: action.CmdSuccess})
		if err := attacker.conn.Publish(t.Context(), relay.KindResult, res); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	c, err := r.st.Command(t.Context(), cmdID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != action.CmdSent {
		t.Fatalf("another agent's result changed the command to %q", c.Status)
	}
}
