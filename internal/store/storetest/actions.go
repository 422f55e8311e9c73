package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

func testActionCreate(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	a := newAction(1001, baseTime, baseTime.Add(time.Hour))
	before := time.Now()
	mustCreateAction(t, s, a)
	got, err := s.Action(ctx, a.ID)
	if err != nil {
		t.Fatalf("Action(%d): %v", a.ID, err)
	}
	want := *a
	want.Status = action.StatusPending
	if d := diff(want, *got, cmpopts.IgnoreFields(action.Action{}, "LastUpdateTime")); d != "" {
		t.Errorf("Action(%d) after CreateAction (-want +got):\n%s", a.ID, d)
	}
	if got.LastUpdateTime.Before(before.Add(-time.Second)) {
		t.Errorf("LastUpdateTime = %v, want about now", got.LastUpdateTime)
	}
	wantEnc, err := a.Encoding()
	if err != nil {
		t.Fatalf("Encoding of the created action: %v", err)
	}
	gotEnc, err := got.Encoding()
	if err != nil {
		t.Fatalf("Encoding of the stored action: %v", err)
	}
	if !bytes.Equal(wantEnc, gotEnc) {
		t.Errorf("signed encoding changed in the store:\n got %s\nwant %s", gotEnc, wantEnc)
	}

	other := newAction(a.ID, baseTime, baseTime.Add(2*time.Hour))
	other.Name = "something else"
	if err := s.CreateAction(ctx, other); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateAction(duplicate ID) error = %v, want ErrExists", err)
	}
	if again, err := s.Action(ctx, a.ID); err != nil || again.Name != a.Name {
		t.Errorf("after a refused duplicate, Action(%d) = %q, %v; want the original %q", a.ID, again.Name, err, a.Name)
	}
	for _, id := range []uint64{0, 1002, 1 << 63} {
		if _, err := s.Action(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Action(%d) error = %v, want ErrNotFound", id, err)
		}
	}

	steps := []struct {
		status     string
		finished   time.Time
		wantFinish time.Time
	}{
		{action.StatusInFlight, time.Time{}, time.Time{}},
		{action.StatusCompleted, baseTime.Add(30 * time.Minute), baseTime.Add(30 * time.Minute)},
		{action.StatusExpired, time.Time{}, baseTime.Add(30 * time.Minute)},
	}
	var started time.Time
	for _, st := range steps {
		if err := s.SetActionStatus(ctx, a.ID, st.status, st.finished); err != nil {
			t.Fatalf("SetActionStatus(%s): %v", st.status, err)
		}
		got, err := s.Action(ctx, a.ID)
		if err != nil {
			t.Fatalf("Action(%d): %v", a.ID, err)
		}
		if got.Status != st.status {
			t.Errorf("status after SetActionStatus(%s) = %q", st.status, got.Status)
		}
		if !got.FinishTime.Equal(st.wantFinish) {
			t.Errorf("finish time after SetActionStatus(%s) = %v, want %v", st.status, got.FinishTime, st.wantFinish)
		}
		if got.StartTime.IsZero() {
			t.Errorf("start time after SetActionStatus(%s) is zero, want it set", st.status)
		}
		if !started.IsZero() && !got.StartTime.Equal(started) {
			t.Errorf("start time changed from %v to %v", started, got.StartTime)
		}
		started = got.StartTime
	}
	if err := s.SetActionStatus(ctx, 4242, action.StatusCompleted, time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetActionStatus(unknown) error = %v, want ErrNotFound", err)
	}
}

func testActionParametersByteExact(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	tests := []struct {
		name   string
		params string
	}{
		{"indented with escapes", testParameters},
		{"compact", `{"a":1,"b":[true,false,null]}`},
		{"html characters", `{"q":"<a href=\"x\">&</a>"}`},
		{"unicode escapes and literal", "{\"s\":\"\\u2713 \u2713 \\ud83d\\ude00\"}"},
		{"numbers kept as written", `{"big":123456789012345678901234567890,"exp":1.0E+2,"neg":-0.0}`},
		{"tabs and CRLF", "{\r\n\t\"k\" :\t\"v\"\r\n}"},
		{"empty object", `{}`},
		{"key order", `{"z":1,"a":2,"m":{"y":1,"b":2}}`},
	}
	for i, tt := range tests {
		id := uint64(2000 + i)
		a := newAction(id, baseTime.Add(-time.Hour), baseTime.Add(time.Hour))
		a.Operations = []action.Operation{
			{Module: "file", Parameters: json.RawMessage(tt.params)},
			{Module: "pkg", Parameters: json.RawMessage(tt.params)},
		}
		mustCreateAction(t, s, a)
		mustCreateCommands(t, s, commandsFor(id, 10*id, "agent-"+tt.name))

		var fetched []*action.Action
		got, err := s.Action(ctx, id)
		if err != nil {
			t.Fatalf("%s: Action: %v", tt.name, err)
		}
		fetched = append(fetched, got)
		pending, err := s.PendingCommands(ctx, "agent-"+tt.name, baseTime)
		if err != nil || len(pending) != 1 {
			t.Fatalf("%s: PendingCommands = %d commands, %v; want 1", tt.name, len(pending), err)
		}
		fetched = append(fetched, &pending[0].Action)
		cmds, err := s.Commands(ctx, store.CommandQuery{ActionID: id, WithAction: true})
		if err != nil || len(cmds) != 1 {
			t.Fatalf("%s: Commands = %d commands, %v; want 1", tt.name, len(cmds), err)
		}
		fetched = append(fetched, &cmds[0].Action)
		cmd, err := s.Command(ctx, 10*id)
		if err != nil {
			t.Fatalf("%s: Command: %v", tt.name, err)
		}
		fetched = append(fetched, &cmd.Action)
		for j, f := range fetched {
			if len(f.Operations) != 2 {
				t.Fatalf("%s: read %d: %d operations, want 2", tt.name, j, len(f.Operations))
			}
			for k, op := range f.Operations {
				if string(op.Parameters) != tt.params {
					t.Errorf("%s: read %d: operation %d parameters:\n got %q\nwant %q", tt.name, j, k, op.Parameters, tt.params)
				}
			}
			if d := diff(a.PGPSignatures, f.PGPSignatures); d != "" {
				t.Errorf("%s: read %d: signatures (-want +got):\n%s", tt.name, j, d)
			}
			if f.ID != id || f.Name != a.Name || f.Target != a.Target || !f.ExpireAfter.Equal(a.ExpireAfter) {
				t.Errorf("%s: read %d: action %d %q %q %v, want %d %q %q %v", tt.name, j,
					f.ID, f.Name, f.Target, f.ExpireAfter, id, a.Name, a.Target, a.ExpireAfter)
			}
		}
	}
	bad := newAction(2999, baseTime, baseTime.Add(time.Hour))
	bad.Operations[0].Parameters = json.RawMessage(`{"unterminated":`)
	if err := s.CreateAction(ctx, bad); err == nil {
		t.Errorf("CreateAction with parameters that are not JSON succeeded, want an error")
	}
	if _, err := s.Action(ctx, bad.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after a refused CreateAction, Action error = %v, want ErrNotFound", err)
	}
}

func testActionList(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	for _, id := range []uint64{30, 10, 20, 50, 40} {
		mustCreateAction(t, s, newAction(id, baseTime, baseTime.Add(time.Hour)))
		time.Sleep(2 * time.Millisecond) // distinct creation times
	}
	mustCreateCommands(t, s, commandsFor(20, 1, "x", "y", "z"))
	storeResults(t, s, result("x", 1, 20, action.CmdSuccess, true))
	tests := []struct {
		limit, offset int
		want          []uint64
	}{
		{0, 0, []uint64{40, 50, 20, 10, 30}},
		{2, 0, []uint64{40, 50}},
		{2, 1, []uint64{50, 20}},
		{10, 4, []uint64{30}},
		{10, 5, nil},
	}
	for _, tt := range tests {
		list, err := s.Actions(ctx, tt.limit, tt.offset)
		if err != nil {
			t.Fatalf("Actions(%d, %d): %v", tt.limit, tt.offset, err)
		}
		var ids []uint64
		for _, a := range list {
			ids = append(ids, a.ID)
			checkCountersAddUp(t, a.Counters)
			if a.ID == 20 {
				want := action.Counters{Sent: 3, Done: 1, InFlight: 2, Success: 1}
				if d := diff(want, a.Counters); d != "" {
					t.Errorf("Actions(%d, %d): counters of action 20 (-want +got):\n%s", tt.limit, tt.offset, d)
				}
			}
			if len(a.PGPSignatures) != 2 || a.Status != action.StatusPending {
				t.Errorf("Actions: action %d has %d signatures and status %q, want 2 and pending",
					a.ID, len(a.PGPSignatures), a.Status)
			}
		}
		if d := diff(tt.want, ids); d != "" {
			t.Errorf("Actions(%d, %d) IDs (-want +got):\n%s", tt.limit, tt.offset, d)
		}
	}
}
