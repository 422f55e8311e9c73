package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/migplatform/mig/internal/api"
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/amqprelay"
	"github.com/migplatform/mig/internal/relay/natsrelay"
	"github.com/migplatform/mig/internal/scheduler"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/pgstore"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// Server is a running mig-server.
type Server struct {
	// Store is the store the server opened and closes: the whole
	// store.Store, which the scheduler and the API each see through the
	// narrower interface they declare (scheduler.Store, api.Store), and the
	// relay's authentication through credentialStore. Tests use it to play
	// a compromised store.
	Store store.Store

	log   *slog.Logger
	relay *natsrelay.Server
	hub   relay.Hub
	// provisioner creates RabbitMQ users for agents; nil on NATS.
	provisioner *amqprelay.Provisioner
	// callout answers an external NATS's auth callout; nil without
	// relay.calloutissuer.
	callout  *natsrelay.Callout
	http     *http.Server
	apiURL   string
	relayURL string
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errc     chan error
}

// Start starts the store, relay, scheduler and API described by cfg. Stop it
// with Close.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkFiles(cfg); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: logger.With("component", "server"), errc: make(chan error, 2)}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()

	cert, err := tls.LoadX509KeyPair(cfg.API.Cert, cfg.API.Key)
	if err != nil {
		return nil, fmt.Errorf("api.cert %s / api.key %s: %w", cfg.API.Cert, cfg.API.Key, err)
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.Store = st

	if cfg.Relay.URL != "" {
		if err := s.connectExternalRelay(ctx, cfg, st, logger); err != nil {
			return nil, err
		}
	} else if err := s.startEmbeddedRelay(ctx, cfg, tlsConf, st, logger); err != nil {
		return nil, err
	}

	var relayCA string
	if cfg.Relay.CA != "" {
		b, err := os.ReadFile(cfg.Relay.CA)
		if err != nil {
			return nil, fmt.Errorf("relay.ca: %w", err)
		}
		relayCA = string(b)
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	sched := scheduler.New(scheduler.Config{
		OnlineWindow: time.Duration(cfg.Agents.OnlineWindow),
		IdleWindow:   time.Duration(cfg.Agents.IdleWindow),
	}, st, s.hub, logger)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := sched.Run(runCtx); err != nil {
			s.errc <- fmt.Errorf("scheduler: %w", err)
		}
	}()

	proxies, err := api.ParseTrustedProxies(cfg.API.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("api.trustedproxies: %w", err)
	}
	apiCfg := api.Config{Store: st, Dispatcher: sched, EnrollmentTokens: cfg.EnrollmentTokens,
		RelayURL: s.relayURL, RelayCA: relayCA, TrustedProxies: proxies, Logger: logger}
	if s.provisioner != nil {
		apiCfg.ProvisionAgent = s.provisioner.AddAgent
	}
	handler := api.New(apiCfg)
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return nil, fmt.Errorf("api.listen %s: %w", cfg.API.Listen, err)
	}
	s.apiURL = "https://" + ln.Addr().String() + "/api/v1"
	s.http = &http.Server{Handler: handler, TLSConfig: tlsConf,
		ReadHeaderTimeout: time.Duration(cfg.API.ReadHeaderTimeout), ReadTimeout: time.Duration(cfg.API.ReadTimeout),
		WriteTimeout: time.Duration(cfg.API.WriteTimeout), IdleTimeout: time.Duration(cfg.API.IdleTimeout),
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	limited := newConnLimiter(ln, cfg.API.MaxConnections, cfg.API.MaxConnectionsPerAddress, proxies,
		logger.With("component", "api"))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.ServeTLS(limited, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errc <- fmt.Errorf("api: %w", err)
		}
	}()
	ok = true
	s.log.Info("mig-server started", "api", s.apiURL, "relay", s.relayURL, "store", redactStore(cfg.Store))
	return s, nil
}

// APIURL is the base URL of the API, ending in /api/v1.
func (s *Server) APIURL() string { return s.apiURL }

// RelayURL is the relay URL handed to agents.
func (s *Server) RelayURL() string { return s.relayURL }

// Err reports a component that stopped on its own.
func (s *Server) Err() <-chan error { return s.errc }

// Close stops the API first (no new actions), then the scheduler (which
// writes what it already received), then the relay and the store.
func (s *Server) Close() {
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.http.Shutdown(ctx)
		cancel()
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.callout != nil {
		_ = s.callout.Close()
	}
	if s.hub != nil {
		_ = s.hub.Close()
	}
	if s.relay != nil {
		s.relay.Shutdown()
	}
	if s.Store != nil {
		_ = s.Store.Close()
	}
}

// maxHeaderBytes bounds a request's headers: the API's requests carry a
// token or an API key and little else.
const maxHeaderBytes = 64 << 10

// authCheckTimeout bounds one agent credential lookup: a login waits for
// it, and nats-server refuses logins that take longer than a few seconds
// anyway.
const authCheckTimeout = 5 * time.Second

// credentialStore is what authenticating agents on the relay reads.
type credentialStore interface {
	AgentCredential(ctx context.Context, agentID string) (store.AgentCredential, error)
}

var _ credentialStore = store.Store(nil)

// authenticateAgents returns the check of an agent's relay password
// against its credential in the store, which the embedded relay and the
// auth callout both make.
func authenticateAgents(ctx context.Context, st credentialStore) func(agentID, password string) bool {
	ctx = context.WithoutCancel(ctx)
	return func(agentID, password string) bool {
		ctx, cancel := context.WithTimeout(ctx, authCheckTimeout)
		defer cancel()
		c, err := st.AgentCredential(ctx, agentID)
		if err != nil {
			return false
		}
		return relay.CheckPassword(c.PasswordHash, password)
	}
}

// startEmbeddedRelay starts the NATS relay inside this process, which
// authenticates agents against the store, and the hub on it; with
// relay.cluster, the relay is one node of a cluster.
func (s *Server) startEmbeddedRelay(ctx context.Context, cfg Config, tlsConf *tls.Config, st credentialStore, logger *slog.Logger) error {
	scfg := natsrelay.ServerConfig{
		Listen:         cfg.Relay.Listen,
		TLS:            tlsConf.Clone(),
		Logger:         logger,
		Authenticate:   authenticateAgents(ctx, st),
		MaxConnections: cfg.Relay.MaxConnections,
	}
	if cfg.Relay.Cluster.enabled() {
		cc, err := clusterConfig(cfg)
		if err != nil {
			return err
		}
		if cc.TLS == nil {
			s.log.Warn("relay cluster routes are not encrypted: set relay.cluster.tls.ca unless every node is on one trusted host or network")
		}
		scfg.Cluster = cc
	}
	rs, err := natsrelay.StartServer(scfg)
	if err != nil {
		return fmt.Errorf("relay on %s: %w", cfg.Relay.Listen, err)
	}
	if scfg.Cluster != nil {
		s.log.Info("relay cluster node started", "cluster", scfg.Cluster.Name, "node", scfg.Cluster.NodeName,
			"route", rs.RouteURL(), "routes", len(scfg.Cluster.Routes))
	}
	s.relay = rs
	s.relayURL = cfg.Relay.PublicURL
	if s.relayURL == "" {
		s.relayURL = "tls://" + strings.TrimPrefix(strings.TrimPrefix(rs.ClientURL(), "nats://"), "tls://")
	}
	hub, err := rs.NewHub(ctx)
	if err != nil {
		return fmt.Errorf("relay hub: %w", err)
	}
	s.hub = hub
	return nil
}

// connectExternalRelay connects the hub to an external NATS (relay.url),
// verifying its certificate with relay.ca when set (and the system's roots
// otherwise) for tls:// URLs, and starts answering the NATS's auth callout
// with relay.calloutissuer.
func (s *Server) connectExternalRelay(ctx context.Context, cfg Config, st credentialStore, logger *slog.Logger) error {
	var hubTLS *tls.Config
	if strings.Contains(cfg.Relay.URL, "tls://") || cfg.Relay.CA != "" {
		hubTLS = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.Relay.CA != "" {
			pem, err := os.ReadFile(cfg.Relay.CA)
			if err != nil {
				return fmt.Errorf("relay.ca: %w", err)
			}
			hubTLS.RootCAs = x509.NewCertPool()
			if !hubTLS.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("relay.ca %s: no PEM certificate in it", cfg.Relay.CA)
			}
		}
	}
	s.relayURL = cfg.Relay.PublicURL
	if isAMQPURL(cfg.Relay.URL) {
		// RabbitMQ: the server's own credentials are in the URL; agents get
		// the same address without them, and a RabbitMQ user each.
		hub, err := amqprelay.NewHub(ctx, cfg.Relay.URL, amqprelay.Options{TLS: hubTLS, Logger: logger})
		if err != nil {
			return fmt.Errorf("relay.url: %w", err)
		}
		s.hub = hub
		prov, err := amqprelay.NewProvisioner(amqprelay.ProvisionerConfig{ManagementURL: cfg.Relay.ManagementURL,
			VHost: amqpVHost(cfg.Relay.URL), Logger: logger})
		if err != nil {
			return fmt.Errorf("relay.managementurl: %w", err)
		}
		s.provisioner = prov
		if s.relayURL == "" {
			s.relayURL = withoutUserInfo(cfg.Relay.URL)
		}
		return nil
	}
	hub, err := natsrelay.NewHub(ctx, cfg.Relay.URL, cfg.Relay.User, cfg.Relay.Password, hubTLS, logger)
	if err != nil {
		return fmt.Errorf("relay.url: %w", err)
	}
	s.hub = hub
	if s.relayURL == "" {
		s.relayURL = cfg.Relay.URL
	}
	if cfg.Relay.CalloutIssuer == "" {
		s.log.Info("external NATS without relay.calloutissuer: agents' credentials and permissions must come from the NATS's own configuration")
		return nil
	}
	ccfg, err := s.calloutConfig(cfg, st)
	if err != nil {
		return err
	}
	co, err := natsrelay.StartCallout(ctx, cfg.Relay.URL, cfg.Relay.User, cfg.Relay.Password, hubTLS, ccfg)
	if err != nil {
		return fmt.Errorf("relay.calloutissuer: %w", err)
	}
	s.callout = co
	return nil
}

// calloutConfig loads the auth callout's keys named by the configuration.
func (s *Server) calloutConfig(cfg Config, st credentialStore) (natsrelay.CalloutConfig, error) {
	issuer, err := loadSeed("relay.calloutissuer", cfg.Relay.CalloutIssuer, natsrelay.ParseCalloutIssuer)
	if err != nil {
		return natsrelay.CalloutConfig{}, err
	}
	cc := natsrelay.CalloutConfig{
		Issuer:       issuer,
		Account:      cfg.Relay.CalloutAccount,
		TTL:          time.Duration(cfg.Relay.CalloutTTL),
		Authenticate: authenticateAgents(context.Background(), st),
		Logger:       s.log,
	}
	if cfg.Relay.CalloutXKey != "" {
		if cc.XKey, err = loadSeed("relay.calloutxkey", cfg.Relay.CalloutXKey, natsrelay.ParseCalloutXKey); err != nil {
			return natsrelay.CalloutConfig{}, err
		}
	} else {
		s.log.Warn("relay.calloutxkey is not set: agents' passwords cross the NATS callout account in clear text")
	}
	return cc, nil
}

// loadSeed reads an nkey seed file (checked at start, see files.go) and
// parses it; errors name the setting and the file, never the seed.
func loadSeed(setting, path string, parse func([]byte) (nkeys.KeyPair, error)) (nkeys.KeyPair, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	kp, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", setting, path, err)
	}
	return kp, nil
}

// clusterConfig returns the embedded relay's cluster settings, with the
// routes' TLS configuration loaded.
func clusterConfig(cfg Config) (*natsrelay.ClusterConfig, error) {
	cl := cfg.Relay.Cluster
	cc := &natsrelay.ClusterConfig{
		Name:     cl.Name,
		NodeName: cl.NodeName,
		Listen:   cl.Listen,
		Routes:   cl.Routes,
		User:     cl.User,
		Password: cl.Password,
	}
	if cc.NodeName == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			return nil, errors.New("relay.cluster.nodename: required, the host name is unknown")
		}
		_, port, _ := net.SplitHostPort(cfg.Relay.Listen)
		cc.NodeName = strings.ReplaceAll(host, " ", "-") + "-" + port
	}
	if cl.TLS.CA == "" {
		return cc, nil
	}
	certFile, keyFile := cl.TLS.Cert, cl.TLS.Key
	if certFile == "" {
		certFile, keyFile = cfg.API.Cert, cfg.API.Key
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("relay.cluster.tls cert %s / key %s: %w", certFile, keyFile, err)
	}
	pem, err := os.ReadFile(cl.TLS.CA)
	if err != nil {
		return nil, fmt.Errorf("relay.cluster.tls.ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("relay.cluster.tls.ca %s: no PEM certificate in it", cl.TLS.CA)
	}
	cc.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	return cc, nil
}

// amqpVHost returns the virtual host an amqp:// URL names ("" for "/").
func amqpVHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	v, err := url.PathUnescape(strings.TrimPrefix(u.Path, "/"))
	if err != nil {
		return ""
	}
	return v
}

// withoutUserInfo drops the credentials from a URL.
func withoutUserInfo(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// openStore opens the store the configuration names: SQLite for
// "sqlite:PATH", PostgreSQL for a postgres:// URL.
func openStore(ctx context.Context, cfg Config, logger *slog.Logger) (store.Store, error) {
	if isPostgres(cfg.Store) {
		return pgstore.Open(ctx, cfg.Store, logger)
	}
	return sqlitestore.Open(ctx, strings.TrimPrefix(cfg.Store, "sqlite:"), logger)
}

// Hub returns the server's connection to the relay. Tests use it to act as a
// compromised server that talks to agents directly.
func (s *Server) Hub() relay.Hub { return s.hub }

// redactStore returns a store setting fit for logs: a PostgreSQL URL without
// its password.
func redactStore(store string) string {
	if !isPostgres(store) {
		return store
	}
	u, err := url.Parse(store)
	if err != nil {
		return "postgres://…"
	}
	return u.Redacted()
}
