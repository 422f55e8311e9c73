package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/scheduler"
	"github.com/migplatform/mig/internal/server"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
)

type investigator struct {
	signer sign.Signer
	pub    string
	fp     string
}

func newInvestigator(t *testing.T, name string) investigator {
	t.Helper()
	priv, pub, fp, err := sign.GenerateKey(name, strings.ToLower(name)+"@example.com")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.NewKeySigner(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return investigator{signer: s, pub: string(pub), fp: fp}
}

// testServer is a real server in this process on loopback ports, with the
// SQLite store and the embedded NATS relay under dir, as a compromised
// server's tests need it: its store and hub at hand.
type testServer struct {
	*server.Server
	cfg    server.Config
	caFile string
}

func startTestServer(t *testing.T, dir string) testServer {
	t.Helper()
	caFile, certFile, keyFile, err := server.EnsureDevTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.API.Listen, cfg.API.Cert, cfg.API.Key = "127.0.0.1:0", certFile, keyFile
	cfg.Relay.Listen, cfg.Relay.CA = "127.0.0.1:0", caFile
	cfg.Store = "sqlite:" + filepath.Join(dir, "mig.db")
	cfg.EnrollmentTokens = []string{"e2e-enrollment-token-0123456789"}
	srv, err := server.Start(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return testServer{Server: srv, cfg: cfg, caFile: caFile}
}

// startAgent runs the real agent binary with config file cfgFile and waits
// until it is the server's one agent and has said hello; it returns its ID.
func (ts testServer) startAgent(t *testing.T, cfgFile string) string {
	t.Helper()
	start(t, nil, bins.agent, "-c", cfgFile)
	var agentID string
	waitFor(t, 30*time.Second, "the agent to enroll and say hello", func() bool {
		agents, err := ts.Store.Agents(t.Context(), store.AgentQuery{})
		if err != nil || len(agents) != 1 || agents[0].Environment.OS == "" {
			return false
		}
		agentID = agents[0].ID
		return true
	})
	return agentID
}

// TestAgentRefusesWhatInvestigatorsDidNotSign plays a compromised server: it
// writes commands straight into the store and the relay, bypassing the API's
// checks, and shows that the real agent process refuses every command that
// valid signatures do not authorise.
func TestAgentRefusesWhatInvestigatorsDidNotSign(t *testing.T) {
	dir := t.TempDir()
	forgedActionAttacks(t, startTestServer(t, dir), dir, "forged-action", "forged-encoding")
}

// forgedActionAttacks runs the forged actions and messages of
// TestAgentRefusesWhatInvestigatorsDidNotSign against ts, with a real agent
// whose state is under dir, recording them in the takeover suite as
// actionClass and encodingClass.
func forgedActionAttacks(t *testing.T, ts testServer, dir, actionClass, encodingClass string) {
	ctx := t.Context()
	srv, cfg, caFile := ts.Server, ts.cfg, ts.caFile

	alice, bob, eve := newInvestigator(t, "Alice"), newInvestigator(t, "Bob"), newInvestigator(t, "Eve")
	acl := fmt.Sprintf(`{
		"default": {"minimumweight": 1, "investigators": {"Alice": {"fingerprint": %q, "weight": 1}, "Bob": {"fingerprint": %q, "weight": 1}}},
		"testmodule": {"minimumweight": 2, "investigators": {"Alice": {"fingerprint": %[1]q, "weight": 1}, "Bob": {"fingerprint": %[2]q, "weight": 1}}}}`,
		alice.fp, bob.fp)
	agentCfg := map[string]any{
		"server":          srv.APIURL(),
		"ca":              caFile,
		"enrollmenttoken": cfg.EnrollmentTokens[0],
		"statedir":        filepath.Join(dir, "agent"),
		"keyringdata":     alice.pub + "\n" + bob.pub,
		"acldata":         acl,
		"heartbeat":       "2s",
		"moduleexe":       bins.agent,
		"moduletimeout":   "3s",
		"name":            "e2e-agent",
		"tags":            map[string]string{"operator": "IT"},
	}
	b, _ := json.Marshal(agentCfg)
	cfgFile := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	agentID := ts.startAgent(t, cfgFile)

	now := time.Now()
	newAction := func(module, params, tgt string, signers ...investigator) *action.Action {
		t.Helper()
		id, _ := scheduler.NewID()
		a := &action.Action{ID: id, Name: "e2e " + module, Target: tgt,
			ValidFrom: now.Add(-time.Minute), ExpireAfter: now.Add(10 * time.Minute),
			Operations: []action.Operation{{Module: module, Parameters: json.RawMessage(params)}}}
		for _, s := range signers {
			if err := sign.SignAction(a, s.signer); err != nil {
				t.Fatal(err)
			}
		}
		return a
	}
	fileParams := `{"searches":{"s1":{"paths":["/etc"],"names":["^hostname$"]}}}`
	online := "status='online'"

	valid := newAction("file", fileParams, online, alice)
	tamperedParams := newAction("file", fileParams, online, alice)
	tamperedParams.Operations[0].Parameters = json.RawMessage(`{"searches":{"s1":{"paths":["/root"],"names":["."]}}}`)
	tamperedTarget := newAction("file", fileParams, "name='someone-else'", alice)
	tamperedTarget.Target = online
	expired := newAction("file", fileParams, online)
	expired.ValidFrom, expired.ExpireAfter = now.Add(-2*time.Hour), now.Add(-time.Hour)
	must(t, sign.SignAction(expired, alice.signer))
	future := newAction("file", fileParams, online)
	future.ValidFrom, future.ExpireAfter = now.Add(time.Hour), now.Add(2*time.Hour)
	must(t, sign.SignAction(future, alice.signer))

	tests := []struct {
		name       string
		attack     bool // the command is an attack the agent must refuse
		act        *action.Action
		wantStatus string
		wantCode   string
		wantErr    string // the bad value the refusal must name
	}{
		{"signed", false, valid, action.CmdSuccess, "", ""},
		{"unsigned", true, newAction("file", fileParams, online), action.CmdFailed, action.CodeBadSignature, ""},
		{"tampered parameters", true, tamperedParams, action.CmdFailed, action.CodeBadSignature, ""},
		{"tampered target", true, tamperedTarget, action.CmdFailed, action.CodeBadSignature, ""},
		{"untrusted signer", true, newAction("file", fileParams, online, eve), action.CmdFailed, action.CodeUntrusted, ""},
		{"expired", true, expired, action.CmdFailed, action.CodeExpired, ""},
		{"not yet valid", true, future, action.CmdFailed, action.CodeNotYetValid, ""},
		{"replayed", true, valid, action.CmdFailed, action.CodeReplay, ""},
		{"wrongly targeted", true, newAction("file", fileParams, "name='not-this-agent'", alice), action.CmdFailed, action.CodeNotTargeted, ""},
		{"targeted by tag", false, newAction("file", fileParams, "tags->>'operator'='IT' AND environment->>'os'='linux'", alice), action.CmdSuccess, "", ""},
		{"under-weighted", true, newAction("testmodule", `{"mode":"ok","marker":"one"}`, online, alice), action.CmdFailed, action.CodeACLDenied, ""},
		{"two signatures reach weight 2", false, newAction("testmodule", `{"mode":"ok","marker":"two"}`, online, alice, bob), action.CmdSuccess, "", ""},
		{"panicking module", false, newAction("testmodule", `{"mode":"panic"}`, online, alice, bob), action.CmdFailed, action.CodeModuleFailed, ""},
		{"hanging module", false, newAction("testmodule", `{"mode":"hang"}`, online, alice, bob), action.CmdTimeout, action.CodeModuleTimeout, ""},
		{"agent still answers", false, newAction("testmodule", `{"mode":"ok","marker":"after"}`, online, alice, bob), action.CmdSuccess, "", ""},
		// Bad input that the CLI and the API refuse, signed and injected
		// past them: the agent refuses it too, naming the bad value.
		{"signed bad regex", true, newAction("file", `{"searches":{"s1":{"paths":["/etc"],"names":["(unclosed"]}}}`, online, alice), action.CmdFailed, action.CodeBadParameters, "(unclosed"},
		{"signed wrong-length hash", true, newAction("file", `{"searches":{"s1":{"paths":["/etc"],"md5":["eefc66a1e978dc9d825f28702106d4d"]}}}`, online, alice), action.CmdFailed, action.CodeBadParameters, `"eefc66a1e978dc9d825f28702106d4d"`},
		{"signed unknown module", true, newAction("nosuchmodule", `{}`, online, alice), action.CmdFailed, action.CodeUnknownModule, `"nosuchmodule"`},
		{"signed bad target", true, newAction("file", fileParams, "name = ", alice), action.CmdFailed, action.CodeNotTargeted, `"name = "`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var atk *attackRun
			if tc.attack {
				atk = attack(t, actionClass, tc.name)
			}
			cmd := inject(t, srv, tc.act, agentID)
			if tc.attack && len(cmd.Results) != 0 {
				atk.executed("the agent ran the module: status %q, %d results", cmd.Status, len(cmd.Results))
			}
			if cmd.Status != tc.wantStatus || cmd.Code != tc.wantCode {
				t.Fatalf("command status %q code %q (%s), want %q code %q", cmd.Status, cmd.Code, cmd.Error, tc.wantStatus, tc.wantCode)
			}
			if !strings.Contains(cmd.Error, tc.wantErr) {
				t.Errorf("refusal %q does not name %q", cmd.Error, tc.wantErr)
			}
			if tc.attack {
				atk.refused()
			}
		})
	}

	// Messages that do not decode, injected straight into the relay: the
	// agent answers them as bad_encoding, naming what is wrong, and keeps
	// answering.
	rawTests := []struct {
		name    string
		msg     func(cmdID, actionID uint64) []byte
		wantErr string
	}{
		{"malformed action JSON", func(cmdID, actionID uint64) []byte {
			return fmt.Appendf(nil, `{"v":%d,"command":{"id":%d,"agentid":%q,"action":{"id":%d,"name":5}}}`,
				action.ProtocolVersion, cmdID, agentID, actionID)
		}, "name"},
		{"wrong protocol version", func(cmdID, actionID uint64) []byte {
			return fmt.Appendf(nil, `{"v":999,"command":{"id":%d,"agentid":%q,"action":{"id":%d}}}`, cmdID, agentID, actionID)
		}, "protocol version 999"},
		{"oversized message", func(cmdID, actionID uint64) []byte {
			pad := strings.Repeat("x", action.MaxMessageSize)
			return fmt.Appendf(nil, `{"v":%d,"command":{"id":%d,"agentid":%q,"action":{"id":%d,"description":%q}}}`,
				action.ProtocolVersion, cmdID, agentID, actionID, pad)
		}, "over the limit"},
	}
	for _, tc := range rawTests {
		t.Run(tc.name, func(t *testing.T) {
			atk := attack(t, encodingClass, tc.name)
			cmd, err := injectRawErr(t, srv, newAction("file", fileParams, online, alice), agentID, tc.msg)
			if err != nil && tc.name == "oversized message" && strings.Contains(err.Error(), "over the limit") {
				// The relay itself refuses to carry it (the AMQP hub
				// checks the size before publishing).
				atk.refused()
				return
			}
			must(t, err)
			if len(cmd.Results) != 0 {
				atk.executed("the agent ran the module: %d results", len(cmd.Results))
			}
			if cmd.Status != action.CmdFailed || cmd.Code != action.CodeBadEncoding || !strings.Contains(cmd.Error, tc.wantErr) {
				t.Fatalf("command status %q code %q (%s), want failed %q naming %q", cmd.Status, cmd.Code, cmd.Error, action.CodeBadEncoding, tc.wantErr)
			}
			atk.refused()
		})
	}
	t.Run("garbage", func(t *testing.T) {
		// Bytes that are not JSON name no command to answer: the agent
		// drops them (the server expires the command) and lives on (the
		// next subtest checks that it still answers).
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		for _, junk := range []string{`{"v":1,"command":`, "\x00\xff not json", ""} {
			if err := srv.Hub().Send(ctx, []relay.Outbound{{AgentID: agentID, Kind: relay.KindCommand, Data: []byte(junk)}}); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("agent answers after bad messages", func(t *testing.T) {
		atk := attack(t, encodingClass, "garbage bytes stop the agent")
		if cmd := inject(t, srv, newAction("file", fileParams, online, alice), agentID); cmd.Status != action.CmdSuccess {
			t.Fatalf("command status %q code %q (%s), want success", cmd.Status, cmd.Code, cmd.Error)
		}
		atk.refused()
	})

	// The counters of every action add up.
	for _, tc := range tests {
		a, err := srv.Store.Action(ctx, tc.act.ID)
		if err != nil {
			t.Fatal(err)
		}
		c := a.Counters
		if c.Success+c.Failed+c.TimeOut+c.Expired+c.Cancelled != c.Done || c.Done+c.InFlight != c.Sent {
			t.Errorf("action %q: counters do not add up: %+v", tc.name, c)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// injectRaw stores action a and a command for it (as a compromised server
// could), then sends the bytes msg makes for them straight through the relay
// and waits for the agent's answer.
func injectRaw(t *testing.T, srv *server.Server, a *action.Action, agentID string, msg func(cmdID, actionID uint64) []byte) *action.Command {
	t.Helper()
	cmd, err := injectRawErr(t, srv, a, agentID, msg)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// injectRawErr is injectRaw that returns the relay's refusal to carry the
// message instead of failing the test.
func injectRawErr(t *testing.T, srv *server.Server, a *action.Action, agentID string, msg func(cmdID, actionID uint64) []byte) (*action.Command, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := srv.Store.CreateAction(ctx, a); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatal(err)
	}
	id, _ := scheduler.NewID()
	cmd := action.Command{ID: id, Action: action.Action{ID: a.ID}, AgentID: agentID, Status: action.CmdSent, StartTime: time.Now()}
	if err := srv.Store.CreateCommands(ctx, []action.Command{cmd}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Hub().Send(ctx, []relay.Outbound{{AgentID: agentID, Kind: relay.KindCommand, Data: msg(id, a.ID)}}); err != nil {
		return nil, err
	}
	return waitCommand(ctx, t, srv, id), nil
}

// waitCommand waits until command id is in a terminal status.
func waitCommand(ctx context.Context, t *testing.T, srv *server.Server, id uint64) *action.Command {
	t.Helper()
	for {
		c, err := srv.Store.Command(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if action.IsTerminal(c.Status) {
			return c
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no answer from the agent for command %d", id)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// inject stores a command for a (as a compromised server could, without the
// API's checks), sends it straight through the relay and waits for the
// agent's answer.
func inject(t *testing.T, srv *server.Server, a *action.Action, agentID string) *action.Command {
	t.Helper()
	return injectRaw(t, srv, a, agentID, func(cmdID, _ uint64) []byte {
		cmd := action.Command{ID: cmdID, Action: *a, AgentID: agentID, Status: action.CmdSent, StartTime: time.Now()}
		data, err := action.Marshal(action.CommandMessage{V: action.ProtocolVersion, Command: cmd})
		if err != nil {
			t.Fatal(err)
		}
		return data
	})
}
