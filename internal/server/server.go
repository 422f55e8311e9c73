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
	Store store.Store

	log   *slog.Logger
	relay *natsrelay.Server
	hub   relay.Hub
	// provisioner creates RabbitMQ users for agents; nil on NATS.
	provisioner *amqprelay.Provisioner
	http        *http.Server
	apiURL      string
	relayURL    string
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	errc        chan error
}

// Start starts the store, relay, scheduler and API described by cfg. Stop it
// with Close.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
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
		if err := s.connectExternalRelay(ctx, cfg, logger); err != nil {
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

	apiCfg := api.Config{Store: st, Dispatcher: sched, EnrollmentTokens: cfg.EnrollmentTokens,
		RelayURL: s.relayURL, RelayCA: relayCA, Logger: logger}
	if s.provisioner != nil {
		apiCfg.ProvisionAgent = s.provisioner.AddAgent
	}
	handler := api.New(apiCfg)
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return nil, fmt.Errorf("api.listen %s: %w", cfg.API.Listen, err)
	}
	s.apiURL = "https://" + ln.Addr().String() + "/api/v1"
	s.http = &http.Server{Handler: handler, TLSConfig: tlsConf, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
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

// startEmbeddedRelay starts the NATS relay inside this process, which
// authenticates agents against the store, and the hub on it.
func (s *Server) startEmbeddedRelay(ctx context.Context, cfg Config, tlsConf *tls.Config, st store.Store, logger *slog.Logger) error {
	authCtx := context.WithoutCancel(ctx)
	rs, err := natsrelay.StartServer(natsrelay.ServerConfig{
		Listen: cfg.Relay.Listen,
		TLS:    tlsConf.Clone(),
		Logger: logger,
		Authenticate: func(agentID, password string) bool {
			c, err := st.AgentCredential(authCtx, agentID)
			if err != nil {
				return false
			}
			return relay.CheckPassword(c.PasswordHash, password)
		},
	})
	if err != nil {
		return fmt.Errorf("relay on %s: %w", cfg.Relay.Listen, err)
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
// otherwise) for tls:// URLs.
func (s *Server) connectExternalRelay(ctx context.Context, cfg Config, logger *slog.Logger) error {
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
	return nil
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
