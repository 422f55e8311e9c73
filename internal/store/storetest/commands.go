package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

func testCommandFanOut(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	const n = 5000
	a := newAction(77, baseTime.Add(-time.Hour), baseTime.Add(time.Hour))
	mustCreateAction(t, s, a)
	agents := make([]string, n)
	for i := range agents {
		agents[i] = fmt.Sprintf("agent-%05d", i)
	}
	cmds := commandsFor(a.ID, 1_000_000, agents...)
	mustCreateCommands(t, s, cmds)
	if d := diff(action.Counters{Sent: n, InFlight: n}, counters(t, s, a.ID)); d != "" {
		t.Errorf("counters after fan-out (-want +got):\n%s", d)
	}
	got, err := s.Commands(ctx, store.CommandQuery{ActionID: a.ID})
	if err != nil {
		t.Fatalf("Commands: %v", err)
	}
	if len(got) != n {
		t.Fatalf("Commands returned %d commands, want %d", len(got), n)
	}
	for i, c := range got {
		w := cmds[i]
		if c.ID != w.ID || c.AgentID != w.AgentID || c.AgentName != w.AgentName || c.Status != action.CmdSent ||
			c.Action.ID != a.ID || !c.StartTime.Equal(w.StartTime) || !c.FinishTime.IsZero() || len(c.Results) != 0 {
			t.Fatalf("command %d = %+v, want %+v in status sent", i, c, w)
		}
	}
	// Results for all of them, in batches of 1,000.
	var acked int
	for start := 0; start < n; start += 1000 {
		var batch []action.ResultMessage
		for _, c := range cmds[start : start+1000] {
			batch = append(batch, result(c.AgentID, c.ID, a.ID, action.CmdSuccess, c.ID%2 == 0))
		}
		acked += len(storeResults(t, s, batch...))
	}
	if acked != n {
		t.Errorf("acknowledged %d results, want %d", acked, n)
	}
	if d := diff(action.Counters{Sent: n, Done: n, Success: n}, counters(t, s, a.ID)); d != "" {
		t.Errorf("counters after results (-want +got):\n%s", d)
	}
	foundCmds, err := s.Commands(ctx, store.CommandQuery{ActionID: a.ID, FoundOnly: true, NoResults: true})
	if err != nil {
		t.Fatalf("Commands(found only): %v", err)
	}
	if len(foundCmds) != n/2 {
		t.Errorf("Commands(found only) returned %d, want %d", len(foundCmds), n/2)
	}
}

func testCommandCreateErrors(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	mustCreateAction(t, s, newAction(5, baseTime, baseTime.Add(time.Hour)))
	mustCreateCommands(t, s, commandsFor(5, 100, "a", "b"))
	tests := []struct {
		name    string
		cmds    []action.Command
		wantErr error
	}{
		{"unknown action", commandsFor(6, 200, "a"), store.ErrNotFound},
		{"unknown action among known ones", append(commandsFor(5, 300, "a"), commandsFor(6, 301, "b")...), store.ErrNotFound},
		{"command ID taken", append(commandsFor(5, 400, "a", "b"), commandsFor(5, 101, "c")...), store.ErrExists},
		{"command ID twice in one call", append(commandsFor(5, 500, "a"), commandsFor(5, 500, "b")...), store.ErrExists},
	}
	for _, tt := range tests {
		if err := s.CreateCommands(ctx, tt.cmds); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: CreateCommands error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	// Every refused call stored nothing.
	if d := diff(map[uint64]string{100: action.CmdSent, 101: action.CmdSent}, commandStatuses(t, s, store.CommandQuery{})); d != "" {
		t.Errorf("commands after refused calls (-want +got):\n%s", d)
	}
	if err := s.CreateCommands(ctx, commandsFor(5, 0, "zero")); err == nil {
		t.Errorf("CreateCommands with command ID 0 succeeded, want an error")
	}
}

func testResultsAcks(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	const aid = 7
	mustCreateAction(t, s, newAction(aid, baseTime.Add(-time.Hour), baseTime.Add(time.Hour)))
	mustCreateCommands(t, s, commandsFor(aid, 101, "a1", "a2", "a3", "a4", "a5", "a6"))
	first := result("a1", 101, aid, action.CmdSuccess, true)
	failed := result("a2", 102, aid, action.CmdFailed, false)
	failed.Code, failed.Error = action.CodeModuleFailed, "module file exited with status 2"
	overwrite := result("a1", 101, aid, action.CmdFailed, false)
	overwrite.Error = "must not replace the first result"
	notTerminal := result("a4", 104, aid, action.CmdSent, false)

	steps := []struct {
		name    string
		results []action.ResultMessage
		want    []uint64
		status  map[uint64]string
	}{
		{
			name: "mixed batch",
			results: []action.ResultMessage{
				first,
				failed,
				result("a9", 103, aid, action.CmdSuccess, true), // a9 does not own 103
				result("a1", 999, aid, action.CmdSuccess, true), // unknown command
				overwrite,   // duplicate of 101 in the same batch
				notTerminal, // not a result
			},
			want: []uint64{101, 102, 999},
			status: map[uint64]string{101: action.CmdSuccess, 102: action.CmdFailed, 103: action.CmdSent,
				104: action.CmdSent, 105: action.CmdSent, 106: action.CmdSent},
		},
		{
			name: "duplicates after storing, the owner's result, a stranger on a terminal command",
			results: []action.ResultMessage{
				overwrite,
				result("a3", 103, aid, action.CmdTimeout, false),
				result("a1", 102, aid, action.CmdSuccess, true), // a1 does not own 102
				result("a6", 1<<63+5, aid, action.CmdSuccess, true),
			},
			want: []uint64{101, 103, 1<<63 + 5},
			status: map[uint64]string{101: action.CmdSuccess, 102: action.CmdFailed, 103: action.CmdTimeout,
				104: action.CmdSent, 105: action.CmdSent, 106: action.CmdSent},
		},
		{
			name:    "an empty batch",
			results: nil,
			want:    nil,
			status: map[uint64]string{101: action.CmdSuccess, 102: action.CmdFailed, 103: action.CmdTimeout,
				104: action.CmdSent, 105: action.CmdSent, 106: action.CmdSent},
		},
	}
	for _, st := range steps {
		ack := storeResults(t, s, st.results...)
		if d := diff(st.want, ack); d != "" {
			t.Errorf("%s: acks (-want +got):\n%s", st.name, d)
		}
		if d := diff(st.status, commandStatuses(t, s, store.CommandQuery{ActionID: aid})); d != "" {
			t.Errorf("%s: statuses (-want +got):\n%s", st.name, d)
		}
	}
	for _, want := range []action.ResultMessage{first, failed} {
		c, err := s.Command(ctx, want.CommandID)
		if err != nil {
			t.Fatalf("Command(%d): %v", want.CommandID, err)
		}
		if c.Status != want.Status || c.Code != want.Code || c.Error != want.Error || !c.FinishTime.Equal(want.Finished) {
			t.Errorf("Command(%d) = status %q code %q error %q finished %v; want %q %q %q %v", want.CommandID,
				c.Status, c.Code, c.Error, c.FinishTime, want.Status, want.Code, want.Error, want.Finished)
		}
		if d := diff(want.Results, c.Results); d != "" {
			t.Errorf("Command(%d) results (-want +got):\n%s", want.CommandID, d)
		}
		if c.AgentID != want.AgentID || c.AgentName != "host-"+want.AgentID || c.Action.ID != aid {
			t.Errorf("Command(%d) = agent %q %q action %d; want %q %q %d", want.CommandID,
				c.AgentID, c.AgentName, c.Action.ID, want.AgentID, "host-"+want.AgentID, aid)
		}
	}
	if _, err := s.Command(ctx, 999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Command(unknown) error = %v, want ErrNotFound", err)
	}
	if d := diff(action.Counters{Sent: 6, Done: 3, InFlight: 3, Success: 1, Failed: 1, TimeOut: 1}, counters(t, s, aid)); d != "" {
		t.Errorf("counters (-want +got):\n%s", d)
	}
}

func testResultsCounters(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	const aid = 8
	a := newAction(aid, baseTime.Add(-time.Hour), baseTime.Add(time.Hour))
	mustCreateAction(t, s, a)
	var agents []string
	for i := range 20 {
		agents = append(agents, fmt.Sprintf("c%02d", i))
	}
	mustCreateCommands(t, s, commandsFor(aid, 1, agents...))
	res := func(i int, status string) action.ResultMessage {
		return result(agents[i], uint64(i+1), aid, status, status == action.CmdSuccess)
	}
	steps := []struct {
		name    string
		results []action.ResultMessage
		expire  bool
		want    action.Counters
	}{
		{"nothing yet", nil, false, action.Counters{Sent: 20, InFlight: 20}},
		{"five successes", []action.ResultMessage{res(0, action.CmdSuccess), res(1, action.CmdSuccess),
			res(2, action.CmdSuccess), res(3, action.CmdSuccess), res(4, action.CmdSuccess)},
			false, action.Counters{Sent: 20, Done: 5, InFlight: 15, Success: 5}},
		{"failures, timeouts, cancellations and repeats", []action.ResultMessage{
			res(5, action.CmdFailed), res(6, action.CmdFailed), res(7, action.CmdFailed), res(8, action.CmdFailed),
			res(9, action.CmdTimeout), res(10, action.CmdTimeout), res(11, action.CmdTimeout),
			res(12, action.CmdCancelled), res(13, action.CmdCancelled),
			res(0, action.CmdFailed), res(5, action.CmdSuccess), res(9, action.CmdSuccess)},
			false, action.Counters{Sent: 20, Done: 14, InFlight: 6, Success: 5, Failed: 4, TimeOut: 3, Cancelled: 2}},
		{"expiry takes the rest", nil, true,
			action.Counters{Sent: 20, Done: 20, Success: 5, Failed: 4, TimeOut: 3, Expired: 6, Cancelled: 2}},
		{"late results change nothing", []action.ResultMessage{res(14, action.CmdSuccess), res(19, action.CmdFailed)},
			false, action.Counters{Sent: 20, Done: 20, Success: 5, Failed: 4, TimeOut: 3, Expired: 6, Cancelled: 2}},
	}
	for _, st := range steps {
		if len(st.results) > 0 {
			storeResults(t, s, st.results...)
		}
		if st.expire {
			ids, err := s.ExpireCommands(ctx, a.ExpireAfter.Add(time.Nanosecond))
			if err != nil {
				t.Fatalf("%s: ExpireCommands: %v", st.name, err)
			}
			if d := diff([]uint64{aid}, ids); d != "" {
				t.Errorf("%s: ExpireCommands actions (-want +got):\n%s", st.name, d)
			}
		}
		if d := diff(st.want, counters(t, s, aid)); d != "" {
			t.Errorf("%s: counters (-want +got):\n%s", st.name, d)
		}
	}
}

func testExpiry(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	now := baseTime
	expired := newAction(21, now.Add(-2*time.Hour), now.Add(-time.Hour))
	valid := newAction(22, now.Add(-time.Hour), now.Add(time.Hour))
	done := newAction(23, now.Add(-2*time.Hour), now.Add(-time.Hour)) // expired, every command finished
	for _, a := range []*action.Action{expired, valid, done} {
		mustCreateAction(t, s, a)
	}
	mustCreateCommands(t, s, commandsFor(expired.ID, 201, "x1", "x2", "x3", "x4"))
	mustCreateCommands(t, s, commandsFor(valid.ID, 301, "x1", "x2"))
	mustCreateCommands(t, s, commandsFor(done.ID, 401, "x1"))
	storeResults(t, s,
		result("x1", 201, expired.ID, action.CmdSuccess, true),
		result("x2", 202, expired.ID, action.CmdFailed, false),
		result("x1", 401, done.ID, action.CmdSuccess, false))

	ids, err := s.ExpireCommands(ctx, now)
	if err != nil {
		t.Fatalf("ExpireCommands: %v", err)
	}
	if d := diff([]uint64{expired.ID}, ids); d != "" {
		t.Errorf("ExpireCommands(now) actions (-want +got):\n%s", d)
	}
	want := map[uint64]string{201: action.CmdSuccess, 202: action.CmdFailed, 203: action.CmdExpired, 204: action.CmdExpired,
		301: action.CmdSent, 302: action.CmdSent, 401: action.CmdSuccess}
	if d := diff(want, commandStatuses(t, s, store.CommandQuery{})); d != "" {
		t.Errorf("statuses after expiry (-want +got):\n%s", d)
	}
	c, err := s.Command(ctx, 203)
	if err != nil {
		t.Fatalf("Command(203): %v", err)
	}
	if c.FinishTime.IsZero() {
		t.Errorf("an expired command has no finish time")
	}

	// A late result is acknowledged, and changes nothing.
	if d := diff([]uint64{203}, storeResults(t, s, result("x3", 203, expired.ID, action.CmdSuccess, true))); d != "" {
		t.Errorf("acks of a late result (-want +got):\n%s", d)
	}
	c, err = s.Command(ctx, 203)
	if err != nil {
		t.Fatalf("Command(203): %v", err)
	}
	if c.Status != action.CmdExpired || len(c.Results) != 0 {
		t.Errorf("after a late result, command 203 is %q with %d results, want expired with none", c.Status, len(c.Results))
	}
	if d := diff(action.Counters{Sent: 4, Done: 4, Success: 1, Failed: 1, Expired: 2}, counters(t, s, expired.ID)); d != "" {
		t.Errorf("counters of the expired action (-want +got):\n%s", d)
	}

	// Expiry is after expireafter, not at it.
	steps := []struct {
		now  time.Time
		want []uint64
	}{
		{now, nil},
		{valid.ExpireAfter, nil},
		{valid.ExpireAfter.Add(time.Nanosecond), []uint64{valid.ID}},
		{valid.ExpireAfter.Add(time.Hour), nil},
	}
	for _, st := range steps {
		ids, err := s.ExpireCommands(ctx, st.now)
		if err != nil {
			t.Fatalf("ExpireCommands(%v): %v", st.now, err)
		}
		if d := diff(st.want, ids); d != "" {
			t.Errorf("ExpireCommands(%v) actions (-want +got):\n%s", st.now, d)
		}
	}
	if d := diff(action.Counters{Sent: 2, Done: 2, Expired: 2}, counters(t, s, valid.ID)); d != "" {
		t.Errorf("counters of the second action (-want +got):\n%s", d)
	}
}

func testPendingCommands(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	now := baseTime
	validA := newAction(31, now.Add(-time.Hour), now.Add(time.Hour))
	future := newAction(32, now.Add(time.Hour), now.Add(2*time.Hour))
	past := newAction(33, now.Add(-2*time.Hour), now.Add(-time.Hour))
	validB := newAction(34, now.Add(-time.Minute), now.Add(time.Minute))
	validB.Name = "second valid action"
	validB.PGPSignatures = []string{"only one signature"}
	for _, a := range []*action.Action{validA, future, past, validB} {
		mustCreateAction(t, s, a)
	}
	mustCreateCommands(t, s, []action.Command{
		{ID: 406, Action: action.Action{ID: validB.ID}, AgentID: "p1"},
		{ID: 401, Action: action.Action{ID: validA.ID}, AgentID: "p1"},
		{ID: 402, Action: action.Action{ID: future.ID}, AgentID: "p1"},
		{ID: 403, Action: action.Action{ID: past.ID}, AgentID: "p1"},
		{ID: 404, Action: action.Action{ID: validA.ID}, AgentID: "p2"},
		{ID: 405, Action: action.Action{ID: validB.ID}, AgentID: "p1", AgentName: "done already"},
	})
	storeResults(t, s, result("p1", 405, validB.ID, action.CmdSuccess, true))
	byID := map[uint64]*action.Action{validA.ID: validA, future.ID: future, past.ID: past, validB.ID: validB}
	tests := []struct {
		agent string
		now   time.Time
		want  []uint64
	}{
		{"p1", now, []uint64{401, 406}},
		{"p1", validB.ExpireAfter, []uint64{401, 406}},
		{"p1", validB.ExpireAfter.Add(time.Nanosecond), []uint64{401}},
		{"p1", now.Add(time.Hour), []uint64{401, 402}},
		{"p1", now.Add(90 * time.Minute), []uint64{402}},
		{"p1", now.Add(-90 * time.Minute), []uint64{403}},
		{"p2", now, []uint64{404}},
		{"nobody", now, nil},
	}
	for _, tt := range tests {
		cmds, err := s.PendingCommands(ctx, tt.agent, tt.now)
		if err != nil {
			t.Fatalf("PendingCommands(%s, %v): %v", tt.agent, tt.now, err)
		}
		var ids []uint64
		for _, c := range cmds {
			ids = append(ids, c.ID)
			if c.Status != action.CmdSent || c.AgentID != tt.agent {
				t.Errorf("PendingCommands(%s): command %d is %q for %q", tt.agent, c.ID, c.Status, c.AgentID)
			}
			want := byID[c.Action.ID]
			if want == nil {
				t.Errorf("PendingCommands(%s): command %d has action %d", tt.agent, c.ID, c.Action.ID)
				continue
			}
			wantEnc, _ := want.Encoding()
			gotEnc, err := c.Action.Encoding()
			if err != nil || string(gotEnc) != string(wantEnc) {
				t.Errorf("PendingCommands(%s): command %d: signed encoding %q, %v; want %q", tt.agent, c.ID, gotEnc, err, wantEnc)
			}
			if d := diff(want.PGPSignatures, c.Action.PGPSignatures); d != "" {
				t.Errorf("PendingCommands(%s): command %d: signatures (-want +got):\n%s", tt.agent, c.ID, d)
			}
		}
		if d := diff(tt.want, ids); d != "" {
			t.Errorf("PendingCommands(%s, %v) (-want +got):\n%s", tt.agent, tt.now, d)
		}
	}
}

func testCommandsPaging(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	const aid, other = 41, 42
	a := newAction(aid, baseTime.Add(-time.Hour), baseTime.Add(time.Hour))
	mustCreateAction(t, s, a)
	mustCreateAction(t, s, newAction(other, baseTime.Add(-time.Hour), baseTime.Add(time.Hour)))
	var agents []string
	for i := range 25 {
		agents = append(agents, fmt.Sprintf("g%02d", i))
	}
	mustCreateCommands(t, s, commandsFor(aid, 1001, agents...))
	mustCreateCommands(t, s, commandsFor(other, 5001, agents[:3]...))
	// i odd and not a multiple of 5: success, found; multiple of 5: failed;
	// others stay sent.
	var results []action.ResultMessage
	var allIDs, foundIDs, failedIDs, sentIDs []uint64
	for i, ag := range agents {
		id := uint64(1001 + i)
		allIDs = append(allIDs, id)
		switch {
		case i%5 == 0:
			results = append(results, result(ag, id, aid, action.CmdFailed, false))
			failedIDs = append(failedIDs, id)
		case i%2 == 1:
			results = append(results, result(ag, id, aid, action.CmdSuccess, true))
			foundIDs = append(foundIDs, id)
		default:
			sentIDs = append(sentIDs, id)
		}
	}
	results = append(results, result("g00", 5001, other, action.CmdSuccess, true))
	storeResults(t, s, results...)

	page := func(q store.CommandQuery, limit int) []uint64 {
		t.Helper()
		var ids []uint64
		q.Limit = limit
		for range 100 {
			cmds, err := s.Commands(ctx, q)
			if err != nil {
				t.Fatalf("Commands(%+v): %v", q, err)
			}
			if limit > 0 && len(cmds) > limit {
				t.Fatalf("Commands(%+v) returned %d commands", q, len(cmds))
			}
			for _, c := range cmds {
				ids = append(ids, c.ID)
			}
			if len(cmds) == 0 || limit == 0 {
				break
			}
			q.AfterID = cmds[len(cmds)-1].ID
		}
		return ids
	}
	tests := []struct {
		name  string
		q     store.CommandQuery
		limit int
		want  []uint64
	}{
		{"all of the action", store.CommandQuery{ActionID: aid}, 0, allIDs},
		{"pages of 10", store.CommandQuery{ActionID: aid}, 10, allIDs},
		{"pages of 1", store.CommandQuery{ActionID: aid}, 1, allIDs},
		{"found only", store.CommandQuery{ActionID: aid, FoundOnly: true}, 0, foundIDs},
		{"found only, pages of 3", store.CommandQuery{ActionID: aid, FoundOnly: true}, 3, foundIDs},
		{"failed", store.CommandQuery{ActionID: aid, Status: action.CmdFailed}, 2, failedIDs},
		{"sent", store.CommandQuery{ActionID: aid, Status: action.CmdSent}, 4, sentIDs},
		{"after an ID", store.CommandQuery{ActionID: aid, AfterID: 1020}, 0, allIDs[20:]},
		{"one agent", store.CommandQuery{AgentID: "g03"}, 0, []uint64{1004}},
		{"one agent, every action", store.CommandQuery{AgentID: "g01"}, 0, []uint64{1002, 5002}},
		{"one agent, one action", store.CommandQuery{AgentID: "g01", ActionID: other}, 0, []uint64{5002}},
		{"every action", store.CommandQuery{}, 7, append(slices.Clone(allIDs), 5001, 5002, 5003)},
		{"other action, found", store.CommandQuery{ActionID: other, FoundOnly: true}, 0, []uint64{5001}},
		{"unknown action", store.CommandQuery{ActionID: 999}, 0, nil},
	}
	for _, tt := range tests {
		if d := diff(tt.want, page(tt.q, tt.limit)); d != "" {
			t.Errorf("%s: IDs (-want +got):\n%s", tt.name, d)
		}
	}

	withResults, err := s.Commands(ctx, store.CommandQuery{ActionID: aid, Limit: 2})
	if err != nil {
		t.Fatalf("Commands: %v", err)
	}
	if len(withResults) != 2 {
		t.Fatalf("Commands(limit 2) returned %d commands", len(withResults))
	}
	if d := diff(results[0].Results, withResults[0].Results); d != "" {
		t.Errorf("results of command 1001 (-want +got):\n%s", d)
	}
	if withResults[0].Action.ID != aid || withResults[0].Action.Name != "" {
		t.Errorf("without WithAction, action = %d %q; want only the ID %d", withResults[0].Action.ID, withResults[0].Action.Name, aid)
	}
	noResults, err := s.Commands(ctx, store.CommandQuery{ActionID: aid, NoResults: true, WithAction: true})
	if err != nil {
		t.Fatalf("Commands(no results, with action): %v", err)
	}
	for _, c := range noResults {
		if len(c.Results) != 0 {
			t.Errorf("NoResults: command %d has %d results", c.ID, len(c.Results))
		}
		if c.Action.ID != aid || c.Action.Name != a.Name || len(c.Action.PGPSignatures) != len(a.PGPSignatures) {
			t.Errorf("WithAction: command %d has action %d %q with %d signatures; want %d %q with %d",
				c.ID, c.Action.ID, c.Action.Name, len(c.Action.PGPSignatures), aid, a.Name, len(a.PGPSignatures))
		}
	}
	if len(noResults) != len(allIDs) {
		t.Errorf("Commands(no results) returned %d commands, want %d", len(noResults), len(allIDs))
	}
}

func testConcurrentWriters(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	const (
		writers   = 4
		perWriter = 500
		batch     = 100
		aid       = 51
	)
	mustCreateAction(t, s, newAction(aid, baseTime.Add(-time.Hour), baseTime.Add(time.Hour)))
	var all []action.Command
	for w := range writers {
		for i := range perWriter {
			id := uint64(w*perWriter + i + 1)
			all = append(all, action.Command{ID: id, Action: action.Action{ID: aid}, AgentID: fmt.Sprintf("w%d-%04d", w, i)})
		}
	}
	mustCreateCommands(t, s, all)

	var wg sync.WaitGroup
	acks := make([]map[uint64]int, writers)
	for w := range writers {
		acks[w] = map[uint64]int{}
		wg.Go(func() {
			cmds := all[w*perWriter : (w+1)*perWriter]
			for start := 0; start < len(cmds); start += batch {
				var rs []action.ResultMessage
				for _, c := range cmds[start : start+batch] {
					rs = append(rs, result(c.AgentID, c.ID, aid, action.CmdSuccess, c.ID%3 == 0))
				}
				if start > 0 { // resend the previous batch's last result
					p := cmds[start-1]
					rs = append(rs, result(p.AgentID, p.ID, aid, action.CmdSuccess, p.ID%3 == 0))
				}
				ack, err := s.StoreResults(ctx, rs)
				if err != nil {
					t.Errorf("writer %d: StoreResults: %v", w, err)
					return
				}
				for _, id := range ack {
					acks[w][id]++
				}
			}
		})
	}
	for u := range 2 {
		wg.Go(func() {
			for round := range 5 {
				agents := fleet(time.Now())
				for i := range agents {
					agents[i].ID = fmt.Sprintf("u%d-%s", u, agents[i].ID)
					agents[i].PID = round
				}
				if err := s.UpsertAgents(ctx, agents); err != nil {
					t.Errorf("upserter %d: UpsertAgents: %v", u, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for w := range writers {
		if len(acks[w]) != perWriter {
			t.Errorf("writer %d: %d distinct commands acknowledged, want %d", w, len(acks[w]), perWriter)
		}
	}
	if d := diff(action.Counters{Sent: writers * perWriter, Done: writers * perWriter, Success: writers * perWriter},
		counters(t, s, aid)); d != "" {
		t.Errorf("counters (-want +got):\n%s", d)
	}
	if n, err := s.CountAgents(ctx, nil); err != nil || n != 2*len(fleet(time.Now())) {
		t.Errorf("CountAgents = %d, %v; want %d", n, err, 2*len(fleet(time.Now())))
	}
}

func testReopen(t *testing.T, open Opener) {
	ctx := t.Context()
	s := open(t)
	agents := fleet(baseTime)
	if err := s.UpsertAgents(ctx, agents); err != nil {
		t.Fatalf("UpsertAgents: %v", err)
	}
	inv := action.Investigator{Name: "Alice", Fingerprint: "ABCDEF0123456789ABCDEF0123456789ABCDEF01",
		Status: action.InvestigatorActive, Permissions: []string{"action.read"}, CreatedAt: baseTime}
	id, err := s.CreateInvestigator(ctx, inv)
	if err != nil {
		t.Fatalf("CreateInvestigator: %v", err)
	}
	inv.ID = id
	a := newAction(61, baseTime.Add(-time.Hour), baseTime.Add(time.Hour))
	mustCreateAction(t, s, a)
	mustCreateCommands(t, s, commandsFor(a.ID, 1, "a01", "a02"))
	r := result("a01", 1, a.ID, action.CmdSuccess, true)
	storeResults(t, s, r)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for round := range 2 {
		s := open(t)
		gotAgents, err := s.Agents(ctx, store.AgentQuery{})
		if err != nil {
			t.Fatalf("round %d: Agents: %v", round, err)
		}
		if d := diff(agentIDs(agents), agentIDs(gotAgents)); d != "" {
			t.Errorf("round %d: agents after reopening (-want +got):\n%s", round, d)
		}
		gotInv, err := s.InvestigatorByFingerprint(ctx, inv.Fingerprint)
		if err != nil {
			t.Fatalf("round %d: InvestigatorByFingerprint: %v", round, err)
		}
		if d := diff(inv, gotInv); d != "" {
			t.Errorf("round %d: investigator after reopening (-want +got):\n%s", round, d)
		}
		got, err := s.Action(ctx, a.ID)
		if err != nil {
			t.Fatalf("round %d: Action: %v", round, err)
		}
		enc, _ := got.Encoding()
		wantEnc, _ := a.Encoding()
		if string(enc) != string(wantEnc) {
			t.Errorf("round %d: action encoding after reopening:\n got %s\nwant %s", round, enc, wantEnc)
		}
		// Each round stores the second result before closing.
		if d := diff(action.Counters{Sent: 2, Done: 1 + round, InFlight: 1 - round, Success: 1 + round}, got.Counters); d != "" {
			t.Errorf("round %d: counters after reopening (-want +got):\n%s", round, d)
		}
		c, err := s.Command(ctx, 1)
		if err != nil {
			t.Fatalf("round %d: Command: %v", round, err)
		}
		if d := diff(r.Results, c.Results); d != "" {
			t.Errorf("round %d: results after reopening (-want +got):\n%s", round, d)
		}
		if err := s.CreateAction(ctx, a); !errors.Is(err, store.ErrExists) {
			t.Errorf("round %d: CreateAction(existing) error = %v, want ErrExists", round, err)
		}
		if ack := storeResults(t, s, result("a02", 2, a.ID, action.CmdSuccess, false)); len(ack) != 1 || ack[0] != 2 {
			t.Errorf("round %d: acks = %v, want [2]", round, ack)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
	}
}
