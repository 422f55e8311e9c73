package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay/amqprelay/amqptest"
	"github.com/migplatform/mig/internal/scheduler"
	"github.com/migplatform/mig/internal/server"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/pgstore/pgtest"
)

// TestRabbitMQRelay runs the server with RabbitMQ as its relay (relay.url
// amqp://…): the real agent enrolls, gets its own RabbitMQ user, picks the
// AMQP relay from the URL it is given, and answers a signed command.
func TestRabbitMQRelay(t *testing.T) {
	relayURL, mgmtURL, admin := rabbitVhost(t)
	ctx := t.Context()
	dir := t.TempDir()
	caFile, certFile, keyFile, err := server.EnsureDevTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.API.Listen, cfg.API.Cert, cfg.API.Key = "127.0.0.1:0", certFile, keyFile
	cfg.Relay.URL, cfg.Relay.ManagementURL = relayURL, mgmtURL
	cfg.Store = "sqlite:" + filepath.Join(dir, "mig.db")
	cfg.EnrollmentTokens = []string{"e2e-enrollment-token-0123456789"}
	srv, err := server.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)

	alice := newInvestigator(t, "Alice")
	acl := fmt.Sprintf(`{"default": {"minimumweight": 1, "investigators": {"Alice": {"fingerprint": %q, "weight": 1}}}}`, alice.fp)
	agentCfg, _ := json.Marshal(map[string]any{
		"server": srv.APIURL(), "ca": caFile, "enrollmenttoken": cfg.EnrollmentTokens[0],
		"statedir": filepath.Join(dir, "agent"), "keyringdata": alice.pub, "acldata": acl,
		"heartbeat": "2s", "moduleexe": bins.agent, "name": "rabbit-agent",
	})
	cfgFile := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(cfgFile, agentCfg, 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, nil, bins.agent, "-c", cfgFile)

	var agentID string
	waitFor(t, 60*time.Second, "the agent to enroll and say hello over RabbitMQ", func() bool {
		agents, err := srv.Store.Agents(ctx, store.AgentQuery{})
		if err != nil || len(agents) != 1 || agents[0].Environment.OS == "" {
			return false
		}
		agentID = agents[0].ID
		return true
	})
	t.Cleanup(func() { admin(http.MethodDelete, "/api/users/"+agentID, nil) })

	id, _ := scheduler.NewID()
	now := time.Now()
	a := &action.Action{ID: id, Name: "over rabbitmq", Target: "name='rabbit-agent'",
		ValidFrom: now.Add(-time.Minute), ExpireAfter: now.Add(10 * time.Minute),
		Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{"searches":{"s1":{"paths":["/etc"],"names":["^hostname$"]}}}`)}}}
	must(t, sign.SignAction(a, alice.signer))
	cmd := inject(t, srv, a, agentID)
	if cmd.Status != action.CmdSuccess {
		t.Fatalf("command over RabbitMQ: status %q code %q (%s)", cmd.Status, cmd.Code, cmd.Error)
	}
}

// rabbitVhost makes a RabbitMQ vhost for one test in the broker that
// $MIG_TEST_AMQP_URL names, deleted when the test ends, and returns the
// relay URL for it, the management API's URL and a call of that API.
func rabbitVhost(t *testing.T) (relayURL, mgmtURL string, admin func(method, path string, body any)) {
	t.Helper()
	raw := os.Getenv("MIG_TEST_AMQP_URL")
	if raw == "" {
		if os.Getenv("MIG_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("MIG_TEST_AMQP_URL is not set and MIG_TEST_REQUIRE_SERVICES=1")
		}
		t.Skip("MIG_TEST_AMQP_URL is not set: no RabbitMQ to test against")
	}
	amqptest.Shared(t) // no broker restart by another package's test meanwhile
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("MIG_TEST_AMQP_URL: %v", err)
	}
	mgmt := url.URL{Scheme: "http", User: u.User, Host: net.JoinHostPort(u.Hostname(), "15672")}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	vhost := "mig-e2e-" + hex.EncodeToString(rnd[:])
	admin = func(method, path string, body any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, mgmt.String()+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("management API %s %s: %v", method, path, err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 && method != http.MethodDelete {
			t.Fatalf("management API %s %s: %s", method, path, resp.Status)
		}
	}
	admin(http.MethodPut, "/api/vhosts/"+vhost, map[string]string{})
	t.Cleanup(func() { admin(http.MethodDelete, "/api/vhosts/"+vhost, nil) })
	admin(http.MethodPut, "/api/permissions/"+vhost+"/"+url.PathEscape(u.User.Username()),
		map[string]string{"configure": ".*", "write": ".*", "read": ".*"})
	ru := *u
	ru.Path = "/" + vhost
	return ru.String(), mgmt.String(), admin
}

// TestForgedActionsRabbitMQPostgres runs the compromised server's forged
// actions and messages (see TestAgentRefusesWhatInvestigatorsDidNotSign)
// against the other deployment: RabbitMQ as the relay and PostgreSQL as the
// store, with a real agent enrolled over them.
func TestForgedActionsRabbitMQPostgres(t *testing.T) {
	relayURL, mgmtURL, admin := rabbitVhost(t)
	dir := t.TempDir()
	caFile, certFile, keyFile, err := server.EnsureDevTLS(dir)
	must(t, err)
	cfg := server.DefaultConfig()
	cfg.API.Listen, cfg.API.Cert, cfg.API.Key = "127.0.0.1:0", certFile, keyFile
	cfg.Relay.URL, cfg.Relay.ManagementURL = relayURL, mgmtURL
	cfg.Store = pgtest.Schema(t, 8)
	cfg.EnrollmentTokens = []string{"e2e-enrollment-token-0123456789"}
	srv, err := server.Start(t.Context(), cfg, nil)
	must(t, err)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		agents, err := srv.Store.Agents(context.Background(), store.AgentQuery{})
		if err == nil {
			for _, a := range agents {
				admin(http.MethodDelete, "/api/users/"+a.ID, nil)
			}
		}
	})
	forgedActionAttacks(t, testServer{Server: srv, cfg: cfg, caFile: caFile}, dir, "rabbitmq+postgresql", "rabbitmq+postgresql")
}
