package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/natsrelay"
	"github.com/migplatform/mig/internal/scheduler"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
)

// TestMaliciousAgentResults plays an enrolled agent turned hostile: a real
// mig-agent enrolls (its own key, its own relay credentials), then is
// stopped, and the attacker publishes on the relay with its credentials.
// It sends results for another agent's command, results in another agent's
// name, results for a command that does not exist, the same result twice
// with another outcome, and a result after its command expired. The
// counters of every action stay exact (they match the commands' statuses),
// no other agent's command changes, and the victim's own result is stored.
func TestMaliciousAgentResults(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	ts := startTestServer(t, dir)
	srv := ts.Server

	alice := newInvestigator(t, "Alice")
	agentConfig := func(name string) string {
		b, _ := json.Marshal(map[string]any{
			"server": srv.APIURL(), "ca": ts.caFile, "enrollmenttoken": ts.cfg.EnrollmentTokens[0],
			"statedir": filepath.Join(dir, name), "keyringdata": alice.pub,
			"acldata":   fmt.Sprintf(`{"default": {"minimumweight": 1, "investigators": {"Alice": {"fingerprint": %q, "weight": 1}}}}`, alice.fp),
			"heartbeat": "1s", "moduleexe": bins.agent, "name": name,
		})
		f := filepath.Join(dir, name+".json")
		must(t, os.WriteFile(f, b, 0o600))
		return f
	}

	// The attacker: a real agent's enrollment, then its credentials.
	mallory := start(t, nil, bins.agent, "-c", agentConfig("mallory"))
	var evil string
	waitFor(t, 30*time.Second, "mallory to enroll", func() bool {
		agents, err := srv.Store.Agents(ctx, store.AgentQuery{})
		if err != nil || len(agents) != 1 || agents[0].Environment.OS == "" {
			return false
		}
		evil = agents[0].ID
		// The server stores the agent before the agent has written the
		// credentials it received: wait for them too.
		_, err = os.Stat(filepath.Join(dir, "mallory", "relay.json"))
		return err == nil
	})
	// The agent process stops; its credentials are the attacker's.
	mallory.stop()
	credData, err := os.ReadFile(filepath.Join(dir, "mallory", "relay.json"))
	must(t, err)
	var cred struct {
		AgentID string            `json:"agentid"`
		Relay   relay.Credentials `json:"relay"`
	}
	must(t, json.Unmarshal(credData, &cred))
	if cred.AgentID != evil {
		t.Fatalf("mallory's credentials are for %q, its ID is %q", cred.AgentID, evil)
	}

	// The victim: a real agent that runs what it is sent.
	start(t, nil, bins.agent, "-c", agentConfig("victim"))
	var victim string
	var hello time.Time
	victimSeen := func() (action.Agent, bool) {
		agents, err := srv.Store.Agents(ctx, store.AgentQuery{})
		if err != nil {
			return action.Agent{}, false
		}
		for _, a := range agents {
			if a.ID != evil && a.Environment.OS != "" {
				return a, true
			}
		}
		return action.Agent{}, false
	}
	waitFor(t, 30*time.Second, "the victim to enroll", func() bool {
		a, ok := victimSeen()
		victim, hello = a.ID, a.HeartbeatTime
		return ok
	})
	// A later heartbeat stored means the server is done with the hello
	// (it sends pending commands after storing a hello): the victim's
	// command below is not sent until the test sends it.
	waitFor(t, 30*time.Second, "the victim's next heartbeat", func() bool {
		a, ok := victimSeen()
		return ok && a.HeartbeatTime.After(hello)
	})

	// One action for both agents, with a command each, stored as the
	// scheduler would; the victim's is not sent yet.
	newAction := func(name string, expire time.Duration) *action.Action {
		id, _ := scheduler.NewID()
		now := time.Now()
		a := &action.Action{ID: id, Name: name, Target: "status='online'",
			ValidFrom: now.Add(-time.Minute), ExpireAfter: now.Add(expire),
			Operations: []action.Operation{{Module: "testmodule", Parameters: json.RawMessage(`{"mode":"ok","marker":"victim"}`)}}}
		must(t, sign.SignAction(a, alice.signer))
		must(t, srv.Store.CreateAction(ctx, a))
		return a
	}
	newCommand := func(a *action.Action, agentID string) uint64 {
		id, _ := scheduler.NewID()
		must(t, srv.Store.CreateCommands(ctx, []action.Command{{ID: id, Action: action.Action{ID: a.ID}, AgentID: agentID,
			Status: action.CmdSent, StartTime: time.Now()}}))
		return id
	}
	act := newAction("malicious agent", 10*time.Minute)
	victimCmd := newCommand(act, victim)
	evilCmd := newCommand(act, evil)

	// The attacker's connection to the relay, as mallory.
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := natsrelay.Dial(dctx, evil, cred.Relay)
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	found := []action.Result{{FoundAnything: true, Success: true, Elements: json.RawMessage(`{"forged":true}`)}}
	publish := func(r action.ResultMessage) {
		t.Helper()
		r.V = action.ProtocolVersion
		data, err := action.Marshal(r)
		must(t, err)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		must(t, conn.Publish(pctx, relay.KindResult, data))
	}
	// settle waits until the scheduler has taken in everything published
	// so far: a result for mallory's marker command, published last, is
	// stored.
	settle := func() {
		t.Helper()
		m := newAction("marker", 10*time.Minute)
		marker := newCommand(m, evil)
		publish(action.ResultMessage{AgentID: evil, CommandID: marker, ActionID: m.ID, Status: action.CmdSuccess})
		waitFor(t, 30*time.Second, "the scheduler to store the marker result", func() bool {
			c, err := srv.Store.Command(ctx, marker)
			return err == nil && c.Status == action.CmdSuccess
		})
	}
	// exact checks that act's counters are what its commands' statuses say
	// and that they are want.
	exact := func(atk *attackRun, a *action.Action, want action.Counters) {
		t.Helper()
		got, err := srv.Store.Action(ctx, a.ID)
		must(t, err)
		cmds, err := srv.Store.Commands(ctx, store.CommandQuery{ActionID: a.ID, NoResults: true})
		must(t, err)
		var fromCmds action.Counters
		for _, c := range cmds {
			fromCmds.Sent++
			switch c.Status {
			case action.CmdSuccess:
				fromCmds.Success++
			case action.CmdFailed:
				fromCmds.Failed++
			case action.CmdTimeout:
				fromCmds.TimeOut++
			case action.CmdExpired:
				fromCmds.Expired++
			case action.CmdCancelled:
				fromCmds.Cancelled++
			}
		}
		fromCmds.Done = fromCmds.Success + fromCmds.Failed + fromCmds.TimeOut + fromCmds.Expired + fromCmds.Cancelled
		fromCmds.InFlight = fromCmds.Sent - fromCmds.Done
		if got.Counters != fromCmds {
			atk.executed("action %d: counters %+v, its commands say %+v", a.ID, got.Counters, fromCmds)
		}
		if got.Counters != want {
			atk.executed("action %d: counters %+v, want %+v", a.ID, got.Counters, want)
		}
	}
	unchanged := func(atk *attackRun, id uint64, status string) {
		t.Helper()
		c, err := srv.Store.Command(ctx, id)
		must(t, err)
		if c.Status != status || len(c.Results) != 0 && status == action.CmdSent {
			atk.executed("command %d is %q with %d results, want %q", id, c.Status, len(c.Results), status)
		}
	}

	t.Run("result for another agent's command", func(t *testing.T) {
		atk := attack(t, "malicious-agent", "result for another agent's command")
		publish(action.ResultMessage{AgentID: evil, CommandID: victimCmd, ActionID: act.ID, Status: action.CmdSuccess, Results: found})
		settle()
		unchanged(atk, victimCmd, action.CmdSent)
		exact(atk, act, action.Counters{Sent: 2, InFlight: 2})
		atk.refused()
	})
	t.Run("result in another agent's name", func(t *testing.T) {
		atk := attack(t, "malicious-agent", "result in another agent's name")
		publish(action.ResultMessage{AgentID: victim, CommandID: victimCmd, ActionID: act.ID, Status: action.CmdFailed, Results: found})
		settle()
		unchanged(atk, victimCmd, action.CmdSent)
		exact(atk, act, action.Counters{Sent: 2, InFlight: 2})
		atk.refused()
	})
	t.Run("result for a command that does not exist", func(t *testing.T) {
		atk := attack(t, "malicious-agent", "result for a command that does not exist")
		ghost, _ := scheduler.NewID()
		publish(action.ResultMessage{AgentID: evil, CommandID: ghost, ActionID: act.ID, Status: action.CmdSuccess, Results: found})
		settle()
		if _, err := srv.Store.Command(ctx, ghost); err == nil {
			atk.executed("a command %d appeared", ghost)
		}
		exact(atk, act, action.Counters{Sent: 2, InFlight: 2})
		atk.refused()
	})
	t.Run("the same result twice", func(t *testing.T) {
		atk := attack(t, "malicious-agent", "the same result twice, then another outcome")
		// Its own command: the first result counts, the repeats do not.
		for range 3 {
			publish(action.ResultMessage{AgentID: evil, CommandID: evilCmd, ActionID: act.ID, Status: action.CmdSuccess, Results: found})
		}
		publish(action.ResultMessage{AgentID: evil, CommandID: evilCmd, ActionID: act.ID, Status: action.CmdFailed})
		settle()
		unchanged(atk, evilCmd, action.CmdSuccess)
		exact(atk, act, action.Counters{Sent: 2, Done: 1, InFlight: 1, Success: 1})
		atk.refused()
	})
	t.Run("result after expiry", func(t *testing.T) {
		atk := attack(t, "malicious-agent", "result after the command expired")
		short := newAction("expires", 2*time.Second)
		cmd := newCommand(short, evil)
		waitFor(t, 60*time.Second, "the server to expire the command", func() bool {
			c, err := srv.Store.Command(ctx, cmd)
			return err == nil && c.Status == action.CmdExpired
		})
		publish(action.ResultMessage{AgentID: evil, CommandID: cmd, ActionID: short.ID, Status: action.CmdSuccess, Results: found})
		settle()
		unchanged(atk, cmd, action.CmdExpired)
		exact(atk, short, action.Counters{Sent: 1, Done: 1, Expired: 1})
		atk.refused()
	})

	// The victim's command, sent now, runs and is counted once.
	t.Run("the victim's own result is stored", func(t *testing.T) {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c := action.Command{ID: victimCmd, Action: *act, AgentID: victim, Status: action.CmdSent, StartTime: time.Now()}
		data, err := action.Marshal(action.CommandMessage{V: action.ProtocolVersion, Command: c})
		must(t, err)
		must(t, srv.Hub().Send(sctx, []relay.Outbound{{AgentID: victim, Kind: relay.KindCommand, Data: data}}))
		got := waitCommand(sctx, t, srv, victimCmd)
		if got.Status != action.CmdSuccess || len(got.Results) != 1 || string(got.Results[0].Elements) == `{"forged":true}` {
			t.Fatalf("the victim's command: status %q code %q results %+v, want its own success", got.Status, got.Code, got.Results)
		}
		a, err := srv.Store.Action(ctx, act.ID)
		must(t, err)
		if want := (action.Counters{Sent: 2, Done: 2, Success: 2}); a.Counters != want {
			t.Errorf("counters %+v, want %+v", a.Counters, want)
		}
	})
}
