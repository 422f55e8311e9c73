package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
)

// These tests run the real pipeline: the agent binary (built with -tags
// migtest), the embedded NATS relay, the enrollment fake, real signatures and
// real module child processes.

func TestAgentRunsSignedCommand(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{tags: map[string]string{"operator": "IT"}, name: "web1"})

	// The hello describes the agent.
	if p.enrollCount(a.id) != 1 {
		t.Errorf("agent enrolled %d times, want 1", p.enrollCount(a.id))
	}

	tgt := fmt.Sprintf("tags->>'operator'='IT' AND environment->>'os'='%s' AND name LIKE 'web%%'", runtime.GOOS)
	act := signed(t, newAction(tgt, testOp("ok", "marker", "m1"), testOp("ok", "marker", "m2")), "alice")
	cmdID := newID()
	p.send(t, a.id, cmdID, act)
	r := p.result(t, a.id)
	if r.CommandID != cmdID || r.ActionID != act.ID || r.Status != action.CmdSuccess || r.Code != "" {
		t.Fatalf("result = command %d action %d status %q code %q error %q; want command %d action %d success",
			r.CommandID, r.ActionID, r.Status, r.Code, r.Error, cmdID, act.ID)
	}
	if len(r.Results) != 2 {
		t.Fatalf("%d operation results, want 2", len(r.Results))
	}
	for i, want := range []string{"m1", "m2"} {
		res := r.Results[i]
		var el struct{ Marker string }
		if err := json.Unmarshal(res.Elements, &el); err != nil || !res.Success || !res.FoundAnything || el.Marker != want {
			t.Errorf("operation %d: result %+v (%v), want success with marker %s", i, res, err, want)
		}
	}
	if r.Started.IsZero() || r.Finished.Before(r.Started) {
		t.Errorf("started %v finished %v, want both set in order", r.Started, r.Finished)
	}

	// The same action again, as a new command, is a replay; the same command
	// again, already answered and acknowledged, is ignored.
	waitUntil(t, "acknowledged result removed", func() bool {
		return !fileExists(filepath.Join(a.dir, "outbox", fileName(cmdID)))
	})
	p.send(t, a.id, cmdID, act)
	replayID := newID()
	p.send(t, a.id, replayID, act)
	r = p.result(t, a.id)
	if r.CommandID != replayID || r.Status != action.CmdFailed || r.Code != action.CodeReplay {
		t.Errorf("replayed action: result command %d status %q code %q, want command %d failed %q",
			r.CommandID, r.Status, r.Code, replayID, action.CodeReplay)
	}
	select {
	case r := <-p.resultChan(a.id):
		t.Errorf("unexpected result for command %d (status %s code %s): the acknowledged command was answered again", r.CommandID, r.Status, r.Code)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestAgentHello(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{tags: map[string]string{"env": "test"}, name: "db1"})
	a.stop()
	hb := a.start() // a restart says hello again, without enrolling again
	if n := p.enrollCount(a.id); n != 1 {
		t.Errorf("agent enrolled %d times over a restart, want 1", n)
	}
	got := hb.Agent
	if got.ID != a.id || got.Name != "db1" || got.QueueLoc != runtime.GOOS+"."+a.id || got.Mode != action.ModeDaemon ||
		got.Status != action.AgentOnline || got.PID == 0 || got.Version == "" {
		t.Errorf("hello agent = %+v, want id %s name db1 queueloc %s.%s mode daemon, online, pid and version set",
			got, a.id, runtime.GOOS, a.id)
	}
	if got.Tags["env"] != "test" {
		t.Errorf("hello tags = %v, want env=test", got.Tags)
	}
	env := got.Environment
	if env.OS != runtime.GOOS || env.Arch != runtime.GOARCH || env.Init == "" {
		t.Errorf("hello environment = %+v, want os %s arch %s and an init system", env, runtime.GOOS, runtime.GOARCH)
	}
	if !slices.Contains(env.Modules, "testmodule") {
		t.Errorf("hello modules = %v, want testmodule among them", env.Modules)
	}
}

func TestAgentRefusals(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{name: "refusals"})
	all := "name LIKE '%'"

	tamperTarget := signed(t, newAction("name='someone-else'", testOp("ok")), "alice")
	tamperTarget.Target = all
	tamperParams := signed(t, newAction(all, testOp("ok", "marker", "signed")), "alice")
	tamperParams.Operations[0] = testOp("ok", "marker", "changed")
	expired := newAction(all, testOp("ok"))
	expired.ValidFrom, expired.ExpireAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	notYet := newAction(all, testOp("ok"))
	notYet.ValidFrom, notYet.ExpireAfter = time.Now().Add(time.Hour), time.Now().Add(2*time.Hour)
	badParams := newAction(all, action.Operation{Module: "testmodule", Parameters: json.RawMessage(`{"mode":"dance"}`)})
	unknownModule := newAction(all, action.Operation{Module: "nosuchmodule", Parameters: json.RawMessage(`{}`)})
	invalid := newAction(all, testOp("ok"))
	invalid.ExpireAfter = invalid.ValidFrom.Add(-time.Second)

	tests := []struct {
		name string
		act  *action.Action
		// agentID overrides the command's agent ID.
		agentID string
		want    string
	}{
		{"unsigned", newAction(all, testOp("ok")), "", action.CodeBadSignature},
		{"target changed after signing", tamperTarget, "", action.CodeBadSignature},
		{"parameters changed after signing", tamperParams, "", action.CodeBadSignature},
		{"unknown signer", signed(t, newAction(all, testOp("ok")), "carol"), "", action.CodeUntrusted},
		{"expired", signed(t, expired, "alice"), "", action.CodeExpired},
		{"not yet valid", signed(t, notYet, "alice"), "", action.CodeNotYetValid},
		{"not targeted", signed(t, newAction("name='someone-else'", testOp("ok")), "alice"), "", action.CodeNotTargeted},
		{"not targeted by tag", signed(t, newAction("tags->>'operator'='IT'", testOp("ok")), "alice"), "", action.CodeNotTargeted},
		{"bad parameters", signed(t, badParams, "alice"), "", action.CodeBadParameters},
		{"unknown module", signed(t, unknownModule, "alice"), "", action.CodeUnknownModule},
		{"invalid action", invalid, "", action.CodeBadEncoding},
		{"for another agent", signed(t, newAction(all, testOp("ok")), "alice"), "ffffffffffffffffffffffffffffffff", action.CodeBadEncoding},
	}
	ids := map[uint64]string{}
	for _, tt := range tests {
		id := newID()
		ids[id] = tt.name
		agentID := a.id
		if tt.agentID != "" {
			agentID = tt.agentID
		}
		p.sendRaw(t, a.id, commandBytes(t, agentID, id, tt.act))
	}
	var want []uint64
	for id := range ids {
		want = append(want, id)
	}
	got := p.resultsFor(t, a.id, want...)
	for i, tt := range tests {
		var id uint64
		for k, v := range ids {
			if v == tt.name {
				id = k
			}
		}
		r := got[id]
		if r.Status != action.CmdFailed || r.Code != tt.want || r.Error == "" || len(r.Results) != 0 {
			t.Errorf("%d %s: status %q code %q error %q, %d results; want failed %q with a reason and no results",
				i, tt.name, r.Status, r.Code, r.Error, len(r.Results), tt.want)
		}
	}
	// Nothing was journaled: none of these actions ran.
	j, err := openJournal(a.dir, true, time.Now(), discard())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(j.entries); n != 0 {
		t.Errorf("journal has %d entries after refusals only, want 0", n)
	}
}

func TestAgentUndecodableCommand(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{})
	id := newID()
	p.sendRaw(t, a.id, []byte(`{"v":1,"command":{"id":`+fmt.Sprint(id)+`,"agentid":"`+a.id+`","action":{"name":5}}}`))
	r := p.result(t, a.id)
	if r.CommandID != id || r.Status != action.CmdFailed || r.Code != action.CodeBadEncoding {
		t.Errorf("result command %d status %q code %q, want command %d failed %q", r.CommandID, r.Status, r.Code, id, action.CodeBadEncoding)
	}
}

func TestAgentACLWeight(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{acl: aclData(t, 2)})
	all := "name LIKE '%'"
	one, two := newID(), newID()
	p.send(t, a.id, one, signed(t, newAction(all, testOp("ok")), "alice"))
	p.send(t, a.id, two, signed(t, newAction(all, testOp("ok")), "alice", "bob"))
	got := p.resultsFor(t, a.id, one, two)
	if r := got[one]; r.Status != action.CmdFailed || r.Code != action.CodeACLDenied {
		t.Errorf("one signature of weight 1 under minimum 2: status %q code %q, want failed %q", r.Status, r.Code, action.CodeACLDenied)
	}
	if r := got[two]; r.Status != action.CmdSuccess {
		t.Errorf("two signatures reaching minimum 2: status %q code %q error %q, want success", r.Status, r.Code, r.Error)
	}
}

func TestAgentModuleFailures(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{moduleTimeout: "3s"})
	all := "name LIKE '%'"
	tests := []struct {
		name       string
		ops        []action.Operation
		wantStatus string
		wantCode   string
		// wantOK lists which operations succeeded.
		wantOK []bool
	}{
		{"panic", []action.Operation{testOp("panic")}, action.CmdFailed, action.CodeModuleFailed, []bool{false}},
		{"exit", []action.Operation{testOp("exit")}, action.CmdFailed, action.CodeModuleFailed, []bool{false}},
		{"garbage", []action.Operation{testOp("garbage")}, action.CmdFailed, action.CodeModuleFailed, []bool{false}},
		{"hang", []action.Operation{testOp("hang")}, action.CmdTimeout, action.CodeModuleTimeout, []bool{false}},
		{"partial", []action.Operation{testOp("ok"), testOp("panic"), testOp("ok")}, action.CmdFailed, action.CodeModuleFailed, []bool{true, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := newID()
			p.send(t, a.id, id, signed(t, newAction(all, tt.ops...), "alice"))
			r := p.resultsFor(t, a.id, id)[id]
			if r.Status != tt.wantStatus || r.Code != tt.wantCode || r.Error == "" {
				t.Errorf("status %q code %q error %q, want %q %q with a reason", r.Status, r.Code, r.Error, tt.wantStatus, tt.wantCode)
			}
			var ok []bool
			for _, res := range r.Results {
				ok = append(ok, res.Success)
			}
			if !slices.Equal(ok, tt.wantOK) {
				t.Errorf("operation successes %v, want %v", ok, tt.wantOK)
			}
			// The next command still runs.
			next := newID()
			p.send(t, a.id, next, signed(t, newAction(all, testOp("ok")), "alice"))
			if r := p.resultsFor(t, a.id, next)[next]; r.Status != action.CmdSuccess {
				t.Errorf("command after %s: status %q code %q error %q, want success", tt.name, r.Status, r.Code, r.Error)
			}
		})
	}
}

func TestAgentTimeoutBoundByExpiry(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{moduleTimeout: "1m"})
	act := newAction("name LIKE '%'", testOp("sleep", "duration", "1m"))
	act.ExpireAfter = time.Now().Add(4 * time.Second)
	id := newID()
	start := time.Now()
	p.send(t, a.id, id, signed(t, act, "alice"))
	r := p.result(t, a.id)
	if r.CommandID != id || r.Status != action.CmdTimeout || r.Code != action.CodeModuleTimeout {
		t.Errorf("result command %d status %q code %q, want %d timeout", r.CommandID, r.Status, r.Code, id)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the operation ran %s, past its action's expiry", d)
	}
}

func TestAgentResultKeptUntilAcked(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{})
	p.mu.Lock()
	p.noAck[a.id] = true
	p.mu.Unlock()

	id := newID()
	p.send(t, a.id, id, signed(t, newAction("name LIKE '%'", testOp("ok")), "alice"))
	if r := p.result(t, a.id); r.CommandID != id || r.Status != action.CmdSuccess {
		t.Fatalf("result command %d status %q, want %d success", r.CommandID, r.Status, id)
	}
	kept := filepath.Join(a.dir, "outbox", fileName(id))
	if !fileExists(kept) {
		t.Fatalf("unacknowledged result is not in the outbox (%s)", kept)
	}

	// After the relay comes back, the agent says hello and sends the kept
	// result again.
	p.restartRelay()
	p.hello(t, a.id)
	if r := p.result(t, a.id); r.CommandID != id || r.Status != action.CmdSuccess {
		t.Errorf("after reconnect: result command %d status %q, want %d success again", r.CommandID, r.Status, id)
	}
	if !fileExists(kept) {
		t.Errorf("result left the outbox before it was acknowledged")
	}

	// The same command delivered again is answered with the kept result.
	p.send(t, a.id, id, signed(t, newAction("name LIKE '%'", testOp("ok")), "alice"))
	if r := p.result(t, a.id); r.CommandID != id || r.Status != action.CmdSuccess {
		t.Errorf("command received again: result command %d status %q, want the kept result of %d", r.CommandID, r.Status, id)
	}

	p.ack(a.id, id)
	waitUntil(t, "acknowledged result removed from the outbox", func() bool { return !fileExists(kept) })
}

func TestAgentResumesInbox(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{})
	all := "name LIKE '%'"

	// A command that was running when the agent died is answered failed
	// after the restart.
	act := signed(t, newAction(all, testOp("sleep", "duration", "3s")), "alice")
	id := newID()
	p.send(t, a.id, id, act)
	waitUntil(t, "action journaled", func() bool {
		j, err := openJournal(a.dir, true, time.Now(), discard())
		if err != nil {
			return false
		}
		_, ok := j.lookup(act.ID)
		return ok
	})
	a.kill()
	// A command that arrived but was never checked is run after the restart.
	fresh := signed(t, newAction(all, testOp("ok", "marker", "resumed")), "alice")
	freshID := newID()
	if err := os.WriteFile(filepath.Join(a.dir, "inbox", "1.json"), commandBytes(t, a.id, freshID, fresh), 0o600); err != nil {
		t.Fatal(err)
	}
	a.start()
	got := p.resultsFor(t, a.id, id, freshID)
	if r := got[id]; r.Status != action.CmdFailed || r.Code != action.CodeModuleFailed || !strings.Contains(r.Error, "restarted") {
		t.Errorf("interrupted command: status %q code %q error %q, want failed %q saying the agent restarted", r.Status, r.Code, r.Error, action.CodeModuleFailed)
	}
	if r := got[freshID]; r.Status != action.CmdSuccess {
		t.Errorf("command left in the inbox: status %q code %q error %q, want success", r.Status, r.Code, r.Error)
	}
	waitUntil(t, "inbox emptied", func() bool {
		ents, err := os.ReadDir(filepath.Join(a.dir, "inbox"))
		return err == nil && len(ents) == 0
	})
}

func TestAgentReenrollsWhenRelayRefuses(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{})
	a.stop()
	// The server forgets the agent's relay password: the kept credentials no
	// longer work, and the agent must enroll again.
	p.mu.Lock()
	delete(p.passwords, a.id)
	p.mu.Unlock()
	a.start()
	if n := p.enrollCount(a.id); n != 2 {
		t.Errorf("agent enrolled %d times, want 2", n)
	}
	id := newID()
	p.send(t, a.id, id, signed(t, newAction("name LIKE '%'", testOp("ok")), "alice"))
	if r := p.result(t, a.id); r.CommandID != id || r.Status != action.CmdSuccess {
		t.Errorf("after re-enrolling: result command %d status %q, want %d success", r.CommandID, r.Status, id)
	}
}

// TestAgentOversizedResult runs module results over the relay limit
// through the real agent and its module children: what does not fit is
// cut as docs/MODULES.md says (module.FitResult and module.FitMessage),
// the command succeeds, each cut result says so first in its errors, and
// the signed result verifies.
func TestAgentOversizedResult(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{moduleTimeout: "60s"})
	big := func(n int) action.Operation {
		return action.Operation{Module: "testmodule", Parameters: json.RawMessage(fmt.Sprintf(`{"mode":"big","count":%d}`, n))}
	}
	// Elements of 4 KiB: 3000 are 12 MiB, over the 8 MiB relay limit on
	// their own (the module child cuts them); 1200 are 4.8 MiB, under it,
	// but two of them in one command are over it (the agent cuts them).
	tests := []struct {
		name string
		ops  []action.Operation
		// wantKept is how many elements each operation keeps; -1 for the
		// marker of an untouched "ok" operation.
		wantKept []int
		// wantTotal is how many elements the note of a cut result says
		// the module returned.
		wantTotal []int
	}{
		{"one operation over the limit", []action.Operation{big(3000), testOp("ok", "marker", "small")}, []int{1500, -1}, []int{3000, 0}},
		{"operations together over the limit", []action.Operation{big(1200), big(1200)}, []int{600, 1200}, []int{1200, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := newID()
			p.send(t, a.id, id, signed(t, newAction("name LIKE '%'", tt.ops...), "alice"))
			r := p.resultsFor(t, a.id, id)[id]
			if r.Status != action.CmdSuccess || r.Code != "" {
				t.Fatalf("status %q code %q error %q, want success", r.Status, r.Code, r.Error)
			}
			if err := action.VerifyResult(r.Fields(), r.Signature); err != nil {
				t.Errorf("the cut result does not verify: %v", err)
			}
			if len(r.Results) != len(tt.ops) {
				t.Fatalf("%d results, want %d", len(r.Results), len(tt.ops))
			}
			for i, res := range r.Results {
				if !res.Success || !res.FoundAnything {
					t.Errorf("operation %d: success %v found %v, want both", i, res.Success, res.FoundAnything)
				}
				var notes []string
				for _, e := range res.Errors {
					if strings.HasPrefix(e, action.CodeTooLarge+": ") {
						notes = append(notes, e)
					}
				}
				if tt.wantKept[i] < 0 {
					var el struct{ Marker string }
					if err := json.Unmarshal(res.Elements, &el); err != nil || el.Marker != "small" || len(notes) != 0 {
						t.Errorf("operation %d: elements %.100s notes %q, want marker small, untouched", i, res.Elements, notes)
					}
					continue
				}
				var kept []string
				if err := json.Unmarshal(res.Elements, &kept); err != nil || len(kept) != tt.wantKept[i] {
					t.Fatalf("operation %d: %d elements kept (%v), want %d", i, len(kept), err, tt.wantKept[i])
				}
				if !strings.HasPrefix(kept[0], "0-") || !strings.HasPrefix(kept[len(kept)-1], fmt.Sprintf("%d-", len(kept)-1)) {
					t.Errorf("operation %d: kept elements are not the first ones", i)
				}
				if !strings.HasPrefix(string(res.Statistics), `{"count":`) {
					t.Errorf("operation %d: statistics %s, want them kept", i, res.Statistics)
				}
				if tt.wantTotal[i] == 0 {
					if len(notes) != 0 {
						t.Errorf("operation %d: notes %q, want none (nothing was cut)", i, notes)
					}
					continue
				}
				want := fmt.Sprintf("kept %d of %d elements", tt.wantKept[i], tt.wantTotal[i])
				if len(notes) != 1 || !strings.Contains(res.Errors[0], want) {
					t.Errorf("operation %d: errors %q, want one %s note first saying %q", i, res.Errors, action.CodeTooLarge, want)
				}
			}
		})
	}
}
