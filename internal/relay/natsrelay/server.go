// Package natsrelay is MIG's relay over NATS: an embedded nats-server that
// mig-server runs by default, a Hub for the server side (in process, or over
// the network to an external NATS), and a Dialer for agents.
//
// Subjects: the hub publishes commands and acks to an agent's inbox,
// "mig.agent.<agentID>.command" and "mig.agent.<agentID>.ack"; agents publish
// "mig.server.result.<agentID>" and "mig.server.heartbeat.<agentID>", which
// servers receive in the queue group "mig-server" so that several servers
// share them. The agent ID the hub reports is the last token of the subject,
// never a value from the message body.
//
// Identity: the embedded server authenticates every client itself. An agent
// connects with its agent ID as user name and its relay password, checked by
// ServerConfig.Authenticate, and is then only allowed to subscribe to
// "mig.agent.<agentID>.>" and to publish to its own two server subjects (no
// request-reply, no _INBOX). The hub connects as HubUser with a password
// made at start (or ServerConfig.HubPassword) and has full permissions.
//
// Clusters: past one machine, each mig-server (or a relay process per
// machine) runs one node with ServerConfig.Cluster; the nodes route to each
// other, every node authenticates agents against the shared store, and
// agents and hubs are given the client URLs of all nodes (comma-separated)
// and move to another node when theirs goes down. An operator running
// nats-server binaries instead must give every agent the same permissions
// there (a user per agent, or an auth callout).
//
// No JetStream. The relay keeps nothing, by design: what must survive a
// restart already lives elsewhere. Commands live in the store and the server
// sends pending ones again when an agent says hello; results live on the
// agent's disk until the server acknowledges them after storing them. A
// stream would be a second copy of that state to size, replicate and keep
// consistent with the store, for no message that could not be recovered
// otherwise; Outbound.Expires is ignored.
//
// Hub.Receive and Conn.Subscribe block: they deliver messages until their
// context ends (returning its error) or the hub or connection is closed
// (returning relay.ErrClosed). An agent's inbox subscription exists from the
// moment Dial returns, and OnConnect callbacks run only once it is in place
// on the broker, so a reply to a hello sent from OnConnect is never missed.
package natsrelay

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay"
)

// DefaultMaxPayload is the largest message the embedded server accepts when
// ServerConfig.MaxPayload is zero: action.MaxMessageSize plus room for the
// protocol's own overhead.
const DefaultMaxPayload = action.MaxMessageSize + 64<<10

// maxSubscriptions bounds how many subscriptions one client may hold, so a
// misbehaving agent cannot grow the server's subscription table; an agent
// needs one, a hub two per Receive.
const maxSubscriptions = 64

// startTimeout bounds how long StartServer waits for the server to accept
// connections.
const startTimeout = 10 * time.Second

// HubUser is the user name of the hub's connection, in process or over the
// network (NewHub). It can never be a valid agent ID.
const HubUser = "mig-hub"

// hubUser is HubUser, under the name the package has always used.
const hubUser = HubUser

// ErrConfig is wrapped by StartServer's errors about its configuration.
var ErrConfig = errors.New("invalid relay server configuration")

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Listen is the host:port clients connect to; port 0 picks a free port.
	Listen string
	// TLS, if set, makes clients connect over TLS with this configuration.
	TLS *tls.Config
	// Authenticate reports whether password is agentID's relay password.
	// It is called for every agent connection, from many goroutines at once,
	// with agentID already checked by relay.CheckAgentID. Required.
	Authenticate func(agentID, password string) bool
	// MaxPayload is the largest message in bytes; zero means
	// DefaultMaxPayload. It must be at least action.MaxMessageSize.
	MaxPayload int32
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// MaxConnections bounds the number of client connections; zero means
	// the nats-server default (64K).
	MaxConnections int
	// HubPassword is the password of HubUser; "" makes a random one. Nodes
	// of one cluster share it, so that a hub connected to the cluster over
	// the network can reconnect to any node.
	HubPassword string
	// Cluster, if set, makes this server one node of a NATS cluster.
	Cluster *ClusterConfig
}

// ClusterConfig makes the embedded server a node of a NATS cluster: each
// mig-server (or relay process) runs one node, agents and hubs connect to
// any of them, and the nodes route messages between themselves. Every node
// authenticates agents itself (ServerConfig.Authenticate against the shared
// store), so agents keep their own credentials and permissions on every
// node. There is no JetStream: the relay keeps nothing (see the package
// doc), so a node can restart without losing more than messages in flight.
type ClusterConfig struct {
	// Name is the cluster's name, the same on every node.
	Name string
	// NodeName is this node's name, unique in the cluster.
	NodeName string
	// Listen is the host:port other nodes connect to; port 0 picks a
	// free port.
	Listen string
	// Routes are the other nodes' route URLs, "nats-route://host:port".
	// Nodes learn the rest of the cluster from the ones they reach.
	Routes []string
	// User and Password authenticate nodes to each other; the same on every
	// node. Required.
	User, Password string
	// TLS, if set, protects routes; it must verify the other nodes'
	// certificates and present this node's.
	TLS *tls.Config
}

// Server is an embedded NATS server acting as MIG's relay.
type Server struct {
	ns      *server.Server
	log     *slog.Logger
	hubPass string
}

// StartServer starts an embedded NATS server (no cluster, no JetStream) that
// authenticates agents with cfg.Authenticate, and waits until it accepts
// connections.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.Authenticate == nil {
		return nil, fmt.Errorf("%w: Authenticate is nil", ErrConfig)
	}
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: listen address %q: %w", ErrConfig, cfg.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("%w: listen address %q: bad port %q", ErrConfig, cfg.Listen, portText)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.MaxPayload < action.MaxMessageSize {
		return nil, fmt.Errorf("%w: MaxPayload %d is under action.MaxMessageSize (%d)",
			ErrConfig, cfg.MaxPayload, action.MaxMessageSize)
	}
	if cfg.MaxConnections < 0 {
		return nil, fmt.Errorf("%w: MaxConnections %d is negative", ErrConfig, cfg.MaxConnections)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "natsrelay")

	hubPass := cfg.HubPassword
	if hubPass == "" {
		if hubPass, err = relay.NewPassword(); err != nil {
			return nil, fmt.Errorf("making the hub password: %w", err)
		}
	}
	opts := &server.Options{
		ServerName:      "mig-relay",
		Host:            host,
		Port:            port,
		NoSigs:          true,
		NoSystemAccount: true,
		MaxPayload:      cfg.MaxPayload,
		MaxPending:      4 * int64(cfg.MaxPayload),
		MaxConn:         cfg.MaxConnections,
		MaxSubs:         maxSubscriptions,
		CustomClientAuthentication: &authenticator{
			hubPass: hubPass,
			check:   cfg.Authenticate,
			log:     log,
		},
	}
	if cfg.TLS != nil {
		opts.TLS = true
		opts.TLSConfig = cfg.TLS
		opts.TLSTimeout = 5
	}
	if cfg.Cluster != nil {
		if err := clusterOptions(opts, cfg.Cluster); err != nil {
			return nil, err
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("creating the relay server on %s: %w", cfg.Listen, err)
	}
	ns.SetLoggerV2(&logAdapter{log: log}, log.Enabled(context.Background(), slog.LevelDebug), false, false)
	ns.Start()
	if !ns.ReadyForConnections(startTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("relay server on %s did not start within %s", cfg.Listen, startTimeout)
	}
	log.Info("relay server started", "url", ns.ClientURL())
	return &Server{ns: ns, log: log, hubPass: hubPass}, nil
}

// ClientURL returns the URL clients connect to, with the actual port.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// RouteURL returns the URL other cluster nodes connect to, with the actual
// port, or "" if the server is not a cluster node.
func (s *Server) RouteURL() string {
	a := s.ns.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats-route://" + a.String()
}

// NumRoutes returns how many other cluster nodes this node is connected to.
func (s *Server) NumRoutes() int { return s.ns.NumRoutes() }

// clusterOptions adds c to opts after checking it.
func clusterOptions(opts *server.Options, c *ClusterConfig) error {
	if c.Name == "" || c.NodeName == "" {
		return fmt.Errorf("%w: a cluster node needs a cluster name and a node name", ErrConfig)
	}
	if c.User == "" || c.Password == "" {
		return fmt.Errorf("%w: cluster %s: routes need a user and a password", ErrConfig, c.Name)
	}
	host, portText, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("%w: cluster listen address %q: %w", ErrConfig, c.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("%w: cluster listen address %q: bad port %q", ErrConfig, c.Listen, portText)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "nats-route" || u.Host == "" {
			return fmt.Errorf("%w: route %q: want nats-route://host:port", ErrConfig, r)
		}
		if u.User == nil {
			u.User = url.UserPassword(c.User, c.Password)
		}
		opts.Routes = append(opts.Routes, u)
	}
	opts.ServerName = c.NodeName
	opts.Cluster = server.ClusterOpts{
		Name:     c.Name,
		Host:     host,
		Port:     port,
		Username: c.User,
		Password: c.Password,
	}
	if c.TLS != nil {
		opts.Cluster.TLSConfig = c.TLS
		opts.Cluster.TLSTimeout = 5
	}
	return nil
}

// NewHub returns a hub on an in-process connection with full permissions.
// The hub stops working when the server shuts down.
func (s *Server) NewHub(ctx context.Context) (relay.Hub, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	addr := s.ns.Addr()
	if addr == nil {
		return nil, fmt.Errorf("connecting the in-process hub: %w: the relay server is not running", relay.ErrClosed)
	}
	// The URL only names the server: the connection is a pipe inside this
	// process. It is nats:// even when clients must use TLS, because the
	// server does not require TLS in process and encrypting a pipe would
	// only cost CPU on the hot path.
	h, err := connectHub(ctx, "nats://"+addr.String(), s.log,
		nats.InProcessServer(s.ns),
		nats.UserInfo(hubUser, s.hubPass),
		nats.NoReconnect(),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting the in-process hub: %w", err)
	}
	return h, nil
}

// Shutdown stops the server, closing every client connection, and waits
// until it has stopped.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.log.Info("relay server stopped")
}

// authenticator is the embedded server's client authentication.
type authenticator struct {
	hubPass string
	check   func(agentID, password string) bool
	log     *slog.Logger
}

// Check implements server.Authentication.
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	if c.Kind() != server.CLIENT {
		return false
	}
	o := c.GetOpts()
	if o == nil {
		return false
	}
	u, ok := a.authorize(o.Username, o.Password)
	if !ok {
		a.log.Debug("relay client refused", "user", o.Username, "remote", remoteAddr(c))
		return false
	}
	c.RegisterUser(u)
	return true
}

// authorize decides whether user may connect with password, and with which
// permissions: full ones for the hub's internal user, the agent's own
// subjects for an agent.
func (a *authenticator) authorize(user, password string) (*server.User, bool) {
	if user == hubUser {
		if subtle.ConstantTimeCompare([]byte(password), []byte(a.hubPass)) != 1 {
			return nil, false
		}
		return &server.User{Username: hubUser}, true
	}
	if relay.CheckAgentID(user) != nil || !a.check(user, password) {
		return nil, false
	}
	return &server.User{Username: user, Permissions: agentPermissions(user)}, true
}

// agentPermissions returns what agent id may do: read its own inbox and
// publish its own results and heartbeats. Nothing else, in particular no
// responses to reply subjects and no _INBOX subscriptions. id must have
// passed relay.CheckAgentID.
func agentPermissions(id string) *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			serverPrefix + relay.KindResult + "." + id,
			serverPrefix + relay.KindHeartbeat + "." + id,
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{agentSubscription(id)}},
	}
}

func remoteAddr(c server.ClientAuthentication) string {
	if a := c.RemoteAddress(); a != nil {
		return a.String()
	}
	return ""
}

// logAdapter sends nats-server's logs to slog, with a constant message and
// the server's text as an attribute.
type logAdapter struct{ log *slog.Logger }

func (l *logAdapter) Noticef(format string, v ...any) {
	l.log.Info("nats server", "detail", fmt.Sprintf(format, v...))
}

func (l *logAdapter) Warnf(format string, v ...any) {
	l.log.Warn("nats server", "detail", fmt.Sprintf(format, v...))
}

// Fatalf logs at error level; unlike nats-server's own logger it does not
// exit the process.
func (l *logAdapter) Fatalf(format string, v ...any) {
	l.log.Error("nats server fatal", "detail", fmt.Sprintf(format, v...))
}

func (l *logAdapter) Errorf(format string, v ...any) {
	l.log.Error("nats server", "detail", fmt.Sprintf(format, v...))
}

func (l *logAdapter) Debugf(format string, v ...any) {
	l.log.Debug("nats server", "detail", fmt.Sprintf(format, v...))
}

func (l *logAdapter) Tracef(format string, v ...any) {
	l.log.Debug("nats server trace", "detail", fmt.Sprintf(format, v...))
}
