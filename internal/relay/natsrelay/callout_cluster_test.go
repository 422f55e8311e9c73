package natsrelay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/relaytest"
)

// calloutCluster is a three-node cluster of plain nats-servers, configured
// from files the way an operator would (CalloutNATSConfig plus a cluster
// block), that send agents' logins to a Callout on node 0. The hub is on
// node 0 too and agents on nodes 1 and 2, so every login request and every
// message crosses a route. Agent passwords live in an in-memory table the
// Callout checks, which survives restarts.
type calloutCluster struct {
	dir       string
	hubPass   string
	routePass string
	issuer    nkeys.KeyPair
	xkey      nkeys.KeyPair
	ttl       time.Duration

	mu        sync.Mutex
	nodes     [clusterSize]*server.Server
	listen    [clusterSize]string // client host:port, fixed after the first start
	route     [clusterSize]string // route host:port, fixed after the first start
	passwords map[string][]byte
	callout   *Callout
}

// startCalloutCluster starts the cluster and a Callout (with an xkey when
// encrypt is set) answering for it.
func startCalloutCluster(t testing.TB, encrypt bool, ttl time.Duration) *calloutCluster {
	t.Helper()
	issuerSeed, xkeySeed, err := NewCalloutKeys()
	if err != nil {
		t.Fatalf("NewCalloutKeys() = %v", err)
	}
	c := &calloutCluster{dir: t.TempDir(), ttl: ttl, passwords: map[string][]byte{}}
	if c.issuer, err = ParseCalloutIssuer(issuerSeed); err != nil {
		t.Fatalf("ParseCalloutIssuer = %v", err)
	}
	if encrypt {
		if c.xkey, err = ParseCalloutXKey(xkeySeed); err != nil {
			t.Fatalf("ParseCalloutXKey = %v", err)
		}
	}
	if c.hubPass, err = relay.NewPassword(); err != nil {
		t.Fatal(err)
	}
	if c.routePass, err = relay.NewPassword(); err != nil {
		t.Fatal(err)
	}
	for i := range clusterSize {
		c.listen[i] = "127.0.0.1:-1"
		c.route[i] = "127.0.0.1:-1"
	}
	t.Cleanup(c.shutdown)
	c.start(t)
	cfg := CalloutConfig{Issuer: c.issuer, XKey: c.xkey, Authenticate: c.authenticate, TTL: ttl, Logger: testLogger()}
	co, err := StartCallout(t.Context(), c.urls(0), HubUser, c.hubPass, nil, cfg)
	if err != nil {
		t.Fatalf("StartCallout = %v", err)
	}
	c.callout = co
	c.settle(t)
	return c
}

// natsConfig returns node i's configuration file.
func (c *calloutCluster) natsConfig(t testing.TB, i int) string {
	t.Helper()
	var xkeyPub string
	if c.xkey != nil {
		xkeyPub, _ = c.xkey.PublicKey()
	}
	issuerPub, _ := c.issuer.PublicKey()
	auth, err := CalloutNATSConfig(CalloutNATSOptions{Issuer: issuerPub, XKey: xkeyPub, HubPassword: c.hubPass})
	if err != nil {
		t.Fatalf("CalloutNATSConfig = %v", err)
	}
	var routes []string
	for j := range clusterSize {
		if j != i && !strings.HasSuffix(c.route[j], ":-1") {
			routes = append(routes, fmt.Sprintf("%q", "nats-route://mig-route:"+c.routePass+"@"+c.route[j]))
		}
	}
	return fmt.Sprintf(`server_name: mig-callout-%d
listen: %q
%s
cluster {
  name: mig-callout-test
  listen: %q
  authorization { user: mig-route, password: %q }
  routes: [ %s ]
}
`, i, c.listen[i], auth, c.route[i], c.routePass, strings.Join(routes, ", "))
}

// start starts every node from its configuration file, node 0 first, the
// others routing to the nodes already started, and waits for a full mesh.
func (c *calloutCluster) start(t testing.TB) {
	t.Helper()
	for i := range clusterSize {
		path := filepath.Join(c.dir, fmt.Sprintf("node%d.conf", i))
		if err := os.WriteFile(path, []byte(c.natsConfig(t, i)), 0o600); err != nil {
			t.Fatal(err)
		}
		opts, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("node %d: nats-server configuration: %v\n%s", i, err, c.natsConfig(t, i))
		}
		opts.NoSigs = true
		// Nodes stop in lame duck mode (see stopNodes).
		opts.LameDuckDuration = time.Second
		opts.LameDuckGracePeriod = 300 * time.Millisecond
		ns, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		ns.SetLoggerV2(&logAdapter{log: testLogger().With("node", i)}, false, false, false)
		ns.Start()
		if !ns.ReadyForConnections(startTimeout) {
			t.Fatalf("node %d did not start", i)
		}
		c.mu.Lock()
		c.nodes[i] = ns
		c.listen[i] = ns.Addr().String()
		c.route[i] = ns.ClusterAddr().String()
		c.mu.Unlock()
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := range clusterSize {
		for c.node(i).NumRoutes() < clusterSize-1 {
			if time.Now().After(deadline) {
				t.Fatalf("node %d has %d routes after 30s, want %d", i, c.node(i).NumRoutes(), clusterSize-1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (c *calloutCluster) node(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

func (c *calloutCluster) shutdown() {
	c.mu.Lock()
	co := c.callout
	c.callout = nil
	c.mu.Unlock()
	if co != nil {
		_ = co.Close()
	}
	for i := range clusterSize {
		if n := c.node(i); n != nil {
			n.Shutdown() // every client is gone by now
			n.WaitForShutdown()
		}
	}
}

// stopNodes stops every node in lame duck mode: it stops accepting clients
// before it shuts down. nats-server 2.15 (up to 2.15.2 at least) can crash
// when a client's login starts an auth callout while the server shuts down
// (newRespInbox reads the system account's state shutdownEventing has just
// cleared); agents reconnecting during a restart hit exactly that.
func (c *calloutCluster) stopNodes() {
	for i := range clusterSize {
		if n := c.node(i); n != nil {
			n.LameDuckShutdown()
			n.WaitForShutdown()
		}
	}
}

// restart stops every node and starts them again; the Callout, the hubs
// and the agents reconnect by themselves. It waits until as many clients
// are connected as before and the Callout's subscription is known to every
// node again.
func (c *calloutCluster) restart(t *testing.T) {
	t.Helper()
	before := c.numClients()
	c.stopNodes()
	c.start(t)
	deadline := time.Now().Add(60 * time.Second)
	for c.numClients() < before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	c.settle(t)
}

func (c *calloutCluster) numClients() int {
	n := 0
	for i := range clusterSize {
		n += c.node(i).NumClients()
	}
	return n
}

func (c *calloutCluster) authenticate(id, password string) bool {
	c.mu.Lock()
	hash, ok := c.passwords[id]
	c.mu.Unlock()
	return ok && relay.CheckPassword(hash, password)
}

// revoke forgets agent id's password.
func (c *calloutCluster) revoke(id string) {
	c.mu.Lock()
	delete(c.passwords, id)
	c.mu.Unlock()
}

func (c *calloutCluster) urls(nodes ...int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var us []string
	for _, i := range nodes {
		us = append(us, "nats://"+c.listen[i])
	}
	return strings.Join(us, ",")
}

// creds saves a new password's hash where the Callout looks.
func (c *calloutCluster) creds(t testing.TB, id string) relay.Credentials {
	t.Helper()
	p, err := relay.NewPassword()
	if err != nil {
		t.Fatalf("NewPassword() = %v", err)
	}
	c.mu.Lock()
	c.passwords[id] = relay.HashPassword(p)
	c.mu.Unlock()
	return relay.Credentials{URL: c.urls(1, 2), User: id, Password: p}
}

func (c *calloutCluster) hub(t *testing.T) relay.Hub {
	t.Helper()
	h, err := NewHub(t.Context(), c.urls(0), HubUser, c.hubPass, nil, testLogger())
	if err != nil {
		t.Fatalf("NewHub(%s) = %v", c.urls(0), err)
	}
	return h
}

// settle waits until every node knows of every subscription made by a
// client of another node, the Callout's included.
func (c *calloutCluster) settle(t testing.TB) {
	t.Helper()
	var nodes []*server.Server
	for i := range clusterSize {
		nodes = append(nodes, c.node(i))
	}
	settleNodes(t, nodes, CalloutSubject)
}

// TestCalloutClusterConformance runs the conformance suite on a three-node
// nats-server cluster whose agents log in through the auth callout, with
// requests encrypted (xkey) and in clear text.
func TestCalloutClusterConformance(t *testing.T) {
	for _, encrypt := range []bool{true, false} {
		t.Run(fmt.Sprintf("xkey=%v", encrypt), func(t *testing.T) {
			c := startCalloutCluster(t, encrypt, 0)
			relaytest.Run(t, relaytest.Harness{
				NewHub:  c.hub,
				Dial:    NewDialer(testLogger()),
				Creds:   func(t *testing.T, id string) relay.Credentials { return c.creds(t, id) },
				Restart: c.restart,
				Settle:  func(t *testing.T) { c.settle(t) },
			})
		})
	}
}

// TestCalloutClusterRefuses: a wrong password, an unknown agent, a user
// name that is not an agent ID and a revoked agent cannot log in on any
// node, while a good agent can.
func TestCalloutClusterRefuses(t *testing.T) {
	c := startCalloutCluster(t, true, 0)
	id := relaytest.NewAgentID(t)
	good := c.creds(t, id)
	for node := 1; node < clusterSize; node++ {
		url := c.urls(node)
		nc, err := nats.Connect(url, nats.UserInfo(id, good.Password))
		if err != nil {
			t.Fatalf("node %d: agent with its own password: Connect = %v", node, err)
		}
		nc.Close()
		other := relaytest.NewAgentID(t)
		revoked := relaytest.NewAgentID(t)
		revokedCreds := c.creds(t, revoked)
		c.revoke(revoked)
		tests := []struct{ name, user, password string }{
			{"wrong password", id, good.Password + "x"},
			{"empty password", id, ""},
			{"unknown agent", other, good.Password},
			{"revoked agent", revoked, revokedCreds.Password},
			{"not an agent id", "admin", good.Password},
			{"upper-case id", strings.ToUpper(id), good.Password},
			{"hub name, agent password", HubUser, good.Password},
		}
		for _, tt := range tests {
			nc, err := nats.Connect(url, nats.UserInfo(tt.user, tt.password), nats.Timeout(10*time.Second))
			if err == nil {
				nc.Close()
				t.Errorf("node %d: %s: Connect = nil error, want a refusal", node, tt.name)
			}
		}
	}
}

// TestCalloutClusterRevokedExpires: an agent whose credentials are revoked
// while it is connected is disconnected when its login expires and cannot
// log in again.
func TestCalloutClusterRevokedExpires(t *testing.T) {
	c := startCalloutCluster(t, true, 2*time.Second)
	id := relaytest.NewAgentID(t)
	creds := c.creds(t, id)
	closed := make(chan struct{})
	nc, err := nats.Connect(creds.URL, nats.UserInfo(id, creds.Password), nats.NoReconnect(),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { t.Logf("agent connection: %v", err) }))
	if err != nil {
		t.Fatalf("Connect = %v", err)
	}
	defer nc.Close()
	c.revoke(id)
	select {
	case <-closed:
	case <-time.After(60 * time.Second):
		t.Fatal("the revoked agent is still connected 60s after its 2s login")
	}
	if nc2, err := nats.Connect(creds.URL, nats.UserInfo(id, creds.Password)); err == nil {
		nc2.Close()
		t.Fatal("the revoked agent logged in again")
	}
}

// TestCalloutClusterPermissions: an agent that logged in through the
// callout may publish only its own result and heartbeat subjects and
// subscribe only to its own inbox, on the node where it is.
func TestCalloutClusterPermissions(t *testing.T) {
	c := startCalloutCluster(t, false, 0)
	id, other := relaytest.NewAgentID(t), relaytest.NewAgentID(t)
	creds := c.creds(t, id)
	errs := make(chan error, 64)
	// The exact permissions the callout grants are checked on its user
	// JWT (TestCalloutAnswer); here the server enforces them.
	nc, err := nats.Connect(c.urls(1), nats.UserInfo(id, creds.Password),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatalf("Connect = %v", err)
	}
	defer nc.Close()
	// Its own subjects work (the conformance suite checks delivery).
	if _, err := nc.SubscribeSync("mig.agent." + id + ".>"); err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"mig.server.result." + id, "mig.server.heartbeat." + id} {
		if err := nc.Publish(subj, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	select {
	case err := <-errs:
		t.Fatalf("the agent's own subjects: %v", err)
	case <-time.After(quietPeriod):
	}

	// And they hold: another agent's subjects are refused.
	denied := []func() error{
		func() error { return nc.Publish("mig.server.result."+other, []byte("x")) },
		func() error { return nc.Publish("mig.agent."+other+".command", []byte("x")) },
		func() error { _, err := nc.SubscribeSync("mig.agent." + other + ".>"); return err },
		func() error { _, err := nc.SubscribeSync("mig.server.>"); return err },
		func() error { _, err := nc.SubscribeSync(CalloutSubject); return err },
		func() error { _, err := nc.SubscribeSync("_INBOX.>"); return err },
		func() error { return nc.Publish("mig.server.result."+id+".more", []byte("x")) },
		func() error { return nc.Publish("$SYS.REQ.USER.INFO", []byte("x")) },
	}
	for i, f := range denied {
		if err := f(); err != nil {
			t.Fatalf("denied[%d]: %v", i, err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatalf("Flush = %v", err)
		}
		select {
		case err := <-errs:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Errorf("denied[%d]: error %v, want a permissions violation", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("denied[%d]: no permissions violation", i)
		}
	}
}

// TestCalloutClusterForgedRequest: a client allowed to publish on the
// callout subject (the hub's user) gets no login out of requests that
// nats-server did not make, even with the agent's password in them.
func TestCalloutClusterForgedRequest(t *testing.T) {
	c := startCalloutCluster(t, false, 0)
	id := relaytest.NewAgentID(t)
	creds := c.creds(t, id)
	// nats-server itself denies clients the callout subject; whatever gets
	// through must still be refused.
	var denied atomic.Int32
	nc, err := nats.Connect(c.urls(2), nats.UserInfo(HubUser, c.hubPass),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				denied.Add(1)
			}
		}))
	if err != nil {
		t.Fatalf("Connect(hub) = %v", err)
	}
	defer nc.Close()
	issuerPub, _ := c.issuer.PublicKey()
	var wg sync.WaitGroup
	for _, f := range forgeries(t, issuerPub, id, creds.Password) {
		wg.Go(func() {
			// Most get no answer at all: wait a while for one.
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			msg, err := nc.RequestWithContext(ctx, CalloutSubject, []byte(f.token))
			if err != nil {
				return
			}
			if grant := grantIn(t, msg.Data); grant != "" {
				t.Errorf("%s: the callout granted a login", f.name)
			}
		})
	}
	wg.Wait()
	t.Logf("%d forged requests denied by nats-server itself", denied.Load())
}
