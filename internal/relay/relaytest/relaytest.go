// Package relaytest is the conformance suite every relay implementation
// passes: Run it from the implementation's tests with a Harness that makes
// hubs, dials agents and provisions their credentials on a real broker.
//
// Besides the relay package's documented contract, the suite holds
// implementations to these rules:
//
//   - Hub.Receive and Conn.Subscribe block until their context ends or the hub
//     or connection is closed; after Close they return an error wrapping
//     relay.ErrClosed, as do Send and Publish.
//   - A message sent to an agent after its OnConnect callbacks have started
//     running reaches its inbox (so a hello sent from OnConnect gets its
//     answer).
//   - A hub receives what agents publish once its Receive has delivered one
//     message (the suite waits for a probe heartbeat before it counts).
//   - Messages of action.MaxMessageSize bytes go both ways.
//   - Heartbeats from many agents reach a server attributed to their
//     publisher and, for each agent, in order.
//   - A durable relay (Harness.Durable) keeps commands for offline agents
//     until they expire, keeps results until a server takes them, across a
//     broker restart, and delivers a message again when its consumer dies
//     before acknowledging it.
package relaytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay"
)

// Harness is how the suite drives one relay implementation.
type Harness struct {
	// NewHub returns a new hub on the current broker. The suite closes it.
	NewHub func(t *testing.T) relay.Hub
	// Dial connects an agent.
	Dial relay.Dialer
	// Creds provisions agentID on the broker and returns its credentials.
	Creds func(t *testing.T, agentID string) relay.Credentials
	// Restart, if set, stops the broker and starts it again at the same
	// address with the same agents provisioned. Hubs made before it may stop
	// working; agents must reconnect by themselves.
	Restart func(t *testing.T)
	// Durable says the broker keeps messages (RabbitMQ): commands for an
	// agent that is offline wait until it reconnects or they expire
	// (relay.Outbound.Expires), results wait for a server, both survive a
	// Restart, and a message whose consumer dies before acknowledging it is
	// delivered again. Relays that keep nothing (NATS) leave it false: there
	// the server sends pending commands again when an agent says hello, and
	// the agent keeps results on disk until they are acknowledged.
	Durable bool
	// Settle, if set, waits until every subscription made so far is known
	// to every broker node. A cluster spreads interest between its nodes
	// asynchronously, so a message published on one node right after a
	// client subscribed on another can be dropped; the platform does not
	// depend on it (the server answers an agent's hello, agents resend
	// results until acknowledged), but the suite's exact expectations do.
	Settle func(t *testing.T)
}

// Timeouts: how long to wait for something that must happen, and how long to
// watch for something that must not.
const (
	waitFor = 20 * time.Second
	quiet   = 500 * time.Millisecond
)

// Run runs the conformance suite against h.
func Run(t *testing.T, h Harness) {
	if h.NewHub == nil || h.Dial == nil || h.Creds == nil {
		t.Fatal("relaytest: Harness needs NewHub, Dial and Creds")
	}
	t.Run("Delivery", func(t *testing.T) { testDelivery(t, h) })
	t.Run("FanOut", func(t *testing.T) { testFanOut(t, h) })
	t.Run("OwnInboxOnly", func(t *testing.T) { testOwnInboxOnly(t, h) })
	t.Run("WrongCredentials", func(t *testing.T) { testWrongCredentials(t, h) })
	t.Run("ResultsAndHeartbeats", func(t *testing.T) { testResultsAndHeartbeats(t, h) })
	t.Run("SharedReceive", func(t *testing.T) { testSharedReceive(t, h) })
	t.Run("LargeMessages", func(t *testing.T) { testLargeMessages(t, h) })
	t.Run("Refused", func(t *testing.T) { testRefused(t, h) })
	t.Run("PublishWhileDisconnected", func(t *testing.T) { testPublishWhileDisconnected(t, h) })
	t.Run("OnConnectAfterConnect", func(t *testing.T) { testOnConnectAfterConnect(t, h) })
	t.Run("Close", func(t *testing.T) { testClose(t, h) })
	t.Run("Heartbeats", func(t *testing.T) { testHeartbeats(t, h) })
	t.Run("Reconnect", func(t *testing.T) {
		if h.Restart == nil {
			t.Skip("the harness cannot restart its broker")
		}
		testReconnect(t, h)
	})
	durable := func(name string, f func(*testing.T, Harness)) {
		t.Run(name, func(t *testing.T) {
			if !h.Durable {
				t.Skip("the relay keeps no messages: the server resends pending commands on hello and agents keep results on disk")
			}
			f(t, h)
		})
	}
	durable("RedeliveryToServer", testRedeliveryToServer)
	durable("DeferredRelease", testDeferredRelease)
	durable("RedeliveryToAgent", testRedeliveryToAgent)
	durable("OfflineAgent", testOfflineAgent)
	durable("ResultsWaitForServer", testResultsWaitForServer)
	durable("SurviveRestart", func(t *testing.T, h Harness) {
		if h.Restart == nil {
			t.Skip("the harness cannot restart its broker")
		}
		testSurviveRestart(t, h)
	})
}

// NewAgentID returns a random, well-formed agent ID.
func NewAgentID(t testing.TB) string {
	t.Helper()
	b := make([]byte, relay.AgentIDLen/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("reading random bytes: %v", err)
	}
	return hex.EncodeToString(b)
}

// inMsg is one message an agent received.
type inMsg struct {
	kind string
	data string
}

// agent is a connected agent whose inbox the test reads.
type agent struct {
	id        string
	creds     relay.Credentials
	conn      relay.Conn
	inbox     chan inMsg
	connects  atomic.Int32
	connected chan struct{} // one value per OnConnect
	settle    func(t *testing.T)
}

// dialAgent provisions and dials an agent, subscribes to its inbox and
// registers an OnConnect counter; the test's cleanup closes it.
func dialAgent(t *testing.T, h Harness) *agent {
	t.Helper()
	id := NewAgentID(t)
	return dialAs(t, h, id, h.Creds(t, id))
}

func dialAs(t *testing.T, h Harness, id string, creds relay.Credentials) *agent {
	t.Helper()
	a, err := tryDialAs(t, h, id, creds)
	if err != nil {
		t.Fatalf("Dial(%s) = %v, want no error", id, err)
	}
	return a
}

// tryDialAs is dialAs returning Dial's error.
func tryDialAs(t *testing.T, h Harness, id string, creds relay.Credentials) (*agent, error) {
	t.Helper()
	conn, err := h.Dial(t.Context(), id, creds)
	if err != nil {
		return nil, err
	}
	a := &agent{
		id:        id,
		creds:     creds,
		conn:      conn,
		inbox:     make(chan inMsg, 1024),
		connected: make(chan struct{}, 64),
		settle:    h.Settle,
	}
	conn.OnConnect(func() {
		a.connects.Add(1)
		select {
		case a.connected <- struct{}{}:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- conn.Subscribe(ctx, func(kind string, data []byte) {
			a.inbox <- inMsg{kind: kind, data: string(data)}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, relay.ErrClosed) {
			t.Errorf("agent %s: Subscribe returned %v, want context.Canceled or relay.ErrClosed", id, err)
		}
		if err := conn.Close(); err != nil {
			t.Errorf("agent %s: Close() = %v", id, err)
		}
	})
	return a, nil
}

// waitConnected waits for the agent's n-th OnConnect call.
func (a *agent) waitConnected(t *testing.T, n int32) {
	t.Helper()
	deadline := time.After(waitFor)
	for a.connects.Load() < n {
		select {
		case <-a.connected:
		case <-deadline:
			t.Fatalf("agent %s: %d OnConnect calls after %s, want %d", a.id, a.connects.Load(), waitFor, n)
		}
	}
	if a.settle != nil {
		a.settle(t)
	}
}

// expect waits for the agent's next inbox message and checks it.
func (a *agent) expect(t *testing.T, want inMsg) {
	t.Helper()
	select {
	case got := <-a.inbox:
		if got != want {
			t.Errorf("agent %s got (%s, %.40q), want (%s, %.40q)", a.id, got.kind, got.data, want.kind, want.data)
		}
	case <-time.After(waitFor):
		t.Fatalf("agent %s got nothing in %s, want (%s, %.40q)", a.id, waitFor, want.kind, want.data)
	}
}

// expectNothing checks that the agent's inbox stays empty for a while.
func (a *agent) expectNothing(t *testing.T) {
	t.Helper()
	select {
	case got := <-a.inbox:
		t.Errorf("agent %s got (%s, %.40q), want nothing", a.id, got.kind, got.data)
	case <-time.After(quiet):
	}
}

// receiver collects what a hub receives.
type receiver struct {
	hub relay.Hub
	in  chan relay.Inbound
}

// newHub makes a hub and closes it at cleanup.
func newHub(t *testing.T, h Harness) relay.Hub {
	t.Helper()
	hub := h.NewHub(t)
	t.Cleanup(func() {
		if err := hub.Close(); err != nil {
			t.Errorf("hub Close() = %v", err)
		}
	})
	return hub
}

// probeData is the heartbeat probes publish.
const probeData = "relaytest probe"

// receive runs hub.Receive until cleanup and waits until it delivers: a probe
// agent publishes heartbeats until one arrives. Probe heartbeats (this hub's
// or, with several hubs receiving, another's) are not passed on.
func receive(t *testing.T, h Harness, hub relay.Hub) *receiver {
	t.Helper()
	probe := dialAgent(t, h)
	r := &receiver{hub: hub, in: make(chan relay.Inbound, 4096)}
	seen := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- hub.Receive(ctx, func(m relay.Inbound) {
			if m.Kind == relay.KindHeartbeat && string(m.Data) == probeData {
				if m.AgentID == probe.id {
					once.Do(func() { close(seen) })
				}
				return
			}
			r.in <- m
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, relay.ErrClosed) {
			t.Errorf("Receive returned %v, want context.Canceled or relay.ErrClosed", err)
		}
	})
	probe.waitConnected(t, 1)
	deadline := time.After(waitFor)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := probe.conn.Publish(t.Context(), relay.KindHeartbeat, []byte(probeData)); err != nil {
			t.Logf("probe heartbeat: %v", err)
		}
		select {
		case <-seen:
			if h.Settle != nil {
				h.Settle(t)
			}
			return r
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("Receive returned %v before delivering anything", err)
		case <-deadline:
			t.Fatalf("hub received no probe heartbeat in %s", waitFor)
		case <-tick.C:
		}
	}
}

// next waits for the hub's next message.
func (r *receiver) next(t *testing.T) relay.Inbound {
	t.Helper()
	select {
	case m := <-r.in:
		return m
	case <-time.After(waitFor):
		t.Fatalf("hub received nothing in %s", waitFor)
		return relay.Inbound{}
	}
}

// expectNothing checks that the hub receives nothing for a while.
func (r *receiver) expectNothing(t *testing.T) {
	t.Helper()
	select {
	case m := <-r.in:
		t.Errorf("hub received (%s, %s, %.40q), want nothing", m.AgentID, m.Kind, m.Data)
	case <-time.After(quiet):
	}
}

func send(t *testing.T, hub relay.Hub, msgs ...relay.Outbound) {
	t.Helper()
	if err := hub.Send(t.Context(), msgs); err != nil {
		t.Fatalf("Send(%d messages) = %v, want no error", len(msgs), err)
	}
}

func testDelivery(t *testing.T, h Harness) {
	hub := newHub(t, h)
	a := dialAgent(t, h)
	a.waitConnected(t, 1)
	send(t, hub,
		relay.Outbound{AgentID: a.id, Kind: relay.KindCommand, Data: []byte(`{"v":1,"command":{"id":1}}`)},
		relay.Outbound{AgentID: a.id, Kind: relay.KindAck, Data: []byte(`{"v":1,"commandids":[1]}`)},
	)
	a.expect(t, inMsg{relay.KindCommand, `{"v":1,"command":{"id":1}}`})
	a.expect(t, inMsg{relay.KindAck, `{"v":1,"commandids":[1]}`})
	a.expectNothing(t)
}

func testFanOut(t *testing.T, h Harness) {
	const n = 200
	hub := newHub(t, h)
	agents := make([]*agent, n)
	for i := range agents {
		agents[i] = dialAgent(t, h)
	}
	msgs := make([]relay.Outbound, n)
	for i, a := range agents {
		a.waitConnected(t, 1)
		msgs[i] = relay.Outbound{AgentID: a.id, Kind: relay.KindCommand, Data: []byte("command for " + a.id)}
	}
	send(t, hub, msgs...)
	for _, a := range agents {
		a.expect(t, inMsg{relay.KindCommand, "command for " + a.id})
	}
	time.Sleep(quiet)
	for _, a := range agents {
		select {
		case got := <-a.inbox:
			t.Errorf("agent %s got a second message (%s, %.40q), want exactly one", a.id, got.kind, got.data)
		default:
		}
	}
}

func testOwnInboxOnly(t *testing.T, h Harness) {
	hub := newHub(t, h)
	a, b := dialAgent(t, h), dialAgent(t, h)
	a.waitConnected(t, 1)
	b.waitConnected(t, 1)
	send(t, hub,
		relay.Outbound{AgentID: a.id, Kind: relay.KindCommand, Data: []byte("for a")},
		relay.Outbound{AgentID: a.id, Kind: relay.KindAck, Data: []byte("ack for a")},
	)
	a.expect(t, inMsg{relay.KindCommand, "for a"})
	a.expect(t, inMsg{relay.KindAck, "ack for a"})
	b.expectNothing(t)
	// b was listening all along.
	send(t, hub, relay.Outbound{AgentID: b.id, Kind: relay.KindCommand, Data: []byte("for b")})
	b.expect(t, inMsg{relay.KindCommand, "for b"})
	a.expectNothing(t)
}

// testWrongCredentials: an agent that presents another agent's password, or
// its own password under another agent's name, gets nothing of either agent's
// inbox and publishes nothing the hub accepts.
func testWrongCredentials(t *testing.T, h Harness) {
	hub := newHub(t, h)
	r := receive(t, h, hub)
	a, b := dialAgent(t, h), dialAgent(t, h)
	a.waitConnected(t, 1)
	b.waitConnected(t, 1)

	tests := []struct {
		name  string
		id    string
		creds relay.Credentials
	}{
		{"b's password as a", a.id, relay.Credentials{URL: b.creds.URL, User: a.id, Password: b.creds.Password, CA: b.creds.CA}},
		{"a's password as b", b.id, relay.Credentials{URL: a.creds.URL, User: b.id, Password: a.creds.Password, CA: a.creds.CA}},
		{"no password as a", a.id, relay.Credentials{URL: a.creds.URL, User: a.id, CA: a.creds.CA}},
	}
	var impostors []*agent
	for _, tt := range tests {
		imp, err := tryDialAs(t, h, tt.id, tt.creds)
		if err != nil {
			t.Logf("%s: Dial refused: %v", tt.name, err)
			continue
		}
		impostors = append(impostors, imp)
		ctx, cancel := context.WithTimeout(t.Context(), waitFor)
		err = imp.conn.Publish(ctx, relay.KindResult, []byte("forged by "+tt.name))
		cancel()
		if err == nil {
			t.Logf("%s: Publish() = nil; checking that nothing arrives", tt.name)
		}
	}
	send(t, hub,
		relay.Outbound{AgentID: a.id, Kind: relay.KindCommand, Data: []byte("secret for a")},
		relay.Outbound{AgentID: b.id, Kind: relay.KindCommand, Data: []byte("secret for b")},
	)
	a.expect(t, inMsg{relay.KindCommand, "secret for a"})
	b.expect(t, inMsg{relay.KindCommand, "secret for b"})
	for i, imp := range impostors {
		imp.expectNothing(t)
		if n := imp.connects.Load(); n != 0 {
			t.Errorf("impostor %d (agent %s): OnConnect ran %d times, want 0", i, imp.id, n)
		}
	}
	r.expectNothing(t)
}

func testResultsAndHeartbeats(t *testing.T, h Harness) {
	hub := newHub(t, h)
	r := receive(t, h, hub)
	a, b := dialAgent(t, h), dialAgent(t, h)
	a.waitConnected(t, 1)
	b.waitConnected(t, 1)
	tests := []struct {
		from *agent
		kind string
		data string
	}{
		{a, relay.KindHeartbeat, `{"v":1,"hello":true,"agent":{"id":"` + b.id + `"}}`},
		{a, relay.KindResult, `{"v":1,"agentid":"` + b.id + `","commandid":7}`},
		{b, relay.KindResult, `{"v":1,"agentid":"` + a.id + `","commandid":8}`},
		{b, relay.KindHeartbeat, `{"v":1,"agent":{"id":"someone else"}}`},
	}
	for _, tt := range tests {
		if err := tt.from.conn.Publish(t.Context(), tt.kind, []byte(tt.data)); err != nil {
			t.Fatalf("agent %s: Publish(%s) = %v, want no error", tt.from.id, tt.kind, err)
		}
		got := r.next(t)
		want := relay.Inbound{AgentID: tt.from.id, Kind: tt.kind, Data: []byte(tt.data)}
		if got.AgentID != want.AgentID || got.Kind != want.Kind || string(got.Data) != string(want.Data) {
			t.Errorf("hub received (%s, %s, %q), want (%s, %s, %q)",
				got.AgentID, got.Kind, got.Data, want.AgentID, want.Kind, want.Data)
		}
	}
	r.expectNothing(t)
}

// testSharedReceive: with two hubs receiving, each message goes to exactly
// one of them.
func testSharedReceive(t *testing.T, h Harness) {
	const n = 100
	r1 := receive(t, h, newHub(t, h))
	r2 := receive(t, h, newHub(t, h))
	a := dialAgent(t, h)
	a.waitConnected(t, 1)
	for i := range n {
		if err := a.conn.Publish(t.Context(), relay.KindResult, fmt.Appendf(nil, "result %d", i)); err != nil {
			t.Fatalf("Publish(result %d) = %v, want no error", i, err)
		}
	}
	seen := map[string]int{}
	deadline := time.After(waitFor)
	for len(seen) < n {
		select {
		case m := <-r1.in:
			seen[string(m.Data)]++
		case m := <-r2.in:
			seen[string(m.Data)]++
		case <-deadline:
			t.Fatalf("hubs received %d distinct results in %s, want %d", len(seen), waitFor, n)
		}
	}
	r1.expectNothing(t)
	r2.expectNothing(t)
	for data, count := range seen {
		if count != 1 {
			t.Errorf("%q was received %d times, want once", data, count)
		}
	}
}

func testLargeMessages(t *testing.T, h Harness) {
	hub := newHub(t, h)
	r := receive(t, h, hub)
	a := dialAgent(t, h)
	a.waitConnected(t, 1)
	big := make([]byte, action.MaxMessageSize)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	send(t, hub, relay.Outbound{AgentID: a.id, Kind: relay.KindCommand, Data: big})
	select {
	case got := <-a.inbox:
		if got.kind != relay.KindCommand || got.data != string(big) {
			t.Errorf("agent got (%s, %d bytes), want (%s, %d bytes) equal to what was sent",
				got.kind, len(got.data), relay.KindCommand, len(big))
		}
	case <-time.After(waitFor):
		t.Fatalf("agent got nothing in %s, want a %d-byte command", waitFor, len(big))
	}
	if err := a.conn.Publish(t.Context(), relay.KindResult, big); err != nil {
		t.Fatalf("Publish(%d bytes) = %v, want no error", len(big), err)
	}
	got := r.next(t)
	if got.AgentID != a.id || got.Kind != relay.KindResult || string(got.Data) != string(big) {
		t.Errorf("hub received (%s, %s, %d bytes), want (%s, %s, %d bytes) equal to what was sent",
			got.AgentID, got.Kind, len(got.Data), a.id, relay.KindResult, len(big))
	}
	if err := a.conn.Publish(t.Context(), relay.KindResult, append(big, 'x')); err == nil {
		t.Errorf("Publish(%d bytes) = nil, want an error over action.MaxMessageSize", len(big)+1)
	}
}

// testRefused: malformed agent IDs and kinds are refused, and a batch with
// one bad message sends nothing.
func testRefused(t *testing.T, h Harness) {
	hub := newHub(t, h)
	a := dialAgent(t, h)
	a.waitConnected(t, 1)
	bad := []struct {
		name string
		msg  relay.Outbound
	}{
		{"empty id", relay.Outbound{AgentID: "", Kind: relay.KindCommand}},
		{"upper-case id", relay.Outbound{AgentID: "0123456789ABCDEF0123456789ABCDEF", Kind: relay.KindCommand}},
		{"short id", relay.Outbound{AgentID: "0123456789abcdef", Kind: relay.KindCommand}},
		{"wildcard id", relay.Outbound{AgentID: "*", Kind: relay.KindCommand}},
		{"full wildcard id", relay.Outbound{AgentID: ">", Kind: relay.KindCommand}},
		{"dotted id", relay.Outbound{AgentID: a.id[:16] + "." + a.id[17:], Kind: relay.KindCommand}},
		{"spaced id", relay.Outbound{AgentID: a.id[:16] + " " + a.id[17:], Kind: relay.KindCommand}},
		{"id with suffix", relay.Outbound{AgentID: a.id + ".x", Kind: relay.KindCommand}},
		{"result kind", relay.Outbound{AgentID: a.id, Kind: relay.KindResult}},
		{"heartbeat kind", relay.Outbound{AgentID: a.id, Kind: relay.KindHeartbeat}},
		{"empty kind", relay.Outbound{AgentID: a.id, Kind: ""}},
		{"wildcard kind", relay.Outbound{AgentID: a.id, Kind: "*"}},
	}
	for _, tt := range bad {
		good := relay.Outbound{AgentID: a.id, Kind: relay.KindCommand, Data: []byte("must not arrive")}
		if err := hub.Send(t.Context(), []relay.Outbound{good, tt.msg}); err == nil {
			t.Errorf("%s: Send(%q, %q) = nil, want an error", tt.name, tt.msg.AgentID, tt.msg.Kind)
		}
	}
	a.expectNothing(t)
	for _, kind := range []string{relay.KindCommand, relay.KindAck, "", "*", ">", "result.x"} {
		if err := a.conn.Publish(t.Context(), kind, []byte("x")); err == nil {
			t.Errorf("Publish(%q) = nil, want an error", kind)
		}
	}
	if err := hub.Send(t.Context(), nil); err != nil {
		t.Errorf("Send(nil) = %v, want no error", err)
	}
}

// testPublishWhileDisconnected: an agent that cannot connect (the broker
// refuses its password) gets an error from Publish, even with a context
// that never ends.
func testPublishWhileDisconnected(t *testing.T, h Harness) {
	id := NewAgentID(t)
	creds := h.Creds(t, id)
	creds.Password += "-wrong"
	a, err := tryDialAs(t, h, id, creds)
	if err != nil {
		t.Skipf("Dial with a wrong password failed at once (%v): no disconnected Conn to publish on", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- a.conn.Publish(context.Background(), relay.KindHeartbeat, []byte("hello?")) }()
	select {
	case err := <-errc:
		if err == nil {
			t.Errorf("Publish while disconnected = nil, want an error")
		}
	case <-time.After(waitFor + 30*time.Second):
		t.Fatalf("Publish while disconnected still blocked after %s", waitFor+30*time.Second)
	}
}

// testOnConnectAfterConnect: a callback registered on a connected Conn runs
// once soon.
func testOnConnectAfterConnect(t *testing.T, h Harness) {
	a := dialAgent(t, h)
	a.waitConnected(t, 1)
	late := make(chan struct{}, 4)
	a.conn.OnConnect(func() { late <- struct{}{} })
	select {
	case <-late:
	case <-time.After(waitFor):
		t.Fatalf("OnConnect registered while connected did not run in %s", waitFor)
	}
	select {
	case <-late:
		t.Errorf("OnConnect registered while connected ran twice, want once")
	case <-time.After(quiet):
	}
	if n := a.connects.Load(); n != 1 {
		t.Errorf("first OnConnect ran %d times, want 1", n)
	}
}

func testClose(t *testing.T, h Harness) {
	hub := h.NewHub(t)
	a := dialAgent(t, h)
	a.waitConnected(t, 1)

	recvDone := make(chan error, 1)
	go func() { recvDone <- hub.Receive(context.Background(), func(relay.Inbound) {}) }()
	id := NewAgentID(t)
	conn, err := h.Dial(t.Context(), id, h.Creds(t, id))
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	subDone := make(chan error, 1)
	go func() { subDone <- conn.Subscribe(context.Background(), func(string, []byte) {}) }()
	time.Sleep(100 * time.Millisecond)

	if err := hub.Close(); err != nil {
		t.Errorf("hub Close() = %v, want nil", err)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("conn Close() = %v, want nil", err)
	}
	for name, c := range map[string]chan error{"Receive": recvDone, "Subscribe": subDone} {
		select {
		case err := <-c:
			if !errors.Is(err, relay.ErrClosed) {
				t.Errorf("%s after Close returned %v, want relay.ErrClosed", name, err)
			}
		case <-time.After(waitFor):
			t.Errorf("%s still running %s after Close", name, waitFor)
		}
	}
	if err := hub.Send(t.Context(), []relay.Outbound{{AgentID: a.id, Kind: relay.KindCommand, Data: []byte("x")}}); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Send after Close = %v, want relay.ErrClosed", err)
	}
	if err := hub.Receive(t.Context(), func(relay.Inbound) {}); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Receive after Close = %v, want relay.ErrClosed", err)
	}
	if err := conn.Publish(t.Context(), relay.KindHeartbeat, []byte("x")); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Publish after Close = %v, want relay.ErrClosed", err)
	}
	if err := conn.Subscribe(t.Context(), func(string, []byte) {}); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want relay.ErrClosed", err)
	}
	if err := hub.Close(); err != nil {
		t.Errorf("second hub Close() = %v, want nil", err)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("second conn Close() = %v, want nil", err)
	}
	a.expectNothing(t)
}

// testReconnect: after the broker restarts, an agent reconnects by itself,
// runs its OnConnect callbacks again (also one registered after the first
// connect), and works both ways.
func testReconnect(t *testing.T, h Harness) {
	a := dialAgent(t, h)
	a.waitConnected(t, 1)
	var late atomic.Int32
	lateRan := make(chan struct{}, 8)
	a.conn.OnConnect(func() {
		late.Add(1)
		lateRan <- struct{}{}
	})
	select {
	case <-lateRan:
	case <-time.After(waitFor):
		t.Fatalf("OnConnect registered while connected did not run in %s", waitFor)
	}

	h.Restart(t)
	a.waitConnected(t, 2)
	select {
	case <-lateRan:
	case <-time.After(waitFor):
		t.Fatalf("OnConnect registered after the first connect did not run after the restart")
	}
	// A cluster restarted node by node can move an agent more than once,
	// and each connect runs the callbacks again: at least 2, never fewer
	// than the connects since it was registered.
	if got, connects := late.Load(), a.connects.Load(); got < 2 || got < connects-1 {
		t.Errorf("late OnConnect ran %d times after %d connects, want at least 2 and one per connect after the first", got, connects)
	}

	hub := newHub(t, h)
	r := receive(t, h, hub)
	// The agent shows it is back the way the platform's agents do, by
	// publishing (a hello): a cluster restarted node by node may still be
	// moving it when Restart returns. Publish fails at once while it is
	// disconnected.
	deadline := time.Now().Add(waitFor)
	for {
		err := a.conn.Publish(t.Context(), relay.KindResult, []byte("result after restart"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Publish after restart = %v for %s, want no error", err, waitFor)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := r.next(t)
	if got.AgentID != a.id || got.Kind != relay.KindResult || string(got.Data) != "result after restart" {
		t.Errorf("hub received (%s, %s, %q), want (%s, %s, %q)",
			got.AgentID, got.Kind, got.Data, a.id, relay.KindResult, "result after restart")
	}
	if h.Settle != nil {
		h.Settle(t)
	}
	send(t, hub, relay.Outbound{AgentID: a.id, Kind: relay.KindCommand, Data: []byte("after restart")})
	a.expect(t, inMsg{relay.KindCommand, "after restart"})
}

// testHeartbeats: many agents heartbeat at once; the hub gets every
// heartbeat once, attributed to its publisher, each agent's in order.
func testHeartbeats(t *testing.T, h Harness) {
	const agents, beats = 20, 5
	hub := newHub(t, h)
	r := receive(t, h, hub)
	as := make([]*agent, agents)
	for i := range as {
		as[i] = dialAgent(t, h)
	}
	for _, a := range as {
		a.waitConnected(t, 1)
	}
	var wg sync.WaitGroup
	errs := make(chan error, agents*beats)
	for _, a := range as {
		wg.Go(func() {
			for i := range beats {
				if err := a.conn.Publish(t.Context(), relay.KindHeartbeat, fmt.Appendf(nil, "beat %d of %s", i, a.id)); err != nil {
					errs <- fmt.Errorf("agent %s: Publish(heartbeat %d) = %w", a.id, i, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	next := map[string]int{}
	for range agents * beats {
		m := r.next(t)
		if m.Kind != relay.KindHeartbeat {
			t.Errorf("hub received (%s, %s, %q), want a heartbeat", m.AgentID, m.Kind, m.Data)
			continue
		}
		want := fmt.Sprintf("beat %d of %s", next[m.AgentID], m.AgentID)
		if string(m.Data) != want {
			t.Errorf("hub received heartbeat %q from %s, want %q", m.Data, m.AgentID, want)
		}
		next[m.AgentID]++
	}
	for _, a := range as {
		if next[a.id] != beats {
			t.Errorf("hub received %d heartbeats from %s, want %d", next[a.id], a.id, beats)
		}
	}
	r.expectNothing(t)
}

// testRedeliveryToServer: a server whose handler has not returned when it
// dies does not lose the message: another server gets it.
func testRedeliveryToServer(t *testing.T, h Harness) {
	a := dialAgent(t, h)
	a.waitConnected(t, 1)
	first := h.NewHub(t)
	defer first.Close()
	got := make(chan relay.Inbound, 1)
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	defer func() {
		cancel()
		<-done
	}()
	defer releaseOnce()
	go func() {
		done <- first.Receive(ctx, func(m relay.Inbound) {
			if m.Kind != relay.KindResult {
				return
			}
			select {
			case got <- m:
			default:
			}
			<-release
		})
	}()
	// The result waits in the relay until the first hub consumes it.
	if err := a.conn.Publish(t.Context(), relay.KindResult, []byte("result of a dying server")); err != nil {
		t.Fatalf("Publish = %v, want no error", err)
	}
	select {
	case m := <-got:
		if m.AgentID != a.id || string(m.Data) != "result of a dying server" {
			t.Fatalf("first hub received (%s, %q), want (%s, %q)", m.AgentID, m.Data, a.id, "result of a dying server")
		}
	case <-time.After(waitFor):
		t.Fatalf("first hub received nothing in %s", waitFor)
	}
	// The first server dies while its handler still holds the message.
	if err := first.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	releaseOnce()
	r := receive(t, h, newHub(t, h))
	m := r.next(t)
	if m.AgentID != a.id || m.Kind != relay.KindResult || string(m.Data) != "result of a dying server" {
		t.Errorf("second hub received (%s, %s, %q), want (%s, %s, %q)",
			m.AgentID, m.Kind, m.Data, a.id, relay.KindResult, "result of a dying server")
	}
	r.expectNothing(t)
}

// testDeferredRelease: a message whose handler deferred its release is
// delivered again to another server if the first dies before releasing it,
// and never again once released.
func testDeferredRelease(t *testing.T, h Harness) {
	a := dialAgent(t, h)
	a.waitConnected(t, 1)
	first := h.NewHub(t)
	defer first.Close()
	releases := make(chan func(), 2)
	got := make(chan string, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	defer func() {
		cancel()
		<-done
	}()
	go func() {
		done <- first.Receive(ctx, func(m relay.Inbound) {
			if m.Kind != relay.KindResult {
				return
			}
			if m.Defer == nil {
				t.Errorf("a durable relay's Inbound has no Defer")
				return
			}
			releases <- m.Defer()
			got <- string(m.Data)
		})
	}()
	for _, data := range []string{"released", "held by a dying server"} {
		if err := a.conn.Publish(t.Context(), relay.KindResult, []byte(data)); err != nil {
			t.Fatalf("Publish = %v, want no error", err)
		}
		select {
		case d := <-got:
			if d != data {
				t.Fatalf("first hub received %q, want %q", d, data)
			}
		case <-time.After(waitFor):
			t.Fatalf("first hub received nothing in %s", waitFor)
		}
	}
	release := <-releases
	release()
	release()  // a second call does nothing
	<-releases // never called: the server dies holding it
	cancel()
	<-done
	done <- nil
	if err := first.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	r := receive(t, h, newHub(t, h))
	m := r.next(t)
	if m.AgentID != a.id || m.Kind != relay.KindResult || string(m.Data) != "held by a dying server" {
		t.Errorf("second hub received (%s, %s, %q), want (%s, %s, %q)",
			m.AgentID, m.Kind, m.Data, a.id, relay.KindResult, "held by a dying server")
	}
	r.expectNothing(t)
}

// testRedeliveryToAgent: an agent whose handler has not returned when its
// connection dies gets the command again on its next connection.
func testRedeliveryToAgent(t *testing.T, h Harness) {
	hub := newHub(t, h)
	id := NewAgentID(t)
	creds := h.Creds(t, id)
	conn, err := h.Dial(t.Context(), id, creds)
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	defer conn.Close()
	got := make(chan string, 1)
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- conn.Subscribe(ctx, func(_ string, data []byte) {
			select {
			case got <- string(data):
			default:
			}
			<-release
		})
	}()
	send(t, hub, relay.Outbound{AgentID: id, Kind: relay.KindCommand, Data: []byte("command of a dying agent")})
	select {
	case d := <-got:
		if d != "command of a dying agent" {
			t.Fatalf("agent got %q, want %q", d, "command of a dying agent")
		}
	case <-time.After(waitFor):
		t.Fatalf("agent got nothing in %s", waitFor)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	releaseOnce()
	cancel()
	if err := <-done; !errors.Is(err, relay.ErrClosed) && !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe after Close returned %v, want relay.ErrClosed", err)
	}
	a := dialAs(t, h, id, creds)
	a.expect(t, inMsg{relay.KindCommand, "command of a dying agent"})
	a.expectNothing(t)
}

// testOfflineAgent: commands sent while an agent is offline reach it when
// it reconnects if they are still valid, and never after they expire.
func testOfflineAgent(t *testing.T, h Harness) {
	hub := newHub(t, h)
	a := dialAgent(t, h)
	a.waitConnected(t, 1)
	send(t, hub, relay.Outbound{AgentID: a.id, Kind: relay.KindCommand, Data: []byte("while online")})
	a.expect(t, inMsg{relay.KindCommand, "while online"})
	if err := a.conn.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	const ttl = time.Second
	sent := time.Now()
	send(t, hub,
		relay.Outbound{AgentID: a.id, Kind: relay.KindCommand, Data: []byte("expires soon"), Expires: sent.Add(ttl)},
		relay.Outbound{AgentID: a.id, Kind: relay.KindCommand, Data: []byte("valid for an hour"), Expires: sent.Add(time.Hour)},
		relay.Outbound{AgentID: a.id, Kind: relay.KindCommand, Data: []byte("expires later still"), Expires: sent.Add(ttl)},
		relay.Outbound{AgentID: a.id, Kind: relay.KindCommand, Data: []byte("no expiry")},
	)
	time.Sleep(time.Until(sent.Add(ttl + quiet)))
	back := dialAs(t, h, a.id, a.creds)
	back.expect(t, inMsg{relay.KindCommand, "valid for an hour"})
	back.expect(t, inMsg{relay.KindCommand, "no expiry"})
	back.expectNothing(t)
}

// testResultsWaitForServer: results published while no server receives
// wait for one.
func testResultsWaitForServer(t *testing.T, h Harness) {
	hub := newHub(t, h)
	a := dialAgent(t, h)
	a.waitConnected(t, 1)
	const n = 10
	for i := range n {
		if err := a.conn.Publish(t.Context(), relay.KindResult, fmt.Appendf(nil, "waiting result %d", i)); err != nil {
			t.Fatalf("Publish(result %d) = %v", i, err)
		}
	}
	r := receive(t, h, hub)
	for i := range n {
		m := r.next(t)
		want := fmt.Sprintf("waiting result %d", i)
		if m.AgentID != a.id || m.Kind != relay.KindResult || string(m.Data) != want {
			t.Errorf("hub received (%s, %s, %q), want (%s, %s, %q)", m.AgentID, m.Kind, m.Data, a.id, relay.KindResult, want)
		}
	}
	r.expectNothing(t)
}

// testSurviveRestart: a command for an offline agent and a result no server
// has taken yet are both still there after the broker restarts.
func testSurviveRestart(t *testing.T, h Harness) {
	hub := newHub(t, h)
	a := dialAgent(t, h)
	off := dialAgent(t, h)
	a.waitConnected(t, 1)
	off.waitConnected(t, 1)
	if err := off.conn.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	send(t, hub, relay.Outbound{AgentID: off.id, Kind: relay.KindCommand, Data: []byte("kept across the restart"),
		Expires: time.Now().Add(time.Hour)})
	if err := a.conn.Publish(t.Context(), relay.KindResult, []byte("result kept across the restart")); err != nil {
		t.Fatalf("Publish = %v", err)
	}
	h.Restart(t)
	r := receive(t, h, newHub(t, h))
	m := r.next(t)
	if m.AgentID != a.id || m.Kind != relay.KindResult || string(m.Data) != "result kept across the restart" {
		t.Errorf("hub received (%s, %s, %q) after the restart, want (%s, %s, %q)",
			m.AgentID, m.Kind, m.Data, a.id, relay.KindResult, "result kept across the restart")
	}
	back := dialAs(t, h, off.id, off.creds)
	back.expect(t, inMsg{relay.KindCommand, "kept across the restart"})
	back.expectNothing(t)
}
