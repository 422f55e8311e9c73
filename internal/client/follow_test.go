package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
)

// fakeAPI serves the action and command endpoints of docs/API.md for one
// action from memory. Each poll of the action (and, with finishOnList, each
// listing without results) finishes a few random commands, in no particular
// order, so results interleave with pages the way they do on a real server.
type fakeAPI struct {
	t            *testing.T
	mu           sync.Mutex
	act          action.Action
	cmds         []action.Command // ordered by ID
	rng          *rand.Rand
	perPoll      int
	finishOnList bool
	maxLimit     int
	requests     map[string]int
}

func newFakeAPI(t *testing.T, actionID uint64, n, perPoll int) *fakeAPI {
	f := &fakeAPI{t: t, rng: rand.New(rand.NewPCG(1, 2)), perPoll: perPoll, requests: map[string]int{}}
	f.act = action.Action{ID: actionID, Name: "follow test", Target: "status='online'",
		Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{}`)}}}
	id := uint64(100)
	for i := range n {
		id += uint64(1 + f.rng.IntN(3)) // IDs are increasing, not contiguous
		f.cmds = append(f.cmds, action.Command{ID: id, AgentID: fmt.Sprintf("agent%04d", i),
			AgentName: fmt.Sprintf("host%04d", i), Status: action.CmdSent})
	}
	return f
}

// finish moves up to k random unfinished commands to a terminal status.
func (f *fakeAPI) finish(k int) {
	var open []int
	for i, c := range f.cmds {
		if c.Status == action.CmdSent {
			open = append(open, i)
		}
	}
	f.rng.Shuffle(len(open), func(i, j int) { open[i], open[j] = open[j], open[i] })
	statuses := []string{action.CmdSuccess, action.CmdSuccess, action.CmdSuccess, action.CmdFailed, action.CmdTimeout}
	for _, i := range open[:min(k, len(open))] {
		c := &f.cmds[i]
		c.Status = statuses[f.rng.IntN(len(statuses))]
		if c.Status == action.CmdSuccess {
			c.Results = []action.Result{{Success: true, FoundAnything: c.ID%2 == 0,
				Elements: json.RawMessage(fmt.Sprintf(`{"cmd":%d}`, c.ID))}}
		} else {
			c.Code, c.Error = "module_failed", "boom"
		}
	}
}

func (f *fakeAPI) counters() action.Counters {
	var n action.Counters
	for _, c := range f.cmds {
		n.Sent++
		switch c.Status {
		case action.CmdSent:
			n.InFlight++
			continue
		case action.CmdSuccess:
			n.Success++
		case action.CmdFailed:
			n.Failed++
		case action.CmdTimeout:
			n.TimeOut++
		}
		n.Done++
	}
	return n
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/actions/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.requests["action"]++
		f.finish(f.perPoll)
		a := f.act
		a.Counters = f.counters()
		a.Status = action.StatusInFlight
		if a.Counters.Done == a.Counters.Sent {
			a.Status = action.StatusCompleted
		}
		json.NewEncoder(w).Encode(a)
	})
	mux.HandleFunc("GET /api/v1/actions/{id}/commands", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		after, _ := strconv.ParseUint(q.Get("after"), 10, 64)
		limit, err := strconv.Atoi(q.Get("limit"))
		if err != nil || limit <= 0 {
			limit = 500
		}
		if f.maxLimit > 0 {
			limit = min(limit, f.maxLimit)
		}
		noResults := q.Get("results") == "false"
		if noResults {
			f.requests["list"]++
			if f.finishOnList {
				f.finish(1)
			}
		} else {
			f.requests["page"]++
		}
		out := []action.Command{}
		for _, c := range f.cmds {
			if c.ID <= after {
				continue
			}
			if noResults {
				c.Results = nil
			}
			out = append(out, c)
			if len(out) == limit {
				break
			}
		}
		var next uint64
		if len(out) == limit {
			next = out[len(out)-1].ID
		}
		json.NewEncoder(w).Encode(map[string]any{"commands": out, "next": next})
	})
	mux.HandleFunc("GET /api/v1/commands/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.requests["command"]++
		id, _ := strconv.ParseUint(r.PathValue("id"), 10, 64)
		for _, c := range f.cmds {
			if c.ID == id {
				json.NewEncoder(w).Encode(c)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"command not found","code":"not_found"}`))
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	mux.ServeHTTP(w, r)
}

func TestFollow(t *testing.T) {
	tests := []struct {
		name         string
		commands     int
		perPoll      int
		maxLimit     int
		finishOnList bool
	}{
		{"one poll", 30, 30, 0, false},
		{"many pages", 1203, 400, 0, false},
		{"small pages", 97, 9, 10, true},
		{"stragglers", 700, 90, 0, true},
		{"no command yet", 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const id = 4242
			f := newFakeAPI(t, id, tt.commands, tt.perPoll)
			f.maxLimit, f.finishOnList = tt.maxLimit, tt.finishOnList
			if tt.commands == 0 {
				f.act.Status = action.StatusCompleted
			}
			c, _, _ := newTLSClient(t, f)
			got := map[uint64]int{}
			var last action.Counters
			progressCalls := 0
			a, err := c.Follow(t.Context(), id, time.Millisecond, func(n action.Counters) {
				progressCalls++
				if n.Done < last.Done {
					t.Errorf("progress went back: %d done after %d", n.Done, last.Done)
				}
				last = n
			}, func(cmd action.Command) {
				got[cmd.ID]++
				if !action.IsTerminal(cmd.Status) {
					t.Errorf("command %d delivered in status %q", cmd.ID, cmd.Status)
				}
				if cmd.Status == action.CmdSuccess && len(cmd.Results) != 1 {
					t.Errorf("command %d delivered with %d results, want 1", cmd.ID, len(cmd.Results))
				}
			})
			if err != nil {
				t.Fatalf("Follow: %v", err)
			}
			if a.Counters.Done != a.Counters.Sent || a.Counters.Sent != tt.commands {
				t.Errorf("final counters: got %d/%d done, want %d/%d", a.Counters.Done, a.Counters.Sent, tt.commands, tt.commands)
			}
			if len(got) != tt.commands {
				t.Errorf("got %d distinct commands, want %d", len(got), tt.commands)
			}
			for cid, n := range got {
				if n != 1 {
					t.Errorf("command %d delivered %d times, want once", cid, n)
				}
			}
			for _, cmd := range f.cmds {
				if got[cmd.ID] == 0 {
					t.Errorf("command %d never delivered", cmd.ID)
				}
			}
			if progressCalls == 0 {
				t.Errorf("onProgress never called")
			}
			if tt.perPoll > 0 {
				wantPolls := (tt.commands + tt.perPoll - 1) / tt.perPoll
				if f.requests["action"] > wantPolls+1 {
					t.Errorf("polled the action %d times, want at most %d: Follow does not stop when done", f.requests["action"], wantPolls+1)
				}
			}
		})
	}
}

func TestFollowStopsWithContext(t *testing.T) {
	f := newFakeAPI(t, 7, 10, 0) // nothing ever finishes
	c, _, _ := newTLSClient(t, f)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	a, err := c.Follow(ctx, 7, 20*time.Millisecond, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Follow: got error %v, want context.DeadlineExceeded", err)
	}
	if a == nil || a.ID != 7 {
		t.Errorf("Follow: got action %v, want the last one fetched (id 7)", a)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Follow took %s to stop after its context ended", d)
	}
}

func TestFollowAPIError(t *testing.T) {
	c, _, _ := newTLSClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"action 9 not found","code":"not_found"}`))
	}))
	_, err := c.Follow(t.Context(), 9, time.Millisecond, nil, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Message != "action 9 not found" {
		t.Fatalf("Follow: got %v, want the API's 404 with its message", err)
	}
}
