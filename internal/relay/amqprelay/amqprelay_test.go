package amqprelay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/relaytest"
)

// testLogger logs to stderr when MIG_TEST_LOG is set, and nowhere otherwise.
func testLogger() *slog.Logger {
	if os.Getenv("MIG_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// broker is the RabbitMQ the tests run against, with a virtual host of its
// own that the test deletes at the end, with every agent user it made.
type broker struct {
	amqpURL  *url.URL // the test's vhost, with the administrator's credentials
	mgmt     string   // management base URL with credentials
	vhost    string
	prov     *Provisioner
	mu       sync.Mutex
	agents   []string
	restarts sync.Mutex
}

// testBroker connects to the RabbitMQ named by MIG_TEST_AMQP_URL (its
// management API at MIG_TEST_AMQP_MANAGEMENT_URL, or port 15672 of the same
// host with the same credentials) and makes a fresh virtual host. Without
// the URL it skips, unless MIG_TEST_REQUIRE_SERVICES=1.
func testBroker(t testing.TB) *broker {
	t.Helper()
	raw := os.Getenv("MIG_TEST_AMQP_URL")
	if raw == "" {
		if os.Getenv("MIG_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("MIG_TEST_AMQP_URL is not set and MIG_TEST_REQUIRE_SERVICES=1")
		}
		t.Skip("MIG_TEST_AMQP_URL is not set: no RabbitMQ to test against")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("MIG_TEST_AMQP_URL: %v", err)
	}
	mgmt := os.Getenv("MIG_TEST_AMQP_MANAGEMENT_URL")
	if mgmt == "" {
		m := url.URL{Scheme: "http", User: u.User, Host: net.JoinHostPort(u.Hostname(), "15672")}
		mgmt = m.String()
	}
	b := &broker{mgmt: mgmt, vhost: "mig-test-" + randomHex(t, 8)}
	admin := "guest"
	if u.User != nil {
		admin = u.User.Username()
	}
	b.admin(t, http.MethodPut, "/api/vhosts/"+b.vhost, map[string]any{"description": "MIG relay test"})
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, id := range b.agents {
			b.adminNoFail(t, http.MethodDelete, "/api/users/"+id)
		}
		b.adminNoFail(t, http.MethodDelete, "/api/vhosts/"+b.vhost)
	})
	b.admin(t, http.MethodPut, "/api/permissions/"+b.vhost+"/"+url.PathEscape(admin),
		map[string]any{"configure": ".*", "write": ".*", "read": ".*"})
	au := *u
	au.Path = "/" + b.vhost
	b.amqpURL = &au
	b.prov, err = NewProvisioner(ProvisionerConfig{ManagementURL: mgmt, VHost: b.vhost, Logger: testLogger()})
	if err != nil {
		t.Fatalf("NewProvisioner = %v", err)
	}
	return b
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		t.Fatalf("reading random bytes: %v", err)
	}
	return hex.EncodeToString(p)
}

// admin makes a management API request as the administrator and fails the
// test if it does not succeed.
func (b *broker) admin(t testing.TB, method, path string, body any) []byte {
	t.Helper()
	out, err := b.request(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return out
}

func (b *broker) adminNoFail(t testing.TB, method, path string) {
	t.Helper()
	if _, err := b.request(method, path, nil); err != nil {
		t.Logf("%s %s: %v", method, path, err)
	}
}

func (b *broker) request(method, path string, body any) ([]byte, error) {
	u, err := url.Parse(b.mgmt)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(j)
	}
	pass, _ := u.User.Password()
	req, err := http.NewRequest(method, u.Scheme+"://"+u.Host+path, r)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(u.User.Username(), pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s: %s", resp.Status, out)
	}
	return out, nil
}

// agentURL is the URL agents get: the test's vhost, no credentials.
func (b *broker) agentURL() string {
	u := *b.amqpURL
	u.User = nil
	return u.String()
}

func (b *broker) creds(t *testing.T, id string) relay.Credentials {
	t.Helper()
	p, err := relay.NewPassword()
	if err != nil {
		t.Fatalf("NewPassword() = %v", err)
	}
	b.mu.Lock()
	b.agents = append(b.agents, id)
	b.mu.Unlock()
	if err := b.prov.AddAgent(t.Context(), id, p); err != nil {
		t.Fatalf("AddAgent(%s) = %v", id, err)
	}
	return relay.Credentials{URL: b.agentURL(), User: id, Password: p}
}

func (b *broker) newHub(t *testing.T) relay.Hub {
	t.Helper()
	h, err := NewHub(t.Context(), b.amqpURL.String(), Options{Logger: testLogger()})
	if err != nil {
		t.Fatalf("NewHub = %v", err)
	}
	return h
}

// restart restarts the RabbitMQ application with rabbitmqctl, which needs
// the test to run on the broker's machine with the rights to do so; the
// test skips otherwise.
func (b *broker) restart(t *testing.T) {
	t.Helper()
	ctl, err := exec.LookPath("rabbitmqctl")
	if err != nil {
		t.Skip("rabbitmqctl is not installed: cannot restart the broker")
	}
	if os.Geteuid() != 0 {
		t.Skip("restarting RabbitMQ with rabbitmqctl needs root")
	}
	b.restarts.Lock()
	defer b.restarts.Unlock()
	for _, cmd := range []string{"stop_app", "start_app"} {
		out, err := exec.CommandContext(t.Context(), ctl, cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("rabbitmqctl %s: %v\n%s", cmd, err, out)
		}
	}
	host := b.amqpURL.Host
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("RabbitMQ at %s did not come back: %v", host, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestConformance(t *testing.T) {
	b := testBroker(t)
	relaytest.Run(t, relaytest.Harness{
		NewHub:  b.newHub,
		Dial:    NewDialer(testLogger()),
		Creds:   b.creds,
		Restart: b.restart,
		Durable: true,
	})
}

// TestAgentCannotActAsAnother uses a raw AMQP connection with agent A's
// credentials to read B's queue, publish as B, write into B's queue, declare
// queues and bindings, and forge the user-id: RabbitMQ must refuse each, and
// the hub must receive only what A publishes as itself.
func TestAgentCannotActAsAnother(t *testing.T) {
	b := testBroker(t)
	hub := b.newHub(t)
	defer hub.Close()
	received := make(chan relay.Inbound, 64)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- hub.Receive(ctx, func(m relay.Inbound) { received <- m }) }()
	defer func() {
		cancel()
		<-done
	}()
	a, bID := relaytest.NewAgentID(t), relaytest.NewAgentID(t)
	ca := b.creds(t, a)
	b.creds(t, bID)

	dialA := func(t *testing.T) *amqp.Connection {
		t.Helper()
		c, err := amqp.DialConfig(ca.URL, amqp.Config{SASL: []amqp.Authentication{&amqp.PlainAuth{Username: a, Password: ca.Password}}, Vhost: b.vhost})
		if err != nil {
			t.Fatalf("connecting as agent a: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	conn := dialA(t)
	forbidden := []struct {
		name string
		do   func(ch *amqp.Channel) error
	}{
		{"consume b's queue", func(ch *amqp.Channel) error {
			_, err := ch.Consume(AgentQueue(bID), "", false, false, false, false, nil)
			return err
		}},
		{"get from b's queue", func(ch *amqp.Channel) error {
			_, _, err := ch.Get(AgentQueue(bID), false)
			return err
		}},
		{"consume the result queue", func(ch *amqp.Channel) error {
			_, err := ch.Consume(ResultQueue, "", false, false, false, false, nil)
			return err
		}},
		{"declare a queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("mig.agent.snoop", false, true, false, false, nil)
			return err
		}},
		{"bind own queue to b's key", func(ch *amqp.Channel) error {
			return ch.QueueBind(AgentQueue(a), bID, AgentExchange, false, nil)
		}},
		{"delete b's queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(AgentQueue(bID), false, false, false)
			return err
		}},
		{"publish a result as b", publishConfirmed(ServerExchange, relay.KindResult+"."+bID, amqp.Publishing{UserId: a, Body: []byte("forged")})},
		{"publish a heartbeat as b", publishConfirmed(ServerExchange, relay.KindHeartbeat+"."+bID, amqp.Publishing{Body: []byte("forged")})},
		{"publish with b's user-id", publishConfirmed(ServerExchange, relay.KindResult+"."+a, amqp.Publishing{UserId: bID, Body: []byte("forged")})},
		{"publish to b's inbox", publishConfirmed(AgentExchange, bID, amqp.Publishing{Type: relay.KindCommand, Body: []byte("forged")})},
		{"publish to own inbox", publishConfirmed(AgentExchange, a, amqp.Publishing{Type: relay.KindCommand, Body: []byte("forged")})},
		{"publish through the default exchange", publishConfirmed("", AgentQueue(bID), amqp.Publishing{Type: relay.KindCommand, Body: []byte("forged")})},
		{"publish another kind", publishConfirmed(ServerExchange, "command."+a, amqp.Publishing{UserId: a, Body: []byte("forged")})},
	}
	for _, tt := range forbidden {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := conn.Channel()
			if err != nil {
				conn = dialA(t)
				if ch, err = conn.Channel(); err != nil {
					t.Fatalf("opening a channel: %v", err)
				}
			}
			defer ch.Close()
			err = tt.do(ch)
			// RabbitMQ refuses a forged user-id as a failed precondition
			// (406), everything else as access refused (403).
			var ae *amqp.Error
			if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused && ae.Code != amqp.PreconditionFailed {
				t.Errorf("%s: err = %v, want an AMQP access-refused (403) or precondition-failed (406) error", tt.name, err)
			}
		})
	}
	// A's own result is accepted and attributed to A; the hub got nothing
	// else.
	ch, err := dialA(t).Channel()
	if err != nil {
		t.Fatalf("opening a channel: %v", err)
	}
	if err := publishConfirmed(ServerExchange, relay.KindResult+"."+a, amqp.Publishing{UserId: a, Body: []byte("a's own")})(ch); err != nil {
		t.Fatalf("publishing a's own result: %v", err)
	}
	select {
	case m := <-received:
		if m.AgentID != a || m.Kind != relay.KindResult || string(m.Data) != "a's own" {
			t.Errorf("hub received (%s, %s, %q), want (%s, result, \"a's own\")", m.AgentID, m.Kind, m.Data, a)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("hub did not receive a's own result")
	}
	// Without a user-id the broker cannot vouch for the sender: dropped.
	if err := publishConfirmed(ServerExchange, relay.KindResult+"."+a, amqp.Publishing{Body: []byte("no user-id")})(ch); err != nil {
		t.Fatalf("publishing without a user-id: %v", err)
	}
	select {
	case m := <-received:
		t.Errorf("hub received (%s, %s, %q), want nothing more", m.AgentID, m.Kind, m.Data)
	case <-time.After(time.Second):
	}
}

// publishConfirmed returns a step that publishes msg in confirm mode and
// waits for the confirm or the channel's error.
func publishConfirmed(exchange, key string, msg amqp.Publishing) func(ch *amqp.Channel) error {
	return func(ch *amqp.Channel) error {
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		if err := ch.Confirm(false); err != nil {
			return err
		}
		dc, err := ch.PublishWithDeferredConfirm(exchange, key, false, false, msg)
		if err != nil {
			return err
		}
		select {
		case <-dc.Done():
			// A refused publish closes the channel: wait for its reason.
			select {
			case err := <-closed:
				if err != nil {
					return err
				}
			case <-time.After(200 * time.Millisecond):
			}
			if !dc.Acked() {
				return errors.New("nacked")
			}
			return nil
		case err := <-closed:
			if err == nil {
				return errors.New("channel closed")
			}
			return err
		case <-time.After(20 * time.Second):
			return errors.New("no confirm")
		}
	}
}

// TestHubReconnects: a hub made before the broker restarts reconnects,
// consumes again in the same Receive call, and sends again.
func TestHubReconnects(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the broker")
	}
	b := testBroker(t)
	hub := b.newHub(t)
	defer hub.Close()
	id := relaytest.NewAgentID(t)
	conn, err := NewDialer(testLogger())(t.Context(), id, b.creds(t, id))
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	defer conn.Close()
	received := make(chan relay.Inbound, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- hub.Receive(ctx, func(m relay.Inbound) { received <- m }) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Receive = %v, want context.Canceled", err)
		}
	}()
	b.restart(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := hub.Send(t.Context(), []relay.Outbound{{AgentID: id, Kind: relay.KindAck, Data: []byte("x")}})
		if err == nil {
			break
		}
		if !errors.Is(err, ErrDisconnected) {
			t.Logf("Send after the restart: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub still cannot send 60s after the restart: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for {
		if err := conn.Publish(t.Context(), relay.KindResult, []byte("after restart")); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("agent still cannot publish 60s after the restart: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case m := <-received:
		if m.AgentID != id || string(m.Data) != "after restart" {
			t.Errorf("hub received (%s, %q), want (%s, %q)", m.AgentID, m.Data, id, "after restart")
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the hub's Receive got nothing after the restart")
	}
}

// TestRemoveAgent: a removed agent is disconnected and cannot come back.
func TestRemoveAgent(t *testing.T) {
	b := testBroker(t)
	id := relaytest.NewAgentID(t)
	cr := b.creds(t, id)
	conn, err := Dial(t.Context(), id, cr)
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	defer conn.Close()
	connected := make(chan struct{}, 8)
	conn.OnConnect(func() { connected <- struct{}{} })
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		t.Fatalf("agent did not connect")
	}
	if err := b.prov.RemoveAgent(t.Context(), id); err != nil {
		t.Fatalf("RemoveAgent = %v", err)
	}
	if err := b.prov.RemoveAgent(t.Context(), id); err != nil {
		t.Errorf("second RemoveAgent = %v, want nil", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for conn.Publish(t.Context(), relay.KindHeartbeat, []byte("still here?")) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("a removed agent can still publish after 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-connected:
		t.Errorf("a removed agent connected again")
	case <-time.After(2 * time.Second):
	}
	_, err = amqp.DialConfig(cr.URL, amqp.Config{SASL: []amqp.Authentication{&amqp.PlainAuth{Username: id, Password: cr.Password}}, Vhost: b.vhost})
	var ae *amqp.Error
	if err == nil || !errors.As(err, &ae) && !strings.Contains(err.Error(), "403") {
		t.Errorf("connecting as a removed agent: err = %v, want access refused", err)
	}
}

func TestProvisionerErrors(t *testing.T) {
	bad := []ProvisionerConfig{
		{ManagementURL: ""},
		{ManagementURL: "amqp://guest:guest@127.0.0.1:5672"},
		{ManagementURL: "http://127.0.0.1:15672"},
		{ManagementURL: "http://%zz"},
	}
	for _, cfg := range bad {
		if _, err := NewProvisioner(cfg); err == nil {
			t.Errorf("NewProvisioner(%q) = nil error, want one", cfg.ManagementURL)
		}
	}
	p, err := NewProvisioner(ProvisionerConfig{ManagementURL: "http://u:p@127.0.0.1:1"})
	if err != nil {
		t.Fatalf("NewProvisioner = %v", err)
	}
	for _, id := range []string{"", "guest", "*", strings.Repeat("A", 32), "../../api/users/guest"} {
		if err := p.AddAgent(t.Context(), id, "pw"); !errors.Is(err, relay.ErrAgentID) {
			t.Errorf("AddAgent(%q) = %v, want relay.ErrAgentID", id, err)
		}
		if err := p.RemoveAgent(t.Context(), id); !errors.Is(err, relay.ErrAgentID) {
			t.Errorf("RemoveAgent(%q) = %v, want relay.ErrAgentID", id, err)
		}
	}
	id := relaytest.NewAgentID(t)
	if err := p.AddAgent(t.Context(), id, ""); !errors.Is(err, ErrCredentials) {
		t.Errorf("AddAgent with no password = %v, want ErrCredentials", err)
	}
	if err := p.AddAgent(t.Context(), id, "pw"); !errors.Is(err, ErrManagement) {
		t.Errorf("AddAgent with no management API = %v, want ErrManagement", err)
	}
}

func TestDialErrors(t *testing.T) {
	id := relaytest.NewAgentID(t)
	tests := []struct {
		name  string
		id    string
		creds relay.Credentials
		want  error
	}{
		{"bad id", "mig-hub", relay.Credentials{URL: "amqp://127.0.0.1/"}, relay.ErrAgentID},
		{"other user", id, relay.Credentials{URL: "amqp://127.0.0.1/", User: relaytest.NewAgentID(t)}, ErrCredentials},
		{"no url", id, relay.Credentials{}, ErrCredentials},
		{"bad url", id, relay.Credentials{URL: "nats://127.0.0.1:4222"}, ErrCredentials},
		{"CA without TLS", id, relay.Credentials{URL: "amqp://127.0.0.1/", CA: "x"}, ErrCredentials},
		{"CA without PEM", id, relay.Credentials{URL: "amqps://127.0.0.1/", CA: "x"}, ErrCredentials},
	}
	for _, tt := range tests {
		c, err := Dial(t.Context(), tt.id, tt.creds)
		if c != nil {
			c.Close()
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: Dial = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := NewHub(t.Context(), "http://127.0.0.1/", Options{}); err == nil {
		t.Errorf("NewHub(http://) = nil error, want one")
	}
	if _, err := NewHub(t.Context(), "amqp://127.0.0.1:1/", Options{Prefetch: -1}); err == nil {
		t.Errorf("NewHub with a negative prefetch = nil error, want one")
	}
}

// TestDialBeforeRelay: Dial succeeds with nothing listening, Publish fails
// with ErrDisconnected, and Close returns promptly.
func TestDialBeforeRelay(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	id := relaytest.NewAgentID(t)
	conn, err := Dial(t.Context(), id, relay.Credentials{URL: "amqp://" + addr + "/", Password: "x"})
	if err != nil {
		t.Fatalf("Dial with the relay down = %v, want no error", err)
	}
	if err := conn.Publish(t.Context(), relay.KindHeartbeat, []byte("x")); !errors.Is(err, ErrDisconnected) {
		t.Errorf("Publish with the relay down = %v, want ErrDisconnected", err)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := conn.Publish(t.Context(), relay.KindHeartbeat, []byte("x")); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Publish after Close = %v, want relay.ErrClosed", err)
	}
}

func TestPasswordHash(t *testing.T) {
	h1, err := passwordHash("secret")
	if err != nil {
		t.Fatalf("passwordHash = %v", err)
	}
	h2, _ := passwordHash("secret")
	if h1 == h2 {
		t.Errorf("two hashes of the same password are equal (%s): want random salts", h1)
	}
	raw, err := base64.StdEncoding.DecodeString(h1)
	if err != nil || len(raw) != 36 {
		t.Fatalf("hash %q decodes to %d bytes (%v), want 4 of salt and 32 of SHA-256", h1, len(raw), err)
	}
}

func TestExpiration(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, ""},
		{now.Add(1500 * time.Millisecond), "1500"},
		{now.Add(time.Hour), "3600000"},
		{now, "0"},
		{now.Add(-time.Hour), "0"},
	}
	for _, tt := range tests {
		if got := expiration(tt.t, now); got != tt.want {
			t.Errorf("expiration(%v) = %q, want %q", tt.t, got, tt.want)
		}
	}
}
