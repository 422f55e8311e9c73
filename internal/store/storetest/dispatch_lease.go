package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

// lease returns a dispatch lease of action id.
func lease(id uint64, owner string, expires time.Time) store.DispatchLease {
	return store.DispatchLease{ActionID: id, Owner: owner, Expires: expires}
}

// actionStatus returns the status of action id.
func actionStatus(t *testing.T, s store.Store, id uint64) string {
	t.Helper()
	a, err := s.Action(t.Context(), id)
	if err != nil {
		t.Fatalf("Action(%d): %v", id, err)
	}
	return a.Status
}

// stalled returns StalledDispatches(now, unclaimedBefore).
func stalled(t *testing.T, s store.Store, now, unclaimedBefore time.Time) []uint64 {
	t.Helper()
	ids, err := s.StalledDispatches(t.Context(), now, unclaimedBefore)
	if err != nil {
		t.Fatalf("StalledDispatches: %v", err)
	}
	return ids
}

// testDispatchLease walks one action through a dispatch that a server
// starts, loses when its lease expires, and another server finishes.
func testDispatchLease(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	const aid, other = 71, 72
	t0 := time.Now().UTC().Add(time.Hour) // lease times, after every creation time
	wall := time.Now()
	mustCreateAction(t, s, newAction(aid, baseTime, t0.Add(24*time.Hour)))
	mustCreateAction(t, s, newAction(other, baseTime, t0.Add(24*time.Hour)))

	// Bad input.
	for _, tt := range []struct {
		name string
		l    store.DispatchLease
		want error
	}{
		{"unknown action", lease(999, "a", t0), store.ErrNotFound},
		{"empty owner", lease(aid, " ", t0), nil},
		{"action id 0", lease(0, "a", t0), nil},
		{"action id 2^63", lease(1<<63, "a", t0), nil},
	} {
		err := s.AcquireDispatch(ctx, tt.l, t0)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("AcquireDispatch(%s) = %v, want an error (%v)", tt.name, err, tt.want)
		}
	}

	// Never leased: stalled only once created before unclaimedBefore.
	if got := stalled(t, s, t0, wall.Add(-time.Hour)); len(got) != 0 {
		t.Errorf("StalledDispatches before any creation = %v, want none", got)
	}
	if d := diff([]uint64{aid, other}, stalled(t, s, t0, wall.Add(time.Hour))); d != "" {
		t.Errorf("StalledDispatches of unclaimed actions (-want +got):\n%s", d)
	}

	// A takes the lease until t0+10s; B cannot, up to and including that
	// instant.
	a := lease(aid, "server-a/1", t0.Add(10*time.Second))
	if err := s.AcquireDispatch(ctx, a, t0); err != nil {
		t.Fatalf("AcquireDispatch(A): %v", err)
	}
	for _, now := range []time.Time{t0, t0.Add(5 * time.Second), t0.Add(10 * time.Second)} {
		if err := s.AcquireDispatch(ctx, lease(aid, "server-b/1", now.Add(time.Minute)), now); !errors.Is(err, store.ErrLeaseHeld) {
			t.Errorf("AcquireDispatch(B) at t0+%s = %v, want ErrLeaseHeld", now.Sub(t0), err)
		}
		if err := s.AcquireDispatch(ctx, lease(aid, a.Owner, now.Add(time.Minute)), now); !errors.Is(err, store.ErrLeaseHeld) {
			t.Errorf("AcquireDispatch(A again) at t0+%s = %v, want ErrLeaseHeld", now.Sub(t0), err)
		}
	}
	if d := diff([]uint64{other}, stalled(t, s, t0.Add(10*time.Second), wall.Add(time.Hour))); d != "" {
		t.Errorf("StalledDispatches while A holds the lease (-want +got):\n%s", d)
	}
	if d := diff([]uint64{aid}, stalled(t, s, t0.Add(10*time.Second+time.Nanosecond), wall.Add(-time.Hour))); d != "" {
		t.Errorf("StalledDispatches a nanosecond after A's lease expired (-want +got):\n%s", d)
	}

	// A stores a batch, which renews its lease to t0+20s.
	a.Expires = t0.Add(20 * time.Second)
	if err := s.DispatchCommands(ctx, a, commandsFor(aid, 100, "x1", "x2", "x3")); err != nil {
		t.Fatalf("DispatchCommands(A): %v", err)
	}
	if d := diff(action.Counters{Sent: 3, InFlight: 3}, counters(t, s, aid)); d != "" {
		t.Errorf("counters after A's batch (-want +got):\n%s", d)
	}
	if got := stalled(t, s, t0.Add(15*time.Second), wall.Add(-time.Hour)); len(got) != 0 {
		t.Errorf("StalledDispatches after A's batch renewed its lease = %v, want none", got)
	}
	// A command ID taken: nothing of the batch is stored, A keeps its lease.
	err := s.DispatchCommands(ctx, a, append(commandsFor(aid, 110, "x4"), commandsFor(aid, 100, "x5")...))
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("DispatchCommands(A, taken ID) = %v, want ErrExists", err)
	}
	// A command of another action is refused.
	if err := s.DispatchCommands(ctx, a, commandsFor(other, 120, "x6")); err == nil {
		t.Errorf("DispatchCommands(A, command of action %d) = nil, want an error", other)
	}
	a.Expires = t0.Add(30 * time.Second)
	if err := s.RenewDispatch(ctx, a); err != nil {
		t.Errorf("RenewDispatch(A): %v", err)
	}
	if err := s.AcquireDispatch(ctx, lease(aid, "server-b/1", t0.Add(time.Hour)), t0.Add(25*time.Second)); !errors.Is(err, store.ErrLeaseHeld) {
		t.Errorf("AcquireDispatch(B) before A's renewed lease expired = %v, want ErrLeaseHeld", err)
	}

	// A's lease expires; B takes the dispatch over. From then on nothing A
	// does is stored.
	b := lease(aid, "server-b/2", t0.Add(2*time.Minute))
	if err := s.AcquireDispatch(ctx, b, t0.Add(time.Minute)); err != nil {
		t.Fatalf("AcquireDispatch(B) after A's lease expired: %v", err)
	}
	if err := s.DispatchCommands(ctx, a, commandsFor(aid, 200, "x7")); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("DispatchCommands(A) after the takeover = %v, want ErrLeaseLost", err)
	}
	if err := s.RenewDispatch(ctx, a); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("RenewDispatch(A) after the takeover = %v, want ErrLeaseLost", err)
	}
	if err := s.FinishDispatch(ctx, a, action.StatusInFlight, time.Time{}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("FinishDispatch(A) after the takeover = %v, want ErrLeaseLost", err)
	}
	if err := s.AcquireDispatch(ctx, lease(aid, a.Owner, t0.Add(time.Hour)), t0.Add(time.Minute)); !errors.Is(err, store.ErrLeaseHeld) {
		t.Errorf("AcquireDispatch(A) while B holds the lease = %v, want ErrLeaseHeld", err)
	}
	if d := diff(action.Counters{Sent: 3, InFlight: 3}, counters(t, s, aid)); d != "" {
		t.Errorf("counters after A lost its lease (-want +got):\n%s", d)
	}

	// B finds the agents still to reach, stores their commands and
	// finishes. The action was pending all along.
	if got := actionStatus(t, s, aid); got != action.StatusPending {
		t.Errorf("status during the dispatch = %q, want pending", got)
	}
	if err := s.UpsertAgents(ctx, fleet(time.Now())); err != nil {
		t.Fatalf("UpsertAgents: %v", err)
	}
	mustCreateCommands(t, s, commandsFor(aid, 300, "a01", "a02"))
	rest, err := s.AgentRefs(ctx, store.AgentQuery{WithoutCommandOf: aid})
	if err != nil {
		t.Fatalf("AgentRefs: %v", err)
	}
	var ids []string
	for _, r := range rest {
		ids = append(ids, r.ID)
	}
	if d := diff([]string{"a03", "a04", "a05", "a06", "a07", "a08"}, ids); d != "" {
		t.Errorf("agents without a command of the action (-want +got):\n%s", d)
	}
	if err := s.DispatchCommands(ctx, b, commandsFor(aid, 400, ids...)); err != nil {
		t.Fatalf("DispatchCommands(B): %v", err)
	}
	if err := s.FinishDispatch(ctx, b, action.StatusPending, time.Time{}); err == nil {
		t.Errorf("FinishDispatch(B, pending) = nil, want an error")
	}
	if err := s.FinishDispatch(ctx, b, action.StatusInFlight, time.Time{}); err != nil {
		t.Fatalf("FinishDispatch(B): %v", err)
	}
	got, err := s.Action(ctx, aid)
	if err != nil {
		t.Fatalf("Action: %v", err)
	}
	if got.Status != action.StatusInFlight || got.StartTime.IsZero() || !got.FinishTime.IsZero() {
		t.Errorf("action after the dispatch: status %q start %v finish %v, want inflight, a start time and no finish time",
			got.Status, got.StartTime, got.FinishTime)
	}
	if d := diff(action.Counters{Sent: 11, InFlight: 11}, got.Counters); d != "" {
		t.Errorf("counters after B's dispatch (-want +got):\n%s", d)
	}
	// Finished: nobody holds or can take the lease.
	if err := s.RenewDispatch(ctx, b); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("RenewDispatch(B) after the finish = %v, want ErrLeaseLost", err)
	}
	if err := s.DispatchCommands(ctx, b, commandsFor(aid, 500, "late")); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("DispatchCommands(B) after the finish = %v, want ErrLeaseLost", err)
	}
	if err := s.AcquireDispatch(ctx, lease(aid, "server-c/1", t0.Add(time.Hour)), t0.Add(time.Hour)); !errors.Is(err, store.ErrNotPending) {
		t.Errorf("AcquireDispatch(C) of a dispatched action = %v, want ErrNotPending", err)
	}
	if d := diff([]uint64{other}, stalled(t, s, t0.Add(24*time.Hour), wall.Add(time.Hour))); d != "" {
		t.Errorf("StalledDispatches after the dispatch (-want +got):\n%s", d)
	}

	// An action dispatched to nobody finishes with a finish time.
	c := lease(other, "server-c/2", t0.Add(time.Minute))
	if err := s.AcquireDispatch(ctx, c, t0); err != nil {
		t.Fatalf("AcquireDispatch(C): %v", err)
	}
	fin := t0.Add(time.Second)
	if err := s.FinishDispatch(ctx, c, action.StatusCompleted, fin); err != nil {
		t.Fatalf("FinishDispatch(C): %v", err)
	}
	got, err = s.Action(ctx, other)
	if err != nil {
		t.Fatalf("Action: %v", err)
	}
	if got.Status != action.StatusCompleted || !got.FinishTime.Equal(fin) {
		t.Errorf("empty action: status %q finish %v, want completed at %v", got.Status, got.FinishTime, fin)
	}
	if got := stalled(t, s, t0.Add(24*time.Hour), wall.Add(time.Hour)); len(got) != 0 {
		t.Errorf("StalledDispatches at the end = %v, want none", got)
	}
}

// testDispatchLeaseTwoInstances races servers for one lease through two
// stores over one database: exactly one wins each round, and once a
// takeover returned, the previous holder stores nothing more even though it
// keeps writing batches.
func testDispatchLeaseTwoInstances(t *testing.T, open Opener) {
	s1 := openStore(t, open)
	s2 := openStore(t, open)
	stores := []store.Store{s1, s2}
	ctx := t.Context()
	const aid = 81
	t0 := time.Now().UTC().Add(time.Hour)
	mustCreateAction(t, s1, newAction(aid, baseTime, t0.Add(24*time.Hour)))

	const racers = 8
	var holder store.DispatchLease
	for round := range 3 {
		now := t0.Add(time.Duration(round) * time.Hour)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []store.DispatchLease
		for i := range racers {
			l := lease(aid, fmt.Sprintf("round-%d/racer-%d", round, i), now.Add(time.Minute))
			wg.Go(func() {
				err := stores[i%2].AcquireDispatch(ctx, l, now)
				switch {
				case err == nil:
					mu.Lock()
					won = append(won, l)
					mu.Unlock()
				case !errors.Is(err, store.ErrLeaseHeld):
					t.Errorf("AcquireDispatch(%s) = %v, want nil or ErrLeaseHeld", l.Owner, err)
				}
			})
		}
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("round %d: %d racers took the lease, want 1: %v", round, len(won), won)
		}
		holder = won[0]
	}

	// The holder keeps writing batches through s1 while a new owner takes
	// the expired lease through s2.
	var taken atomic.Bool
	var late atomic.Int64 // batches stored although begun after the takeover
	var stored atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			after := taken.Load()
			err := s1.DispatchCommands(ctx, holder, commandsFor(aid, uint64(1000+10*i), fmt.Sprintf("h%03d", i)))
			switch {
			case err == nil:
				stored.Add(1)
				if after {
					late.Add(1)
				}
			case errors.Is(err, store.ErrLeaseLost):
				return
			default:
				t.Errorf("DispatchCommands(holder): %v", err)
				return
			}
		}
	}()
	next := lease(aid, "taker", t0.Add(48*time.Hour))
	if err := s2.AcquireDispatch(ctx, next, t0.Add(24*time.Hour)); err != nil {
		t.Fatalf("AcquireDispatch(taker): %v", err)
	}
	taken.Store(true)
	<-done
	if n := late.Load(); n != 0 {
		t.Errorf("the old holder stored %d batches after the takeover", n)
	}
	if err := s2.FinishDispatch(ctx, next, action.StatusInFlight, time.Time{}); err != nil {
		t.Fatalf("FinishDispatch(taker): %v", err)
	}
	if c := counters(t, s2, aid); c.Sent != int(stored.Load()) {
		t.Errorf("counters %+v, want %d sent (the batches the old holder stored)", c, stored.Load())
	}
}
