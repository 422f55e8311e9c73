package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/natsrelay"
	"github.com/migplatform/mig/internal/relay/relaytest"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/pgstore/pgtest"
)

func TestCalloutAndClusterSettings(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.API.Cert, c.API.Key = "cert.pem", "key.pem"
		c.EnrollmentTokens = []string{"a-long-enough-token"}
		c.Store = "sqlite:/x.db"
		return c
	}
	callout := func(c *Config) {
		c.Relay.URL, c.Relay.User, c.Relay.Password = "nats://n1:4222,nats://n2:4222", "mig-hub", "secret-hub-password"
		c.Relay.CalloutIssuer, c.Relay.CalloutXKey = "/etc/mig/callout-issuer.nk", "/etc/mig/callout-xkey.nk"
	}
	cluster := func(c *Config) {
		c.Store = "postgres://mig@db/mig"
		c.Relay.Cluster.Name, c.Relay.Cluster.Listen = "mig", "0.0.0.0:6222"
		c.Relay.Cluster.User, c.Relay.Cluster.Password = "mig-route", "secret-route-password"
		c.Relay.Cluster.Routes = []string{"nats-route://mig2:6222", "nats-route://mig3:6222"}
	}
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string // "" for valid
	}{
		{"callout", callout, ""},
		{"callout without xkey", func(c *Config) { callout(c); c.Relay.CalloutXKey = "" }, ""},
		{"callout with account and ttl", func(c *Config) {
			callout(c)
			c.Relay.CalloutAccount, c.Relay.CalloutTTL = "MIG", Duration(30*time.Minute)
		}, ""},
		{"callout on the embedded relay", func(c *Config) { callout(c); c.Relay.URL = "" }, "relay.calloutissuer"},
		{"callout on RabbitMQ", func(c *Config) {
			callout(c)
			c.Relay.URL, c.Relay.ManagementURL = "amqp://guest:secret@rabbit:5672/", "http://admin:secret@rabbit:15672"
		}, "relay.calloutissuer"},
		{"callout without hub password", func(c *Config) { callout(c); c.Relay.Password = "" }, "relay.password"},
		{"xkey without issuer", func(c *Config) { callout(c); c.Relay.CalloutIssuer = "" }, "need relay.calloutissuer"},
		{"ttl too short", func(c *Config) { callout(c); c.Relay.CalloutTTL = Duration(time.Second) }, "relay.calloutttl"},
		{"ttl too long", func(c *Config) { callout(c); c.Relay.CalloutTTL = Duration(48 * time.Hour) }, "relay.calloutttl"},
		{"bad account", func(c *Config) { callout(c); c.Relay.CalloutAccount = "a.b" }, "relay.calloutaccount"},
		{"cluster", cluster, ""},
		{"cluster with TLS", func(c *Config) { cluster(c); c.Relay.Cluster.TLS.CA = "/etc/mig/ca.pem" }, ""},
		{"cluster with an external NATS", func(c *Config) { cluster(c); c.Relay.URL = "nats://n1:4222" }, "not with relay.url"},
		{"cluster on sqlite", func(c *Config) { cluster(c); c.Store = "sqlite:/x.db" }, "shared store"},
		{"cluster without listen", func(c *Config) { cluster(c); c.Relay.Cluster.Listen = "" }, "relay.cluster.listen"},
		{"cluster without name", func(c *Config) { cluster(c); c.Relay.Cluster.Name = "" }, "relay.cluster.name"},
		{"cluster without user", func(c *Config) { cluster(c); c.Relay.Cluster.User = "" }, "relay.cluster.user"},
		{"cluster with a short password", func(c *Config) { cluster(c); c.Relay.Cluster.Password = "short" }, "relay.cluster.password"},
		{"cluster bad listen", func(c *Config) { cluster(c); c.Relay.Cluster.Listen = "6222" }, "relay.cluster.listen"},
		{"cluster bad port", func(c *Config) { cluster(c); c.Relay.Cluster.Listen = "0.0.0.0:70000" }, "relay.cluster.listen"},
		{"route scheme", func(c *Config) { cluster(c); c.Relay.Cluster.Routes = []string{"nats://mig2:4222"} }, "relay.cluster.routes[0]"},
		{"route without port", func(c *Config) { cluster(c); c.Relay.Cluster.Routes = []string{"nats-route://mig2"} }, "relay.cluster.routes[0]"},
		{"route with credentials", func(c *Config) {
			cluster(c)
			c.Relay.Cluster.Routes = []string{"nats-route://u:secret@mig2:6222"}
		}, "no credentials in routes"},
		{"route that does not parse", func(c *Config) {
			cluster(c)
			c.Relay.Cluster.Routes = []string{"nats-route://u:secret@mig2:port\x00"}
		}, "does not parse"},
		{"cluster cert without CA", func(c *Config) {
			cluster(c)
			c.Relay.Cluster.TLS.Cert, c.Relay.Cluster.TLS.Key = "/c.pem", "/k.pem"
		}, "relay.cluster.tls.ca"},
		{"cluster cert without key", func(c *Config) {
			cluster(c)
			c.Relay.Cluster.TLS.Cert, c.Relay.Cluster.TLS.CA = "/c.pem", "/ca.pem"
		}, "cert and key go together"},
	}
	for _, tt := range tests {
		c := base()
		tt.change(&c)
		err := c.Validate()
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: Validate() = %v, want nil", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: Validate() = %v, want an error about %q", tt.name, err, tt.wantErr)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("%s: Validate() = %v: the error shows a password", tt.name, err)
		}
	}

	env := map[string]string{
		"MIG_SERVER_RELAY_CALLOUTISSUER":    "/run/secrets/issuer.nk",
		"MIG_SERVER_RELAY_CALLOUTXKEY":      "/run/secrets/xkey.nk",
		"MIG_SERVER_RELAY_CALLOUTACCOUNT":   "MIG",
		"MIG_SERVER_RELAY_CLUSTER_NAME":     "mig",
		"MIG_SERVER_RELAY_CLUSTER_NODENAME": "mig-1",
		"MIG_SERVER_RELAY_CLUSTER_LISTEN":   "0.0.0.0:6222",
		"MIG_SERVER_RELAY_CLUSTER_ROUTES":   "nats-route://mig2:6222, nats-route://mig3:6222,",
		"MIG_SERVER_RELAY_CLUSTER_USER":     "route",
		"MIG_SERVER_RELAY_CLUSTER_PASSWORD": "route-password-from-env",
	}
	c := base()
	c.Relay.Cluster.Routes = []string{"nats-route://from-file:6222"}
	ApplyEnv(&c, func(k string) string { return env[k] })
	r := c.Relay
	if r.CalloutIssuer != "/run/secrets/issuer.nk" || r.CalloutXKey != "/run/secrets/xkey.nk" || r.CalloutAccount != "MIG" {
		t.Errorf("after ApplyEnv: callout %q %q %q, want the environment's", r.CalloutIssuer, r.CalloutXKey, r.CalloutAccount)
	}
	cl := r.Cluster
	if cl.Name != "mig" || cl.NodeName != "mig-1" || cl.Listen != "0.0.0.0:6222" || cl.User != "route" || cl.Password != "route-password-from-env" ||
		strings.Join(cl.Routes, " ") != "nats-route://mig2:6222 nats-route://mig3:6222" {
		t.Errorf("after ApplyEnv: cluster %+v, want the environment's", cl)
	}
}

func TestGenCalloutKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	var out bytes.Buffer
	if err := GenCalloutKeys(dir, &out); err != nil {
		t.Fatalf("GenCalloutKeys = %v", err)
	}
	for _, f := range []string{CalloutIssuerFile, CalloutXKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	issuerSeed, _ := os.ReadFile(filepath.Join(dir, CalloutIssuerFile))
	issuer, err := natsrelay.ParseCalloutIssuer(issuerSeed)
	if err != nil {
		t.Fatalf("the issuer file: %v", err)
	}
	xkeySeed, _ := os.ReadFile(filepath.Join(dir, CalloutXKeyFile))
	xkey, err := natsrelay.ParseCalloutXKey(xkeySeed)
	if err != nil {
		t.Fatalf("the xkey file: %v", err)
	}
	issuerPub, _ := issuer.PublicKey()
	xkeyPub, _ := xkey.PublicKey()
	text := out.String()
	if !strings.Contains(text, issuerPub) || !strings.Contains(text, xkeyPub) {
		t.Errorf("the output does not name the public keys:\n%s", text)
	}
	if strings.Contains(text, string(bytes.TrimSpace(issuerSeed))) || strings.Contains(text, string(bytes.TrimSpace(xkeySeed))) {
		t.Error("the output shows a seed")
	}
	// The nats-server part is a configuration nats-server accepts.
	start := strings.Index(text, "# MIG:")
	end := strings.Index(text, "\nand this to")
	if start < 0 || end < start {
		t.Fatalf("no nats-server configuration in the output:\n%s", text)
	}
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("listen: 127.0.0.1:-1\n"+text[start:end]), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := natsserver.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server refuses the printed configuration: %v", err)
	}
	if opts.AuthCallout == nil || opts.AuthCallout.Issuer != issuerPub || opts.AuthCallout.XKey != xkeyPub ||
		len(opts.AuthCallout.AuthUsers) != 1 || opts.AuthCallout.AuthUsers[0] != natsrelay.HubUser {
		t.Errorf("auth_callout = %+v, want issuer %s xkey %s for %s", opts.AuthCallout, issuerPub, xkeyPub, natsrelay.HubUser)
	}
	if opts.MaxPayload < natsrelay.DefaultMaxPayload {
		t.Errorf("max_payload = %d, want at least %d", opts.MaxPayload, natsrelay.DefaultMaxPayload)
	}

	if err := GenCalloutKeys(dir, &out); err == nil {
		t.Error("GenCalloutKeys over existing keys = nil error, want a refusal")
	}
	after, _ := os.ReadFile(filepath.Join(dir, CalloutIssuerFile))
	if !bytes.Equal(after, issuerSeed) {
		t.Error("GenCalloutKeys replaced an existing key")
	}
	if err := GenCalloutKeys("", &out); err == nil {
		t.Error("GenCalloutKeys(\"\") = nil error")
	}
}

// calloutNATS starts a nats-server configured with the auth callout
// printed by GenCalloutKeys' building blocks, and returns its URL, the
// hub's password and the files of the keys.
func calloutNATS(t *testing.T) (url, hubPass, issuerFile, xkeyFile string) {
	t.Helper()
	dir := t.TempDir()
	issuerSeed, xkeySeed, err := natsrelay.NewCalloutKeys()
	if err != nil {
		t.Fatal(err)
	}
	issuer, _ := natsrelay.ParseCalloutIssuer(issuerSeed)
	xkey, _ := natsrelay.ParseCalloutXKey(xkeySeed)
	issuerPub, _ := issuer.PublicKey()
	xkeyPub, _ := xkey.PublicKey()
	if hubPass, err = relay.NewPassword(); err != nil {
		t.Fatal(err)
	}
	natsConf, err := natsrelay.CalloutNATSConfig(natsrelay.CalloutNATSOptions{Issuer: issuerPub, XKey: xkeyPub, HubPassword: hubPass})
	if err != nil {
		t.Fatal(err)
	}
	issuerFile, xkeyFile = filepath.Join(dir, "issuer.nk"), filepath.Join(dir, "xkey.nk")
	conf := filepath.Join(dir, "nats.conf")
	for path, data := range map[string][]byte{issuerFile: issuerSeed, xkeyFile: xkeySeed, conf: []byte("listen: 127.0.0.1:-1\n" + natsConf)} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts, err := natsserver.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server configuration: %v", err)
	}
	opts.NoSigs, opts.NoLog = true, true
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatalf("NATS server: %v", err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	return ns.ClientURL(), hubPass, issuerFile, xkeyFile
}

// enrollAgent saves a new agent's credential in st, as enrollment does, and
// returns its ID and password.
func enrollAgent(t *testing.T, st store.Store) (id, password string) {
	t.Helper()
	id = relaytest.NewAgentID(t)
	password, err := relay.NewPassword()
	if err != nil {
		t.Fatal(err)
	}
	cred := store.AgentCredential{AgentID: id, PublicKey: []byte{1}, PasswordHash: relay.HashPassword(password), EnrolledAt: time.Now().UTC()}
	if err := st.SaveAgentCredential(t.Context(), cred); err != nil {
		t.Fatalf("SaveAgentCredential = %v", err)
	}
	return id, password
}

// sendUntilReceived sends a command from hub to agent id until the agent's
// connection receives it: delivery is at most once, and interest crosses a
// cluster's routes asynchronously.
func sendUntilReceived(t *testing.T, hub relay.Hub, id string, conn relay.Conn) {
	t.Helper()
	inbox := make(chan string, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- conn.Subscribe(ctx, func(_ string, d []byte) { inbox <- string(d) }) }()
	defer func() {
		cancel()
		<-done
	}()
	want := "command for " + id
	deadline := time.Now().Add(30 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("agent %s received nothing in 30s", id)
		}
		if err := hub.Send(t.Context(), []relay.Outbound{{AgentID: id, Kind: relay.KindCommand, Data: []byte(want)}}); err != nil {
			t.Logf("Send = %v", err)
		}
		select {
		case got := <-inbox:
			if got != want {
				t.Fatalf("agent %s received %q, want %q", id, got, want)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestServerCallout: a mig-server on an external NATS with the auth
// callout lets an enrolled agent log in with its own password, and nobody
// else.
func TestServerCallout(t *testing.T) {
	url, hubPass, issuerFile, xkeyFile := calloutNATS(t)
	dir := t.TempDir()
	_, certFile, keyFile, err := EnsureDevTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.API.Listen, cfg.API.Cert, cfg.API.Key = "127.0.0.1:0", certFile, keyFile
	cfg.Relay.URL, cfg.Relay.User, cfg.Relay.Password = url, natsrelay.HubUser, hubPass
	cfg.Relay.CalloutIssuer, cfg.Relay.CalloutXKey = issuerFile, xkeyFile
	cfg.Store = "sqlite:" + filepath.Join(dir, "mig.db")
	cfg.EnrollmentTokens = []string{"callout-test-enrollment-token"}

	// Bad keys are refused at start, naming the setting.
	bad := cfg
	bad.Relay.CalloutIssuer = xkeyFile
	if srv, err := Start(t.Context(), bad, testLogger(t, "bad")); err == nil {
		srv.Close()
		t.Fatal("Start with an xkey as issuer = nil error")
	} else if !strings.Contains(err.Error(), "relay.calloutissuer") || !errors.Is(err, natsrelay.ErrCalloutKey) {
		t.Errorf("Start with an xkey as issuer = %v, want an ErrCalloutKey about relay.calloutissuer", err)
	}
	bad = cfg
	bad.Relay.CalloutXKey = filepath.Join(dir, "missing.nk")
	if srv, err := Start(t.Context(), bad, testLogger(t, "bad")); err == nil {
		srv.Close()
		t.Fatal("Start with a missing xkey file = nil error")
	} else if !strings.Contains(err.Error(), "relay.calloutxkey") {
		t.Errorf("Start with a missing xkey file = %v, want an error about relay.calloutxkey", err)
	}

	srv, err := Start(t.Context(), cfg, testLogger(t, "callout"))
	if err != nil {
		t.Fatalf("Start = %v", err)
	}
	defer srv.Close()
	id, password := enrollAgent(t, srv.Store)
	conn, err := natsrelay.Dial(t.Context(), id, relay.Credentials{URL: srv.RelayURL(), User: id, Password: password})
	if err != nil {
		t.Fatalf("Dial(enrolled agent) = %v", err)
	}
	defer conn.Close()
	sendUntilReceived(t, srv.Hub(), id, conn)

	// natsrelay.Dial keeps trying in the background; a plain connection
	// shows the refusal.
	unknown := relaytest.NewAgentID(t)
	for _, c := range []struct{ name, user, password string }{
		{"wrong password", id, password + "x"},
		{"unknown agent", unknown, password},
		{"not an agent", "admin", password},
	} {
		if nc, err := nats.Connect(srv.RelayURL(), nats.UserInfo(c.user, c.password), nats.Timeout(20*time.Second)); err == nil {
			nc.Close()
			t.Errorf("%s: Connect = nil error, want a refusal", c.name)
		}
	}
}

// TestServerEmbeddedCluster: two mig-servers on one PostgreSQL database,
// each with an embedded relay node, form a cluster over TLS routes; an
// agent enrolled through one logs in on the other's node and receives
// commands sent by either server.
func TestServerEmbeddedCluster(t *testing.T) {
	pgURL := pgtest.Schema(t, 4)
	dir := t.TempDir()
	caFile, certFile, keyFile, err := EnsureDevTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	routeCA, routeCert, routeKey := routeTLS(t, dir)
	routePass, err := relay.NewPassword()
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string, routes []string) *Server {
		cfg := DefaultConfig()
		cfg.API.Listen, cfg.API.Cert, cfg.API.Key = "127.0.0.1:0", certFile, keyFile
		cfg.Relay.Listen = "127.0.0.1:0"
		cfg.Relay.CA = caFile
		cfg.Store = pgURL
		cfg.EnrollmentTokens = []string{"cluster-test-enrollment-token"}
		cl := &cfg.Relay.Cluster
		cl.Name, cl.NodeName, cl.Listen = "mig-test", "mig-"+name, "127.0.0.1:0"
		cl.Routes, cl.User, cl.Password = routes, "mig-route", routePass
		cl.TLS.Cert, cl.TLS.Key, cl.TLS.CA = routeCert, routeKey, routeCA
		srv, err := Start(t.Context(), cfg, testLogger(t, name))
		if err != nil {
			t.Fatalf("start server %s: %v", name, err)
		}
		t.Cleanup(srv.Close)
		return srv
	}
	srvA := start("a", nil)
	srvB := start("b", []string{srvA.relay.RouteURL()})
	waitFor(t, 30*time.Second, "the route between the nodes", func() bool {
		return srvA.relay.NumRoutes() >= 1 && srvB.relay.NumRoutes() >= 1
	})

	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	id, password := enrollAgent(t, srvA.Store)
	// The agent logs in on B, which checks it against the shared store.
	conn, err := natsrelay.Dial(t.Context(), id, relay.Credentials{URL: srvB.RelayURL(), User: id, Password: password, CA: string(ca)})
	if err != nil {
		t.Fatalf("Dial(node b) = %v", err)
	}
	defer conn.Close()
	sendUntilReceived(t, srvA.Hub(), id, conn)
	sendUntilReceived(t, srvB.Hub(), id, conn)

	for _, u := range []string{srvA.RelayURL(), srvB.RelayURL()} {
		nc, err := nats.Connect(u, nats.UserInfo(id, password), nats.RootCAs(caFile))
		if err != nil {
			t.Fatalf("Connect(%s, the agent's password) = %v", u, err)
		}
		nc.Close()
		if nc, err := nats.Connect(u, nats.UserInfo(id, password+"x"), nats.RootCAs(caFile)); err == nil {
			nc.Close()
			t.Errorf("Connect(%s, wrong password) = nil error, want a refusal", u)
		}
	}

	// A node with the wrong route password stays out of the cluster.
	cfg := DefaultConfig()
	cfg.API.Listen, cfg.API.Cert, cfg.API.Key = "127.0.0.1:0", certFile, keyFile
	cfg.Relay.Listen, cfg.Store = "127.0.0.1:0", pgURL
	cfg.EnrollmentTokens = []string{"cluster-test-enrollment-token"}
	cfg.Relay.Cluster.Name, cfg.Relay.Cluster.NodeName, cfg.Relay.Cluster.Listen = "mig-test", "mig-intruder", "127.0.0.1:0"
	cfg.Relay.Cluster.Routes = []string{srvA.relay.RouteURL()}
	cfg.Relay.Cluster.User, cfg.Relay.Cluster.Password = "mig-route", routePass+"-wrong"
	cfg.Relay.Cluster.TLS.Cert, cfg.Relay.Cluster.TLS.Key, cfg.Relay.Cluster.TLS.CA = routeCert, routeKey, routeCA
	intruder, err := Start(t.Context(), cfg, testLogger(t, "intruder"))
	if err != nil {
		t.Fatalf("start intruder: %v", err)
	}
	defer intruder.Close()
	time.Sleep(quietTime)
	if n := intruder.relay.NumRoutes(); n != 0 {
		t.Errorf("a node with the wrong route password has %d routes, want 0", n)
	}
}

// quietTime is how long a test watches for something that must not happen.
const quietTime = time.Second

// routeTLS writes a CA and a certificate for 127.0.0.1 that serves as both
// server and client of routes, and returns their files.
func routeTLS(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mig route test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "mig route"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "route-ca.pem"), filepath.Join(dir, "route.pem"), filepath.Join(dir, "route-key.pem")
	for path, block := range map[string]*pem.Block{
		caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}
