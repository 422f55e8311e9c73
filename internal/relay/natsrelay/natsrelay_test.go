package natsrelay

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

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

// testRelay is an embedded relay with an in-memory table of agent
// passwords, which survives restarts.
type testRelay struct {
	tlsConf *tls.Config
	caPEM   string

	mu        sync.Mutex
	srv       *Server
	listen    string
	passwords map[string][]byte // agent ID -> relay.HashPassword
}

func startTestRelay(t testing.TB, tlsConf *tls.Config, caPEM string) *testRelay {
	t.Helper()
	r := &testRelay{tlsConf: tlsConf, caPEM: caPEM, listen: "127.0.0.1:0", passwords: map[string][]byte{}}
	r.start(t)
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.srv.Shutdown()
	})
	return r
}

// start starts the server at r.listen and remembers its actual address.
// r.mu must not be held.
func (r *testRelay) start(t testing.TB) {
	t.Helper()
	srv, err := StartServer(ServerConfig{
		Listen:       r.listen,
		TLS:          r.tlsConf,
		Authenticate: r.authenticate,
		Logger:       testLogger(),
	})
	if err != nil {
		t.Fatalf("StartServer(%s) = %v", r.listen, err)
	}
	r.mu.Lock()
	r.srv = srv
	r.listen = srv.ns.Addr().String()
	r.mu.Unlock()
}

func (r *testRelay) server() *Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.srv
}

func (r *testRelay) authenticate(id, password string) bool {
	r.mu.Lock()
	hash, ok := r.passwords[id]
	r.mu.Unlock()
	return ok && relay.CheckPassword(hash, password)
}

func (r *testRelay) creds(t testing.TB, id string) relay.Credentials {
	t.Helper()
	p, err := relay.NewPassword()
	if err != nil {
		t.Fatalf("NewPassword() = %v", err)
	}
	r.mu.Lock()
	r.passwords[id] = relay.HashPassword(p)
	url := r.srv.ClientURL()
	r.mu.Unlock()
	return relay.Credentials{URL: url, User: id, Password: p, CA: r.caPEM}
}

func (r *testRelay) restart(t *testing.T) {
	t.Helper()
	r.server().Shutdown()
	r.start(t)
}

func (r *testRelay) inProcessHub(t *testing.T) relay.Hub {
	t.Helper()
	h, err := r.server().NewHub(t.Context())
	if err != nil {
		t.Fatalf("NewHub() = %v", err)
	}
	return h
}

func (r *testRelay) networkHub(t *testing.T) relay.Hub {
	t.Helper()
	srv := r.server()
	var tlsConf *tls.Config
	if r.caPEM != "" {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(r.caPEM))
		tlsConf = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	h, err := NewHub(t.Context(), srv.ClientURL(), hubUser, srv.hubPass, tlsConf, testLogger())
	if err != nil {
		t.Fatalf("NewHub(%s) = %v", srv.ClientURL(), err)
	}
	return h
}

func (r *testRelay) harness(newHub func(*testing.T) relay.Hub) relaytest.Harness {
	return relaytest.Harness{
		NewHub:  newHub,
		Dial:    NewDialer(testLogger()),
		Creds:   func(t *testing.T, id string) relay.Credentials { return r.creds(t, id) },
		Restart: r.restart,
	}
}

func TestConformance(t *testing.T) {
	t.Run("InProcessHub", func(t *testing.T) {
		r := startTestRelay(t, nil, "")
		relaytest.Run(t, r.harness(r.inProcessHub))
	})
	t.Run("NetworkHub", func(t *testing.T) {
		r := startTestRelay(t, nil, "")
		relaytest.Run(t, r.harness(r.networkHub))
	})
}

func TestConformanceTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("the TLS run repeats the suite")
	}
	serverConf, caPEM := testTLS(t)
	r := startTestRelay(t, serverConf, caPEM)
	if !strings.HasPrefix(r.server().ClientURL(), "tls://") {
		t.Errorf("ClientURL() = %q, want a tls:// URL", r.server().ClientURL())
	}
	t.Run("InProcessHub", func(t *testing.T) { relaytest.Run(t, r.harness(r.inProcessHub)) })
	t.Run("NetworkHub", func(t *testing.T) { relaytest.Run(t, r.harness(r.networkHub)) })
}

// testTLS makes a self-signed certificate for 127.0.0.1 and returns a server
// TLS configuration with it and its PEM.
func testTLS(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating a key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mig relay test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("creating a certificate: %v", err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, caPEM
}

func TestTLSWrongCA(t *testing.T) {
	serverConf, _ := testTLS(t)
	_, otherCA := testTLS(t)
	r := startTestRelay(t, serverConf, otherCA)
	id := relaytest.NewAgentID(t)
	conn, err := Dial(t.Context(), id, r.creds(t, id))
	if err != nil {
		t.Fatalf("Dial = %v, want no error (the connection retries)", err)
	}
	defer conn.Close()
	connected := make(chan struct{}, 1)
	conn.OnConnect(func() { connected <- struct{}{} })
	select {
	case <-connected:
		t.Fatalf("agent connected to a relay whose certificate its CA did not sign")
	case <-time.After(time.Second):
	}
	if err := conn.Publish(t.Context(), relay.KindHeartbeat, []byte("x")); !errors.Is(err, ErrDisconnected) {
		t.Errorf("Publish = %v, want ErrDisconnected", err)
	}
}

func TestNewHubAfterShutdown(t *testing.T) {
	srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:0", Authenticate: func(string, string) bool { return false }})
	if err != nil {
		t.Fatalf("StartServer = %v", err)
	}
	srv.Shutdown()
	if h, err := srv.NewHub(t.Context()); !errors.Is(err, relay.ErrClosed) {
		if h != nil {
			h.Close()
		}
		t.Errorf("NewHub after Shutdown = %v, want relay.ErrClosed", err)
	}
}

// TestConnectRefused checks at the NATS level that the embedded server
// refuses wrong passwords and malformed agent IDs, even with an Authenticate
// that would accept them.
func TestConnectRefused(t *testing.T) {
	var calls sync.Map // user -> true
	srv, err := StartServer(ServerConfig{
		Listen: "127.0.0.1:0",
		Authenticate: func(id, password string) bool {
			calls.Store(id, true)
			return password == "right"
		},
		Logger: testLogger(),
	})
	if err != nil {
		t.Fatalf("StartServer = %v", err)
	}
	defer srv.Shutdown()
	good := relaytest.NewAgentID(t)

	tests := []struct {
		name, user, password string
		want                 bool
	}{
		{"agent, right password", good, "right", true},
		{"hub, right password", hubUser, srv.hubPass, true},
		{"agent, wrong password", good, "wrong", false},
		{"agent, no password", good, "", false},
		{"hub, wrong password", hubUser, "right", false},
		{"hub, no password", hubUser, "", false},
		{"no user", "", "right", false},
		{"upper-case id", strings.ToUpper(good), "right", false},
		{"short id", good[:31], "right", false},
		{"long id", good + "0", "right", false},
		{"wildcard", "*", "right", false},
		{"full wildcard", ">", "right", false},
		{"id with wildcard", good[:31] + "*", "right", false},
		{"id with dot", good[:15] + "." + good[16:], "right", false},
		{"id with space", good[:15] + " " + good[16:], "right", false},
		{"subject", "mig.agent.>", "right", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(tt.user, tt.password),
				nats.NoReconnect(), nats.Timeout(5*time.Second))
			if got := err == nil; got != tt.want {
				t.Fatalf("connect as %q: err = %v, want accepted = %v", tt.user, err, tt.want)
			}
			if err != nil && !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("connect as %q: err = %v, want nats.ErrAuthorization", tt.user, err)
			}
			if nc != nil {
				nc.Close()
			}
			if relay.CheckAgentID(tt.user) != nil {
				if _, ok := calls.Load(tt.user); ok {
					t.Errorf("Authenticate was called with malformed agent id %q", tt.user)
				}
			}
		})
	}

	for _, id := range []string{"", "*", ">", strings.ToUpper(good), good[:15] + "." + good[16:], "mig-hub"} {
		c, err := Dial(t.Context(), id, relay.Credentials{URL: srv.ClientURL(), Password: "right"})
		if err == nil {
			c.Close()
			t.Errorf("Dial(%q) = nil error, want one", id)
		} else if !errors.Is(err, relay.ErrAgentID) {
			t.Errorf("Dial(%q) = %v, want relay.ErrAgentID", id, err)
		}
	}
	other := relaytest.NewAgentID(t)
	if c, err := Dial(t.Context(), good, relay.Credentials{URL: srv.ClientURL(), User: other, Password: "right"}); !errors.Is(err, ErrCredentials) {
		if c != nil {
			c.Close()
		}
		t.Errorf("Dial(%s) with user %s = %v, want ErrCredentials", good, other, err)
	}
	if _, err := NewHub(t.Context(), srv.ClientURL(), hubUser, "wrong", nil, nil); err == nil {
		t.Errorf("NewHub with a wrong password = nil error, want one")
	}
}

// TestAgentCannotActAsAnother uses a raw NATS connection with agent A's
// credentials to try to read agent B's inbox, publish as B, write into B's
// inbox and snoop on other subjects. The server must report each as a
// permission violation and deliver nothing.
func TestAgentCannotActAsAnother(t *testing.T) {
	r := startTestRelay(t, nil, "")
	srv := r.server()
	hub, err := srv.NewHub(t.Context())
	if err != nil {
		t.Fatalf("NewHub = %v", err)
	}
	defer hub.Close()

	var received sync.Map // agent ID -> []relay.Inbound, guarded by recvMu
	var recvMu sync.Mutex
	var heartbeats atomic.Int32
	ctx, cancel := context.WithCancel(t.Context())
	recvDone := make(chan error, 1)
	go func() {
		recvDone <- hub.Receive(ctx, func(m relay.Inbound) {
			recvMu.Lock()
			defer recvMu.Unlock()
			v, _ := received.LoadOrStore(m.AgentID, &[]relay.Inbound{})
			p := v.(*[]relay.Inbound)
			*p = append(*p, m)
			heartbeats.Add(1)
		})
	}()
	defer func() {
		cancel()
		<-recvDone
	}()

	a := relaytest.NewAgentID(t)
	b := relaytest.NewAgentID(t)
	ca := r.creds(t, a)
	cb := r.creds(t, b)

	// B is a real agent.
	bconn, err := Dial(t.Context(), b, cb)
	if err != nil {
		t.Fatalf("Dial(b) = %v", err)
	}
	defer bconn.Close()
	bInbox := make(chan string, 16)
	bctx, bcancel := context.WithCancel(t.Context())
	bdone := make(chan error, 1)
	go func() {
		bdone <- bconn.Subscribe(bctx, func(kind string, data []byte) { bInbox <- kind + " " + string(data) })
	}()
	defer func() {
		bcancel()
		<-bdone
	}()

	// A is a raw NATS client.
	var violations atomic.Int32
	nc, err := nats.Connect(ca.URL, nats.UserInfo(a, ca.Password), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				violations.Add(1)
			}
		}))
	if err != nil {
		t.Fatalf("connecting as agent a: %v", err)
	}
	defer nc.Close()

	stolen := make(chan string, 64)
	forbiddenSubs := []string{
		"mig.agent." + b + ".command",
		"mig.agent." + b + ".>",
		"mig.agent.*.command",
		"mig.agent.>",
		"mig.server.>",
		"mig.server.result." + b,
		"_INBOX.>",
		">",
	}
	for _, s := range forbiddenSubs {
		if _, err := nc.Subscribe(s, func(m *nats.Msg) { stolen <- m.Subject }); err != nil {
			t.Fatalf("Subscribe(%s) = %v (violations are reported asynchronously)", s, err)
		}
	}
	forbiddenPubs := []string{
		"mig.server.result." + b,
		"mig.server.heartbeat." + b,
		"mig.agent." + b + ".command",
		"mig.agent." + a + ".command",
		"mig.server.result.x",
		"mig.server.other." + a,
	}
	for _, s := range forbiddenPubs {
		if err := nc.Publish(s, []byte("forged")); err != nil {
			t.Fatalf("Publish(%s) = %v", s, err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("Flush = %v", err)
	}

	// Make sure the hub receives and B listens, then send B a command.
	deadline := time.Now().Add(20 * time.Second)
	for heartbeats.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("hub received no heartbeat from b")
		}
		if err := bconn.Publish(t.Context(), relay.KindHeartbeat, []byte("b alive")); err != nil {
			t.Logf("b heartbeat: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := hub.Send(t.Context(), []relay.Outbound{{AgentID: b, Kind: relay.KindCommand, Data: []byte("for b only")}}); err != nil {
		t.Fatalf("Send = %v", err)
	}
	select {
	case got := <-bInbox:
		if got != "command for b only" {
			t.Errorf("b got %q, want %q", got, "command for b only")
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("b did not get its command")
	}
	// A's own publishing works, and is attributed to A.
	if err := nc.Publish("mig.server.result."+a, []byte("a's own")); err != nil {
		t.Fatalf("Publish as a = %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	time.Sleep(500 * time.Millisecond)

	select {
	case s := <-stolen:
		t.Errorf("agent a received a message on %s", s)
	default:
	}
	select {
	case got := <-bInbox:
		t.Errorf("b got %q, want only the hub's command", got)
	default:
	}
	recvMu.Lock()
	defer recvMu.Unlock()
	if v, ok := received.Load(b); ok {
		for _, m := range *v.(*[]relay.Inbound) {
			if string(m.Data) != "b alive" {
				t.Errorf("hub received (%s, %s, %q) as b, want only b's heartbeats", m.AgentID, m.Kind, m.Data)
			}
		}
	}
	got := 0
	if v, ok := received.Load(a); ok {
		for _, m := range *v.(*[]relay.Inbound) {
			if m.Kind != relay.KindResult || string(m.Data) != "a's own" {
				t.Errorf("hub received (%s, %s, %q) as a, want only (result, \"a's own\")", m.AgentID, m.Kind, m.Data)
			}
			got++
		}
	}
	if got != 1 {
		t.Errorf("hub received %d messages as a, want 1", got)
	}
	want := int32(len(forbiddenSubs) + len(forbiddenPubs))
	if n := violations.Load(); n != want {
		t.Errorf("%d permission violations reported, want %d", n, want)
	}
}

// TestDialBeforeRelay: Dial succeeds while the relay is down, and the agent
// connects, runs OnConnect and gets its commands once the relay starts.
func TestDialBeforeRelay(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	l.Close()

	id := relaytest.NewAgentID(t)
	password, err := relay.NewPassword()
	if err != nil {
		t.Fatalf("NewPassword = %v", err)
	}
	conn, err := Dial(t.Context(), id, relay.Credentials{URL: "nats://" + addr, User: id, Password: password})
	if err != nil {
		t.Fatalf("Dial with the relay down = %v, want no error", err)
	}
	defer conn.Close()
	connected := make(chan struct{}, 4)
	conn.OnConnect(func() { connected <- struct{}{} })
	if err := conn.Publish(t.Context(), relay.KindHeartbeat, []byte("x")); !errors.Is(err, ErrDisconnected) {
		t.Errorf("Publish with the relay down = %v, want ErrDisconnected", err)
	}
	inbox := make(chan string, 4)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- conn.Subscribe(ctx, func(kind string, data []byte) { inbox <- string(data) }) }()
	defer func() {
		cancel()
		<-done
	}()

	hash := relay.HashPassword(password)
	srv, err := StartServer(ServerConfig{
		Listen:       addr,
		Authenticate: func(a, p string) bool { return a == id && relay.CheckPassword(hash, p) },
		Logger:       testLogger(),
	})
	if err != nil {
		t.Fatalf("StartServer(%s) = %v", addr, err)
	}
	defer srv.Shutdown()
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		t.Fatalf("agent did not connect after the relay started")
	}
	hub, err := srv.NewHub(t.Context())
	if err != nil {
		t.Fatalf("NewHub = %v", err)
	}
	defer hub.Close()
	if err := hub.Send(t.Context(), []relay.Outbound{{AgentID: id, Kind: relay.KindCommand, Data: []byte("late")}}); err != nil {
		t.Fatalf("Send = %v", err)
	}
	select {
	case got := <-inbox:
		if got != "late" {
			t.Errorf("agent got %q, want %q", got, "late")
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("agent got no command")
	}
}

func TestStartServerConfig(t *testing.T) {
	ok := func(string, string) bool { return true }
	tests := []struct {
		name string
		cfg  ServerConfig
	}{
		{"no Authenticate", ServerConfig{Listen: "127.0.0.1:0"}},
		{"no port", ServerConfig{Listen: "127.0.0.1", Authenticate: ok}},
		{"bad port", ServerConfig{Listen: "127.0.0.1:http", Authenticate: ok}},
		{"port out of range", ServerConfig{Listen: "127.0.0.1:70000", Authenticate: ok}},
		{"small MaxPayload", ServerConfig{Listen: "127.0.0.1:0", Authenticate: ok, MaxPayload: 1 << 20}},
		{"negative MaxConnections", ServerConfig{Listen: "127.0.0.1:0", Authenticate: ok, MaxConnections: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := StartServer(tt.cfg)
			if err == nil {
				srv.Shutdown()
				t.Fatalf("StartServer(%+v) = nil error, want ErrConfig", tt.cfg)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("StartServer(%+v) = %v, want ErrConfig", tt.cfg, err)
			}
		})
	}
}

func TestMaxConnections(t *testing.T) {
	srv, err := StartServer(ServerConfig{
		Listen:         "127.0.0.1:0",
		Authenticate:   func(string, string) bool { return true },
		MaxConnections: 2,
	})
	if err != nil {
		t.Fatalf("StartServer = %v", err)
	}
	defer srv.Shutdown()
	var conns []*nats.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 3 {
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(relaytest.NewAgentID(t), "x"), nats.NoReconnect())
		if got, want := err == nil, i < 2; got != want {
			t.Fatalf("connection %d: err = %v, want accepted = %v", i+1, err, want)
		}
		if nc != nil {
			conns = append(conns, nc)
		}
	}
}

func TestSubjects(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	tests := []struct {
		subject  string
		id, kind string
		wantErr  error
	}{
		{"mig.server.result." + id, id, relay.KindResult, nil},
		{"mig.server.heartbeat." + id, id, relay.KindHeartbeat, nil},
		{"mig.server.command." + id, "", "", ErrKind},
		{"mig.server.result." + id + ".x", "", "", relay.ErrAgentID},
		{"mig.server.result.*", "", "", relay.ErrAgentID},
		{"mig.server.result", "", "", ErrSubject},
		{"mig.agent." + id + ".command", "", "", ErrSubject},
		{"", "", "", ErrSubject},
	}
	for _, tt := range tests {
		id, kind, err := parseServerSubject(tt.subject)
		if !errors.Is(err, tt.wantErr) || id != tt.id || kind != tt.kind {
			t.Errorf("parseServerSubject(%q) = %q, %q, %v; want %q, %q, %v", tt.subject, id, kind, err, tt.id, tt.kind, tt.wantErr)
		}
	}
	for _, kind := range []string{relay.KindCommand, relay.KindAck} {
		s, err := inboxSubject(id, kind)
		if err != nil {
			t.Fatalf("inboxSubject(%s, %s) = %v", id, kind, err)
		}
		if got, err := parseInboxSubject(id, s); err != nil || got != kind {
			t.Errorf("parseInboxSubject(%s, %s) = %q, %v; want %q", id, s, got, err, kind)
		}
	}
	if _, err := parseInboxSubject(id, "mig.agent."+id+".result"); !errors.Is(err, ErrKind) {
		t.Errorf("parseInboxSubject(result) = %v, want ErrKind", err)
	}
}

// BenchmarkHubSend10000 measures one Hub.Send of a command to each of 10,000
// agents, through the embedded server to one subscriber on all inboxes; one
// op is one batch of 10,000.
func BenchmarkHubSend10000(b *testing.B) {
	const agents = 10000
	r := startTestRelay(b, nil, "")
	srv := r.server()
	hub, err := srv.NewHub(b.Context())
	if err != nil {
		b.Fatalf("NewHub = %v", err)
	}
	defer hub.Close()
	sink, err := nats.Connect(srv.ClientURL(), nats.UserInfo(hubUser, srv.hubPass))
	if err != nil {
		b.Fatalf("connecting the sink: %v", err)
	}
	defer sink.Close()
	var got atomic.Int64
	sub, err := sink.Subscribe("mig.agent.*.command", func(*nats.Msg) { got.Add(1) })
	if err != nil {
		b.Fatalf("Subscribe = %v", err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		b.Fatalf("SetPendingLimits = %v", err)
	}
	if err := sink.Flush(); err != nil {
		b.Fatalf("Flush = %v", err)
	}
	data := make([]byte, 2048) // a typical signed command
	for i := range data {
		data[i] = 'c'
	}
	msgs := make([]relay.Outbound, agents)
	for i := range msgs {
		msgs[i] = relay.Outbound{AgentID: fmt.Sprintf("%032x", i), Kind: relay.KindCommand, Data: data}
	}
	n := 0
	for b.Loop() {
		if err := hub.Send(b.Context(), msgs); err != nil {
			b.Fatalf("Send = %v", err)
		}
		n++
	}
	b.StopTimer()
	deadline := time.Now().Add(time.Minute)
	for got.Load() < int64(n*agents) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := got.Load(); g != int64(n*agents) {
		b.Errorf("sink got %d messages, want %d", g, n*agents)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/1e6, "ms/10000cmds")
}
