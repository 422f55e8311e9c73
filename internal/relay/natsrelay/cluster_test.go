package natsrelay

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/relaytest"
)

// clusterSize is the number of nodes of the test cluster.
const clusterSize = 3

// testCluster is a three-node NATS cluster of embedded relays on random
// ports, with an in-memory table of agent passwords every node checks,
// which survives restarts. The hub connects to node 0 over the network and
// agents to nodes 1 and 2, so every message crosses a route.
type testCluster struct {
	hubPass   string
	routePass string

	mu        sync.Mutex
	nodes     [clusterSize]*Server
	listen    [clusterSize]string // client host:port, fixed after the first start
	route     [clusterSize]string // route host:port, fixed after the first start
	passwords map[string][]byte
}

func startTestCluster(t *testing.T) *testCluster {
	t.Helper()
	hubPass, err := relay.NewPassword()
	if err != nil {
		t.Fatalf("NewPassword = %v", err)
	}
	routePass, err := relay.NewPassword()
	if err != nil {
		t.Fatalf("NewPassword = %v", err)
	}
	c := &testCluster{hubPass: hubPass, routePass: routePass, passwords: map[string][]byte{}}
	for i := range clusterSize {
		c.listen[i] = "127.0.0.1:0"
		c.route[i] = "127.0.0.1:0"
	}
	c.start(t)
	t.Cleanup(c.shutdown)
	return c
}

// start starts every node, node 0 first with no routes, the others routing
// to the nodes already started (all of them after a restart), and waits
// until the cluster is a full mesh.
func (c *testCluster) start(t *testing.T) {
	t.Helper()
	for i := range clusterSize {
		var routes []string
		for j := range clusterSize {
			if j != i && !strings.HasSuffix(c.route[j], ":0") {
				routes = append(routes, "nats-route://"+c.route[j])
			}
		}
		srv, err := StartServer(ServerConfig{
			Listen:       c.listen[i],
			Authenticate: c.authenticate,
			Logger:       testLogger(),
			HubPassword:  c.hubPass,
			Cluster: &ClusterConfig{
				Name:     "mig-test",
				NodeName: fmt.Sprintf("mig-test-%d", i),
				Listen:   c.route[i],
				Routes:   routes,
				User:     "mig-route",
				Password: c.routePass,
			},
		})
		if err != nil {
			t.Fatalf("StartServer(node %d) = %v", i, err)
		}
		c.mu.Lock()
		c.nodes[i] = srv
		c.listen[i] = srv.ns.Addr().String()
		c.route[i] = strings.TrimPrefix(srv.RouteURL(), "nats-route://")
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

func (c *testCluster) node(i int) *Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

func (c *testCluster) shutdown() {
	for i := range clusterSize {
		if n := c.node(i); n != nil {
			n.Shutdown()
		}
	}
}

// restart stops every node and starts them again, then waits until as many
// clients are connected as before: while the nodes go down one by one,
// clients hop to a node still up and lose it in turn, so some are still
// waiting out a backoff when the cluster is back.
func (c *testCluster) restart(t *testing.T) {
	t.Helper()
	before := c.numClients()
	c.shutdown()
	c.start(t)
	deadline := time.Now().Add(60 * time.Second)
	for c.numClients() < before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
}

// numClients returns the number of client connections on all nodes.
func (c *testCluster) numClients() int {
	n := 0
	for i := range clusterSize {
		n += c.node(i).ns.NumClients()
	}
	return n
}

func (c *testCluster) authenticate(id, password string) bool {
	c.mu.Lock()
	hash, ok := c.passwords[id]
	c.mu.Unlock()
	return ok && relay.CheckPassword(hash, password)
}

// urls returns the client URLs of nodes, comma-separated.
func (c *testCluster) urls(nodes ...int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var us []string
	for _, i := range nodes {
		us = append(us, "nats://"+c.listen[i])
	}
	return strings.Join(us, ",")
}

func (c *testCluster) creds(t *testing.T, id string) relay.Credentials {
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

func (c *testCluster) hub(t *testing.T) relay.Hub {
	t.Helper()
	h, err := NewHub(t.Context(), c.urls(0), HubUser, c.hubPass, nil, testLogger())
	if err != nil {
		t.Fatalf("NewHub(%s) = %v", c.urls(0), err)
	}
	return h
}

// TestClusterConformance runs the conformance suite on a three-node
// cluster, the hub on one node and the agents on the two others.
func TestClusterConformance(t *testing.T) {
	c := startTestCluster(t)
	relaytest.Run(t, relaytest.Harness{
		NewHub:  c.hub,
		Dial:    NewDialer(testLogger()),
		Creds:   c.creds,
		Restart: c.restart,
		Settle:  c.settle,
	})
}

// settle waits until every node knows of every subscription made by a
// client of another node.
func (c *testCluster) settle(t *testing.T) {
	t.Helper()
	var nodes []*server.Server
	for i := range clusterSize {
		nodes = append(nodes, c.node(i).ns)
	}
	settleNodes(t, nodes)
}

// settleNodes waits until every node knows of every subscription a client
// of another node made, and of the subjects in always: interest crosses
// routes asynchronously.
func settleNodes(t testing.TB, nodes []*server.Server, always ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := missingInterest(nodes, always)
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster did not settle in 30s: %s", missing)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// missingInterest names one subscription some node does not know of yet, or
// returns "".
func missingInterest(nodes []*server.Server, always []string) string {
	for _, subject := range always {
		for j, n := range nodes {
			if !n.GlobalAccount().SubscriptionInterest(subject) {
				return fmt.Sprintf("node %d does not know of %q", j, subject)
			}
		}
	}
	for i, n := range nodes {
		cz, err := n.Connz(&server.ConnzOptions{Subscriptions: true, Limit: 1 << 20})
		if err != nil {
			return fmt.Sprintf("node %d: connz: %v", i, err)
		}
		for _, ci := range cz.Conns {
			for _, sub := range ci.Subs {
				// A concrete subject the subscription matches.
				toks := strings.Split(sub, ".")
				for k, tok := range toks {
					if tok == "*" || tok == ">" {
						toks[k] = "settle"
					}
				}
				subject := strings.Join(toks, ".")
				for j, other := range nodes {
					if j != i && !other.GlobalAccount().SubscriptionInterest(subject) {
						return fmt.Sprintf("node %d does not know of %q on node %d", j, sub, i)
					}
				}
			}
		}
	}
	return ""
}

// TestClusterNodeDown: with one agent node down, agents that were on it move
// to the other, and a hub on any surviving node still reaches them and hears
// from them.
func TestClusterNodeDown(t *testing.T) {
	c := startTestCluster(t)
	hub, err := NewHub(t.Context(), c.urls(0, 2), HubUser, c.hubPass, nil, testLogger())
	if err != nil {
		t.Fatalf("NewHub = %v", err)
	}
	defer hub.Close()
	received := make(chan relay.Inbound, 64)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- hub.Receive(ctx, func(m relay.Inbound) { received <- m }) }()
	defer func() {
		cancel()
		<-done
	}()

	type agentConn struct {
		id    string
		conn  relay.Conn
		inbox chan string
	}
	var agents []agentConn
	for range 6 {
		id := relaytest.NewAgentID(t)
		conn, err := Dial(t.Context(), id, c.creds(t, id))
		if err != nil {
			t.Fatalf("Dial = %v", err)
		}
		defer conn.Close()
		a := agentConn{id: id, conn: conn, inbox: make(chan string, 64)}
		sctx, scancel := context.WithCancel(t.Context())
		sdone := make(chan error, 1)
		go func() { sdone <- conn.Subscribe(sctx, func(_ string, d []byte) { a.inbox <- string(d) }) }()
		defer func() {
			scancel()
			<-sdone
		}()
		agents = append(agents, a)
	}
	c.node(1).Shutdown()
	for _, a := range agents {
		// Delivery is at most once: keep sending until one arrives.
		deadline := time.Now().Add(30 * time.Second)
		for got := false; !got; {
			if time.Now().After(deadline) {
				t.Fatalf("agent %s got no command in 30s with node 1 down", a.id)
			}
			if err := hub.Send(t.Context(), []relay.Outbound{{AgentID: a.id, Kind: relay.KindCommand, Data: []byte("to " + a.id)}}); err != nil {
				t.Logf("Send = %v", err)
			}
			select {
			case d := <-a.inbox:
				if d != "to "+a.id {
					t.Errorf("agent %s got %q, want %q", a.id, d, "to "+a.id)
				}
				got = true
			case <-time.After(200 * time.Millisecond):
			}
		}
		for got := false; !got; {
			if time.Now().After(deadline) {
				t.Fatalf("hub got no result from agent %s in 30s with node 1 down", a.id)
			}
			if err := a.conn.Publish(t.Context(), relay.KindResult, []byte("from "+a.id)); err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			select {
			case m := <-received:
				if m.AgentID != a.id || string(m.Data) != "from "+a.id {
					t.Errorf("hub received (%s, %q), want (%s, %q)", m.AgentID, m.Data, a.id, "from "+a.id)
				}
				got = true
			case <-time.After(time.Second):
			}
		}
	}
}

func TestClusterConfig(t *testing.T) {
	auth := func(string, string) bool { return false }
	good := ClusterConfig{Name: "c", NodeName: "n", Listen: "127.0.0.1:0", User: "r", Password: "p"}
	tests := []struct {
		name   string
		change func(*ClusterConfig)
	}{
		{"no name", func(c *ClusterConfig) { c.Name = "" }},
		{"no node name", func(c *ClusterConfig) { c.NodeName = "" }},
		{"no password", func(c *ClusterConfig) { c.Password = "" }},
		{"no user", func(c *ClusterConfig) { c.User = "" }},
		{"bad listen", func(c *ClusterConfig) { c.Listen = "nowhere" }},
		{"bad port", func(c *ClusterConfig) { c.Listen = "127.0.0.1:99999" }},
		{"bad route scheme", func(c *ClusterConfig) { c.Routes = []string{"nats://127.0.0.1:6222"} }},
		{"route without host", func(c *ClusterConfig) { c.Routes = []string{"nats-route://"} }},
	}
	for _, tt := range tests {
		cc := good
		tt.change(&cc)
		srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:0", Authenticate: auth, Cluster: &cc})
		if err == nil {
			srv.Shutdown()
			t.Errorf("%s: StartServer = nil error, want one", tt.name)
		}
	}
	cc := good
	srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:0", Authenticate: auth, Cluster: &cc})
	if err != nil {
		t.Fatalf("StartServer(%+v) = %v", cc, err)
	}
	defer srv.Shutdown()
	if _, _, err := net.SplitHostPort(strings.TrimPrefix(srv.RouteURL(), "nats-route://")); err != nil || !strings.HasPrefix(srv.RouteURL(), "nats-route://") {
		t.Errorf("RouteURL() = %q, want nats-route://host:port", srv.RouteURL())
	}
	plain, err := StartServer(ServerConfig{Listen: "127.0.0.1:0", Authenticate: auth})
	if err != nil {
		t.Fatalf("StartServer = %v", err)
	}
	defer plain.Shutdown()
	if u := plain.RouteURL(); u != "" {
		t.Errorf("RouteURL() of a server outside a cluster = %q, want \"\"", u)
	}
}
