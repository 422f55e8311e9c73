package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/scheduler"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
)

// TestReplayAfterJournalLoss plays a server that kept an action an agent
// already ran and sends it again once the agent's replay journal is lost:
// the real agent process, restarted after its journal.json was deleted (and,
// separately, corrupted), refuses the same signed action as a possible
// replay and does not run it again. An action signed after the restart
// still runs, and a validity window over the agent's maxvalidity is refused.
func TestReplayAfterJournalLoss(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	ts := startTestServer(t, dir)
	srv, cfg, caFile := ts.Server, ts.cfg, ts.caFile

	alice := newInvestigator(t, "Alice")
	stateDir := filepath.Join(dir, "agent")
	b, _ := json.Marshal(map[string]any{
		"server":          srv.APIURL(),
		"ca":              caFile,
		"enrollmenttoken": cfg.EnrollmentTokens[0],
		"statedir":        stateDir,
		"keyringdata":     alice.pub,
		"acldata":         fmt.Sprintf(`{"default": {"minimumweight": 1, "investigators": {"Alice": {"fingerprint": %q, "weight": 1}}}}`, alice.fp),
		"heartbeat":       "1s",
		"moduleexe":       bins.agent,
		"name":            "e2e-replay-agent",
	})
	cfgFile := filepath.Join(dir, "agent.json")
	must(t, os.WriteFile(cfgFile, b, 0o600))

	// startAgent runs the agent and waits until the server hears from this
	// run of it.
	var procs []*proc
	var agentID string
	startAgent := func() {
		t.Helper()
		since := time.Now()
		procs = append(procs, start(t, nil, bins.agent, "-c", cfgFile))
		waitFor(t, 30*time.Second, "the agent to say hello", func() bool {
			agents, err := srv.Store.Agents(ctx, store.AgentQuery{})
			if err != nil || len(agents) != 1 || agents[0].StartTime.Before(since.Truncate(time.Second)) ||
				agents[0].HeartbeatTime.Before(since) {
				return false
			}
			agentID = agents[0].ID
			return true
		})
	}
	// runs counts the commands the agent processes ran, over all runs.
	runs := func() int {
		n := 0
		for _, p := range procs {
			n += strings.Count(p.output(), `"msg":"running a command"`)
		}
		return n
	}
	newAction := func(from, until time.Time) *action.Action {
		t.Helper()
		id, _ := scheduler.NewID()
		a := &action.Action{ID: id, Name: "e2e replay", Target: "status='online'", ValidFrom: from, ExpireAfter: until,
			Operations: []action.Operation{{Module: "testmodule", Parameters: json.RawMessage(`{"mode":"ok","marker":"replay"}`)}}}
		must(t, sign.SignAction(a, alice.signer))
		return a
	}

	startAgent()
	now := time.Now()
	ran := newAction(now.Add(-time.Minute), now.Add(10*time.Minute))
	if cmd := inject(t, srv, ran, agentID); cmd.Status != action.CmdSuccess {
		t.Fatalf("first run: status %q code %q (%s), want success", cmd.Status, cmd.Code, cmd.Error)
	}
	if n := runs(); n != 1 {
		t.Fatalf("the agent ran %d commands, want 1", n)
	}

	journal := filepath.Join(stateDir, "journal.json")
	for _, loss := range []struct {
		name string
		lose func() error
	}{
		{"deleted", func() error { return os.Remove(journal) }},
		{"corrupted", func() error { return os.WriteFile(journal, []byte(`{"v":1,"entries":[{"act`), 0o600) }},
	} {
		t.Run(loss.name, func(t *testing.T) {
			atk := attack(t, "replay-journal", "replay after the journal was "+loss.name)
			procs[len(procs)-1].stop()
			must(t, loss.lose())
			startAgent()
			cmd := inject(t, srv, ran, agentID)
			if cmd.Status != action.CmdFailed || cmd.Code != action.CodeReplay {
				t.Fatalf("replay after the journal was %s: status %q code %q (%s), want failed %q",
					loss.name, cmd.Status, cmd.Code, cmd.Error, action.CodeReplay)
			}
			if !strings.Contains(cmd.Error, "before this agent's journal began at") || !strings.Contains(cmd.Error, "possible replay") {
				t.Errorf("refusal %q does not say why", cmd.Error)
			}
			if n := runs(); n != 1 {
				atk.executed("the agent ran %d commands, want 1: the action ran again", n)
			}
			out := procs[len(procs)-1].output()
			if !strings.Contains(out, "refusing actions valid from before now") {
				t.Errorf("the agent's log does not say the journal was lost:\n%s", out)
			}
			atk.refused()
		})
	}

	t.Run("action signed after the restart runs", func(t *testing.T) {
		now := time.Now()
		if cmd := inject(t, srv, newAction(now, now.Add(10*time.Minute)), agentID); cmd.Status != action.CmdSuccess {
			t.Fatalf("status %q code %q (%s), want success", cmd.Status, cmd.Code, cmd.Error)
		}
	})
	t.Run("validity window over maxvalidity", func(t *testing.T) {
		atk := attack(t, "replay-journal", "validity window over maxvalidity")
		now := time.Now()
		cmd := inject(t, srv, newAction(now, now.Add(25*time.Hour)), agentID)
		if cmd.Status != action.CmdFailed || cmd.Code != action.CodeValidityTooLong || !strings.Contains(cmd.Error, "maxvalidity") {
			t.Fatalf("status %q code %q (%s), want failed %q naming maxvalidity", cmd.Status, cmd.Code, cmd.Error, action.CodeValidityTooLong)
		}
		if len(cmd.Results) != 0 {
			atk.executed("the agent ran the module: %+v", cmd.Results)
		}
		atk.refused()
	})
	if n := runs(); n != 2 {
		t.Errorf("the agent ran %d commands, want 2", n)
	}
}

// TestAgentEnvCannotLiftValidityBound starts the real mig-agent with
// MIG_AGENT_MAX_VALIDITY set past the agent's hard bound (31 days), or to
// something that is not a duration, as someone who controls the agent's
// environment could, to widen the window in which a lost journal lets an
// action run again: the agent refuses to start, naming the setting or the
// variable.
func TestAgentEnvCannotLiftValidityBound(t *testing.T) {
	alice := newInvestigator(t, "Alice")
	dir := t.TempDir()
	b, _ := json.Marshal(map[string]any{
		"server": "https://127.0.0.1:1/api/v1", "enrollmenttoken": "e2e-enrollment-token-0123456789",
		"statedir": filepath.Join(dir, "agent"), "keyringdata": alice.pub,
		"acldata":   fmt.Sprintf(`{"default": {"minimumweight": 1, "investigators": {"Alice": {"fingerprint": %q, "weight": 1}}}}`, alice.fp),
		"moduleexe": bins.agent,
	})
	cfgFile := filepath.Join(dir, "agent.json")
	must(t, os.WriteFile(cfgFile, b, 0o600))
	for _, v := range []string{"745h", "8760h", "-1h", "forever"} {
		t.Run(v, func(t *testing.T) {
			atk := attack(t, "agent-env", "MIG_AGENT_MAX_VALIDITY="+v)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bins.agent, "-c", cfgFile)
			cmd.Env = append(os.Environ(), "MIG_AGENT_MAX_VALIDITY="+v)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				atk.executed("the agent started with maxvalidity %s:\n%s", v, out)
			}
			if err == nil || !strings.Contains(string(out), "maxvalidity") && !strings.Contains(string(out), "MIG_AGENT_MAX_VALIDITY") {
				t.Errorf("mig-agent with MIG_AGENT_MAX_VALIDITY=%s: %v, want a refusal naming the setting\n%s", v, err, out)
			}
			atk.refused()
		})
	}
}
