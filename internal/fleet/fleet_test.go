package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/api"
	"github.com/migplatform/mig/internal/client"
	"github.com/migplatform/mig/internal/fleet"
	_ "github.com/migplatform/mig/internal/module/all"
	"github.com/migplatform/mig/internal/server"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
)

// platform is an in-process server with one investigator.
type platform struct {
	srv    *server.Server
	cfg    server.Config
	caFile string
	pub    string
	fp     string
	signer sign.Signer
	client *client.Client
	// privateKey is the investigator's armored private key.
	privateKey []byte
}

func newPlatform(t *testing.T) *platform {
	t.Helper()
	dir := t.TempDir()
	caFile, certFile, keyFile, err := server.EnsureDevTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.API.Listen, cfg.API.Cert, cfg.API.Key = "127.0.0.1:0", certFile, keyFile
	cfg.Relay.Listen, cfg.Relay.CA = "127.0.0.1:0", caFile
	cfg.Store = "sqlite:" + filepath.Join(dir, "mig.db")
	cfg.EnrollmentTokens = []string{"fleet-test-enrollment-token-0123"}
	srv, err := server.Start(t.Context(), cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	priv, pub, fp, err := sign.GenerateKey("Fleet Investigator", "fleet@example.com")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sign.NewKeySigner(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := api.NewInvestigator("Fleet Investigator", string(pub), api.AllPermissions, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	inv.Status = action.InvestigatorActive
	if _, err := srv.Store.CreateInvestigator(t.Context(), inv); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{API: client.APIConfig{URL: srv.APIURL(), CA: caFile}, KeySigner: signer})
	if err != nil {
		t.Fatal(err)
	}
	return &platform{srv: srv, cfg: cfg, caFile: caFile, pub: string(pub), fp: fp, signer: signer, client: c, privateKey: priv}
}

func (p *platform) acl() string {
	return fmt.Sprintf(`{"default": {"minimumweight": 1, "investigators": {"Fleet Investigator": {"fingerprint": %q, "weight": 1}}}}`, p.fp)
}

// launch signs and launches a file search and follows it to the end,
// returning the action and every command delivered.
func (p *platform) launch(t *testing.T, tgt, params string) (*action.Action, []action.Command) {
	t.Helper()
	a := &action.Action{Name: "fleet smoke", Target: tgt,
		Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(params)}}}
	client.PrepareAction(a, 2*time.Minute, time.Now())
	if err := sign.SignAction(a, p.signer); err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.CreateAction(t.Context(), a); err != nil {
		t.Fatalf("CreateAction: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	var cmds []action.Command
	final, err := p.client.Follow(ctx, a.ID, 200*time.Millisecond, nil, func(c action.Command) { cmds = append(cmds, c) })
	if err != nil {
		t.Fatalf("Follow(%d): %v", a.ID, err)
	}
	return final, cmds
}

// TestFleetSmoke runs 200 simulated agents against an in-process server and
// checks that every targeted agent answers exactly once, that the counters
// are exact, and that what the agents find is what their fixtures hold.
func TestFleetSmoke(t *testing.T) {
	const n = 200
	p := newPlatform(t)
	dir := t.TempDir()
	f, err := fleet.New(fleet.Config{
		Server:          p.srv.APIURL(),
		CA:              p.caFile,
		EnrollmentToken: p.cfg.EnrollmentTokens[0],
		KeyringData:     p.pub,
		ACLData:         p.acl(),
		N:               n,
		Dir:             dir,
		Prefix:          "smoke",
		Heartbeat:       time.Minute,
		AgentLogLevel:   slog.LevelWarn,
	}, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = f.Run(ctx) })
	defer func() {
		cancel()
		wg.Wait()
		if runErr != nil {
			t.Errorf("Run = %v, want nil", runErr)
		}
	}()
	select {
	case <-f.Ready():
	case <-time.After(2 * time.Minute):
		t.Fatalf("fleet not connected: %+v", f.Stats())
	}
	// Every agent's hello is stored before the server counts it online.
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := p.srv.Store.CountAgents(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server knows %d agents, want %d", got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	agents, err := p.srv.Store.Agents(t.Context(), store.AgentQuery{})
	if err != nil {
		t.Fatal(err)
	}
	ids := f.AgentIDs()
	names := map[string]int{}
	for i, id := range ids {
		names[id] = i
	}
	for _, a := range agents {
		i, ok := names[a.ID]
		if !ok {
			t.Fatalf("server has agent %s that the fleet did not make", a.ID)
		}
		wantName, wantEnv, _ := fleet.Attributes("smoke", i)
		if a.Name != wantName || a.Environment.OS != wantEnv.OS || a.Mode != fleet.Mode || a.Tags["fleet"] != "smoke" {
			t.Errorf("agent %d: name %q os %q mode %q fleet tag %q, want %q %q %q smoke",
				i, a.Name, a.Environment.OS, a.Mode, a.Tags["fleet"], wantName, wantEnv.OS, fleet.Mode)
		}
	}

	boto := fmt.Sprintf(`{"searches":{"boto":{"paths":["/"],"names":["^\\.boto$"],"contents":[%q]}}}`, fleet.BotoSecret)
	tests := []struct {
		name   string
		target string
		want   func(i int) bool // which agents are targeted
		found  func(i int) bool // which of them find something
	}{
		{"all", "status='online'", func(int) bool { return true }, func(i int) bool { return i%10 == 0 }},
		{"db hosts", "name LIKE '%db%'", func(i int) bool { return i%5 == 1 }, func(int) bool { return false }},
		{"windows or IT", "environment->>'os'='windows' OR tags->>'operator'='IT'",
			func(i int) bool { return i%10 == 9 || (i/5)%4 == 0 }, func(i int) bool { return i%10 == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := map[string]bool{}
			wantFound := 0
			for i, id := range ids {
				if tt.want(i) {
					want[id] = true
					if tt.found(i) {
						wantFound++
					}
				}
			}
			final, cmds := p.launch(t, tt.target, boto)
			c := final.Counters
			if c.Sent != len(want) || c.Done != len(want) || c.Success != len(want) ||
				c.Failed+c.TimeOut+c.Expired+c.Cancelled != 0 {
				t.Errorf("counters %+v, want sent = done = success = %d and nothing else", c, len(want))
			}
			seen := map[string]bool{}
			found := 0
			for _, cmd := range cmds {
				if seen[cmd.AgentID] {
					t.Errorf("agent %s answered twice", cmd.AgentID)
				}
				seen[cmd.AgentID] = true
				if !want[cmd.AgentID] {
					t.Errorf("agent %s (%s) answered but is not targeted", cmd.AgentID, cmd.AgentName)
				}
				if cmd.Status != action.CmdSuccess {
					t.Errorf("agent %s: status %q code %q error %q, want success", cmd.AgentName, cmd.Status, cmd.Code, cmd.Error)
				}
				if len(cmd.Results) == 1 && cmd.Results[0].FoundAnything {
					found++
					if i := names[cmd.AgentID]; !tt.found(i) {
						t.Errorf("agent %d found something; its fixtures hold nothing to find", i)
					}
					var el map[string][]struct {
						File string `json:"file"`
					}
					if err := json.Unmarshal(cmd.Results[0].Elements, &el); err != nil || len(el["boto"]) != 1 || el["boto"][0].File != "/home/user/.boto" {
						t.Errorf("agent %s found %s, want /home/user/.boto as the agent sees it (%v)", cmd.AgentName, cmd.Results[0].Elements, err)
					}
				}
			}
			if len(cmds) != len(want) {
				t.Errorf("got %d commands, want %d", len(cmds), len(want))
			}
			if found != wantFound {
				t.Errorf("%d agents found something, want %d", found, wantFound)
			}
		})
	}
	s := f.Stats()
	if s.Started != n || s.Connected != n {
		t.Errorf("stats %+v, want %d started and connected", s, n)
	}
	var wantCmds int64
	for _, tt := range tests {
		for i := range n {
			if tt.want(i) {
				wantCmds++
			}
		}
	}
	// An agent whose hello the server stores after a launch gets its
	// pending command again, and answers it with the result it kept: the
	// fleet may count more deliveries than commands, never fewer.
	if s.Commands < wantCmds || s.Results < wantCmds {
		t.Errorf("fleet received %d commands and sent %d results, want at least %d of each",
			s.Commands, s.Results, wantCmds)
	}
	if slices.Contains(ids, "") {
		t.Errorf("some agents were never created: %q", ids)
	}
}
