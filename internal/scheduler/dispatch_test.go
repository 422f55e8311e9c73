package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/store"
)

// referenceCommand encodes a command message the plain way: the action as
// raw JSON inside action.CommandMessage's fields, through json.Marshal.
func referenceCommand(t *testing.T, c action.Command, actionJSON []byte) []byte {
	t.Helper()
	var w struct {
		V       int `json:"v"`
		Command struct {
			ID        uint64          `json:"id"`
			Action    json.RawMessage `json:"action"`
			AgentID   string          `json:"agentid"`
			AgentName string          `json:"agentname,omitempty"`
			Status    string          `json:"status"`
			StartTime time.Time       `json:"starttime,omitzero"`
		} `json:"command"`
	}
	w.V = action.ProtocolVersion
	w.Command.ID, w.Command.Action, w.Command.AgentID = c.ID, actionJSON, c.AgentID
	w.Command.AgentName, w.Command.Status, w.Command.StartTime = c.AgentName, c.Status, c.StartTime
	b, err := action.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The encoder writes exactly what json.Marshal writes, whatever the agent
// names hold, and agents decode it to the command and action sent.
func TestCommandEncoder(t *testing.T) {
	a := benchAction()
	a.Operations[0].Parameters = json.RawMessage(`{ "searches": {"s1": {"names": ["<a&b>"]}} }`)
	aj, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := newCommandEncoder(a)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 22, 1, 2, 3, 456789000, time.UTC)
	names := []string{"", "host-1.example.net", `quo"te\back`, "<script>&amp;", "café ✓", "tab\there\nnl",
		"bad utf8 \xff\xfe", "line\u2028sep\u2029", "nul\x00byte", strings.Repeat("x", 300)}
	var cmds []action.Command
	for i, n := range names {
		cmds = append(cmds, action.Command{ID: uint64(1<<53 - 1 - i), Action: action.Action{ID: a.ID},
			AgentID: agentID(i), AgentName: n, Status: action.CmdSent, StartTime: start})
	}
	for _, times := range []string{"same", "zero", "mixed"} {
		for i := range cmds {
			switch times {
			case "zero":
				cmds[i].StartTime = time.Time{}
			case "mixed":
				cmds[i].StartTime = start.Add(time.Duration(i/3) * time.Millisecond)
				if i == 4 {
					cmds[i].StartTime = time.Time{}
				}
				if i == 5 {
					cmds[i].StartTime = start.In(time.FixedZone("x", 3600))
				}
			}
		}
		msgs, err := enc.messages(cmds, a.ExpireAfter)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range cmds {
			want := referenceCommand(t, c, aj)
			if string(msgs[i].Data) != string(want) {
				t.Errorf("command %d (name %q):\n got %s\nwant %s", i, c.AgentName, msgs[i].Data, want)
			}
			if msgs[i].AgentID != c.AgentID || msgs[i].Kind != "command" || !msgs[i].Expires.Equal(a.ExpireAfter) {
				t.Errorf("command %d: outbound %+v", i, msgs[i])
			}
			m, err := action.DecodeCommand(msgs[i].Data)
			if err != nil {
				t.Fatalf("command %d: DecodeCommand: %v", i, err)
			}
			if m.Command.ID != c.ID || m.Command.AgentID != c.AgentID || m.Command.Action.ID != a.ID ||
				m.Command.Action.Name != a.Name || len(m.Command.Action.PGPSignatures) != 2 {
				t.Errorf("command %d decodes to %+v", i, m.Command)
			}
		}
	}
}

func TestNewIDRange(t *testing.T) {
	for _, n := range []int{1, 1000, 1 << 20} {
		for range 100 {
			base, err := newIDRange(n)
			if err != nil {
				t.Fatal(err)
			}
			if base == 0 || base+uint64(n)-1 >= 1<<53 {
				t.Fatalf("newIDRange(%d) = %d: range leaves [1, 2^53)", n, base)
			}
		}
	}
	for _, n := range []int{0, -1, 1 << 53} {
		if _, err := newIDRange(n); err == nil {
			t.Errorf("newIDRange(%d): nil error", n)
		}
	}
}

// errCrashed is what a crashed server's store calls return.
var errCrashed = errors.New("server crashed")

// crashingStore is a store as a server sees it that dies after storing
// its first batch of commands: from then on none of its dispatch writes
// reach the database (its lease is neither renewed nor given up).
type crashingStore struct {
	store.Store
	dead    atomic.Bool
	batches atomic.Int32
}

func (c *crashingStore) DispatchCommands(ctx context.Context, l store.DispatchLease, cmds []action.Command) error {
	if c.dead.Load() {
		return errCrashed
	}
	if err := c.Store.DispatchCommands(ctx, l, cmds); err != nil {
		return err
	}
	c.batches.Add(1)
	c.dead.Store(true)
	return nil
}

func (c *crashingStore) RenewDispatch(ctx context.Context, l store.DispatchLease) error {
	if c.dead.Load() {
		return errCrashed
	}
	return c.Store.RenewDispatch(ctx, l)
}

func (c *crashingStore) FinishDispatch(ctx context.Context, l store.DispatchLease, status string, finished time.Time) error {
	if c.dead.Load() {
		return errCrashed
	}
	return c.Store.FinishDispatch(ctx, l, status, finished)
}

// A dispatch that dies after its first batch is finished by another
// scheduler's sweep once the lease expires: every targeted agent gets
// exactly one command, the action is never finished while pending, and its
// counters are exact. An action whose dispatch never started is taken over
// too.
func TestDispatchResume(t *testing.T) {
	const batch, n = 16, 40
	r := newRig(t, Config{BatchSize: batch, DispatchLease: 300 * time.Millisecond})
	var agents []*fakeAgent
	// Agents stored directly: a hello published before the scheduler's
	// subscription is in place would be lost.
	for i := range n {
		agents = append(agents, r.agent(i, "linux", false))
	}
	other := r.agent(n, "darwin", false) // not targeted
	hub := r.sched.hub
	lease := 300 * time.Millisecond
	crashing := &crashingStore{Store: r.st}
	first := New(Config{BatchSize: batch, DispatchLease: lease, Owner: "first"}, crashing, hub, nil)
	second := New(Config{BatchSize: batch, DispatchLease: lease, Owner: "second"}, r.st, hub, nil)

	id, _ := NewID()
	now := time.Now()
	a := &action.Action{ID: id, Name: "resume", Target: "environment->>'os'='linux'", ValidFrom: now.Add(-time.Second),
		ExpireAfter: now.Add(time.Hour), Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{}`)}},
		Status: action.StatusPending}
	if err := r.st.CreateAction(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	got, err := first.Dispatch(t.Context(), a)
	if !errors.Is(err, errCrashed) || got != batch {
		t.Fatalf("first Dispatch = %d, %v; want %d and the crash", got, err, batch)
	}
	// The first batch's agents answer; the action stays pending.
	waitUntil(t, "the first batch's results", func() bool {
		got, _ := r.st.Action(t.Context(), a.ID)
		return got.Counters.Done == batch
	})
	r.sched.checkFinished(t.Context(), a.ID)
	if got, _ := r.st.Action(t.Context(), a.ID); got.Status != action.StatusPending || got.Counters.Sent != batch {
		t.Fatalf("after the crash: status %q counters %+v, want pending with %d sent", got.Status, got.Counters, batch)
	}
	// Another server's dispatch of the same action does nothing while the
	// lease runs (it may have expired already on a slow machine: then it
	// takes over, which is what the sweep does below).
	if got, err := second.Dispatch(t.Context(), a); err != nil {
		t.Fatalf("second Dispatch: %v", err)
	} else if got != 0 && got != n-batch {
		t.Fatalf("second Dispatch created %d commands, want 0 or %d", got, n-batch)
	}

	// An action nobody started dispatching.
	id2, _ := NewID()
	b := *a
	b.ID, b.Name = id2, "never started"
	if err := r.st.CreateAction(t.Context(), &b); err != nil {
		t.Fatal(err)
	}

	waitUntil(t, "the sweep to take both dispatches over", func() bool {
		second.Sweep(t.Context())
		x, _ := r.st.Action(t.Context(), a.ID)
		y, _ := r.st.Action(t.Context(), b.ID)
		return x.Status != action.StatusPending && y.Status != action.StatusPending
	})
	for _, act := range []*action.Action{a, &b} {
		waitUntil(t, "every result of "+act.Name, func() bool {
			got, _ := r.st.Action(t.Context(), act.ID)
			return got.Counters.Done == n && got.Status == action.StatusCompleted
		})
		got, err := r.st.Action(t.Context(), act.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(action.Counters{Sent: n, Done: n, Success: n}, got.Counters); d != "" {
			t.Errorf("action %q counters (-want +got):\n%s", act.Name, d)
		}
		cmds, err := r.st.Commands(t.Context(), store.CommandQuery{ActionID: act.ID, NoResults: true})
		if err != nil {
			t.Fatal(err)
		}
		perAgent := map[string]int{}
		for _, c := range cmds {
			perAgent[c.AgentID]++
		}
		for _, ag := range agents {
			if perAgent[ag.id] != 1 {
				t.Errorf("action %q: agent %s has %d commands, want 1", act.Name, ag.id, perAgent[ag.id])
			}
		}
		if len(perAgent) != n {
			t.Errorf("action %q: commands for %d agents, want %d", act.Name, len(perAgent), n)
		}
	}
	// Each agent received one command per action; those of the first
	// batch got theirs again from the sweep (it cannot know which of the
	// stored commands the crashed server sent), which agents ignore.
	for _, ag := range agents {
		ag.mu.Lock()
		distinct := map[uint64]bool{}
		for _, id := range ag.cmds {
			distinct[id] = true
		}
		ag.mu.Unlock()
		if len(distinct) != 2 {
			t.Errorf("agent %s received %d distinct commands, want 2 (one per action)", ag.id, len(distinct))
		}
	}
	if c, _ := other.counts(); c != 0 {
		t.Errorf("an agent that is not targeted received %d commands", c)
	}
	if c := crashing.batches.Load(); c != 1 {
		t.Errorf("the crashed server stored %d batches, want 1", c)
	}
	// The sweep's take-over of the action nobody started is in the audit
	// log, as a launch by the server.
	entries, err := r.st.AuditLog(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.Kind == audit.KindActionLaunch && e.Object == strconv.FormatUint(b.ID, 10) {
			found = true
			want := map[string]string{"commands": strconv.Itoa(n), "resumed": "true", "owner": "second"}
			if e.Actor != audit.ActorServer || !maps.Equal(e.Details, want) {
				t.Errorf("resumed launch entry: actor %q details %v, want %q %v", e.Actor, e.Details, audit.ActorServer, want)
			}
		}
	}
	if !found {
		t.Errorf("no audit entry for the resumed dispatch of action %d: %+v", b.ID, entries)
	}
}

// Two schedulers dispatching one action at once: one does it, the other
// returns without creating anything.
func TestDispatchOnce(t *testing.T) {
	r := newRig(t, Config{BatchSize: 8})
	for i := range 30 {
		r.agent(i, "linux", false).silent.Store(true)
	}
	a := benchAction()
	if err := r.st.CreateAction(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	others := []*Scheduler{r.sched, New(Config{BatchSize: 8}, r.st, r.sched.hub, nil), New(Config{BatchSize: 8}, r.st, r.sched.hub, nil)}
	var wg sync.WaitGroup
	created := make([]int, len(others))
	for i, s := range others {
		wg.Go(func() {
			n, err := s.Dispatch(t.Context(), a)
			if err != nil {
				t.Errorf("Dispatch %d: %v", i, err)
			}
			created[i] = n
		})
	}
	wg.Wait()
	total := 0
	for _, n := range created {
		if n != 0 && n != 30 {
			t.Errorf("a scheduler created %d commands, want 0 or 30", n)
		}
		total += n
	}
	if total != 30 {
		t.Errorf("schedulers created %v commands, want 30 in all", created)
	}
	got, err := r.st.Action(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != action.StatusInFlight || got.Counters.Sent != 30 {
		t.Errorf("action: status %q counters %+v, want inflight with 30 sent", got.Status, got.Counters)
	}
}

// An action with no agent to target, or already expired, is finished at
// once; an action with a target that no longer parses too, with an error.
func TestDispatchNobody(t *testing.T) {
	r := newRig(t, Config{})
	r.agent(0, "linux", false)
	for _, tt := range []struct {
		name, target string
		expire       time.Duration
		want         string
		wantErr      bool
	}{
		{"nobody", "name='nobody'", time.Hour, action.StatusCompleted, false},
		{"expired", "TRUE", -time.Second, action.StatusExpired, false},
		{"bad target", "name = = 'x'", time.Hour, action.StatusCompleted, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := benchAction()
			a.Target, a.ExpireAfter = tt.target, time.Now().Add(tt.expire)
			if err := r.st.CreateAction(t.Context(), a); err != nil {
				t.Fatal(err)
			}
			n, err := r.sched.Dispatch(t.Context(), a)
			if n != 0 || (err != nil) != tt.wantErr {
				t.Fatalf("Dispatch = %d, %v; want 0 and an error: %v", n, err, tt.wantErr)
			}
			got, err := r.st.Action(t.Context(), a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.want || got.FinishTime.IsZero() || got.Counters.Sent != 0 {
				t.Errorf("action: status %q finish %v counters %+v, want %s with a finish time", got.Status, got.FinishTime, got.Counters, tt.want)
			}
		})
	}
}
