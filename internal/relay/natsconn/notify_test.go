package natsconn_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/natsrelay"
	"github.com/migplatform/mig/internal/relay/relaytest"
)

// TestNotify: a heartbeat sent with Notify reaches the hub, attributed to
// its agent, without a flush; a kind agents may not publish is refused.
func TestNotify(t *testing.T) {
	ctx := t.Context()
	pass, err := relay.NewPassword()
	if err != nil {
		t.Fatal(err)
	}
	id := relaytest.NewAgentID(t)
	hash := relay.HashPassword(pass)
	srv, err := natsrelay.StartServer(natsrelay.ServerConfig{
		Listen:       "127.0.0.1:0",
		Authenticate: func(agentID, password string) bool { return agentID == id && relay.CheckPassword(hash, password) },
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("StartServer = %v", err)
	}
	defer srv.Shutdown()
	hub, err := srv.NewHub(ctx)
	if err != nil {
		t.Fatalf("NewHub = %v", err)
	}
	defer hub.Close()
	got := make(chan relay.Inbound, 16)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- hub.Receive(rctx, func(m relay.Inbound) { got <- m }) }()
	defer func() { cancel(); <-done }()

	conn, err := natsrelay.Dial(ctx, id, relay.Credentials{URL: srv.ClientURL(), User: id, Password: pass})
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	defer conn.Close()
	n, ok := conn.(relay.Notifier)
	if !ok {
		t.Fatalf("the NATS connection does not implement relay.Notifier")
	}
	if err := n.Notify(relay.KindCommand, []byte("x")); err == nil {
		t.Errorf("Notify(command) = nil, want an error: agents do not publish commands")
	}
	// The hub's subscription is made asynchronously: notify until one arrives.
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := n.Notify(relay.KindHeartbeat, []byte("beat")); err != nil && !errors.Is(err, natsrelay.ErrDisconnected) {
			t.Fatalf("Notify(heartbeat) = %v", err)
		}
		select {
		case m := <-got:
			if m.AgentID != id || m.Kind != relay.KindHeartbeat || string(m.Data) != "beat" {
				t.Fatalf("hub received (%s, %s, %q), want (%s, heartbeat, \"beat\")", m.AgentID, m.Kind, m.Data, id)
			}
			return
		case <-deadline:
			t.Fatal("no notified heartbeat reached the hub in 20s")
		case <-tick.C:
		}
	}
}
