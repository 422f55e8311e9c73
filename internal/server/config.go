// Package server assembles mig-server: the API, the scheduler, the store and
// the relay in one process, from a typed configuration (defaults, then a JSON
// file, then MIG_SERVER_* environment variables, then flags), and the -dev
// mode that runs a whole platform on loopback with one local agent.
package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/migplatform/mig/internal/api"
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/natsrelay"
	"github.com/migplatform/mig/internal/strictjson"
)

// Default ports. They stay clear of the standard ports of NATS (4222),
// PostgreSQL (5432) and RabbitMQ (5672).
const (
	DefaultAPIAddr   = "127.0.0.1:12664"
	DefaultRelayAddr = "127.0.0.1:12222"
)

// Duration is a time.Duration that reads and writes as "1m30s" in JSON.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"90s\": %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %v", s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config is mig-server's configuration.
type Config struct {
	// API is where the HTTPS API listens.
	API struct {
		Listen string `json:"listen"`
		Cert   string `json:"cert"` // PEM certificate chain
		Key    string `json:"key"`  // PEM private key
		// TrustedProxies are the load balancers or reverse proxies in
		// front of the API, as IP addresses or networks ("10.0.0.0/8"):
		// only a request from one of them has its X-Forwarded-For read,
		// to find the client's address for the API key failure limit.
		// Default none: the header is ignored, since clients can write it.
		TrustedProxies []string `json:"trustedproxies"`
		// MaxConnections bounds the API's open connections; default
		// 10000. A connection over it is closed at once.
		MaxConnections int `json:"maxconnections"`
		// MaxConnectionsPerAddress bounds the open connections from one
		// client address (trusted proxies are exempt); default 256. It is
		// what keeps one flooding or slow client from taking the API's
		// connections from everyone else.
		MaxConnectionsPerAddress int `json:"maxconnectionsperaddress"`
		// ReadHeaderTimeout bounds the TLS handshake and the reading of a
		// request's headers (default 10s); ReadTimeout the whole request,
		// body included (default 1m); WriteTimeout the response (default
		// 5m); IdleTimeout how long a kept-alive connection may wait for
		// its next request (default 2m). They bound what a slow client
		// holds.
		ReadHeaderTimeout Duration `json:"readheadertimeout"`
		ReadTimeout       Duration `json:"readtimeout"`
		WriteTimeout      Duration `json:"writetimeout"`
		IdleTimeout       Duration `json:"idletimeout"`
	} `json:"api"`
	// Relay configures the embedded NATS relay that agents connect to, or
	// the external NATS (cluster) the server uses instead.
	Relay struct {
		// URL, when set, is an external NATS (nats://host:4222 or
		// tls://..., several comma-separated for a cluster): no relay is
		// embedded, the server connects to it as User with Password and
		// receives in the queue group shared by every mig-server. Agents
		// log in with their own credentials when CalloutIssuer is set
		// (mig-server answers the NATS's auth callout); otherwise their
		// per-agent permissions must come from that NATS's own
		// configuration.
		URL      string `json:"url"`
		User     string `json:"user"`
		Password string `json:"password"`
		// CalloutIssuer, with an external NATS, is a file holding the nkey
		// seed ("SA...") of the NATS's auth_callout issuer: mig-server then
		// answers the NATS's authorization requests, checking each agent's
		// password against the store and granting it its own subjects
		// only. "mig-server -gen-callout-key DIR" makes the keys and prints
		// the nats-server configuration.
		CalloutIssuer string `json:"calloutissuer"`
		// CalloutXKey is a file holding the seed ("SX...") of the
		// auth_callout's xkey: requests, which carry agents' passwords,
		// arrive encrypted to it. Recommended.
		CalloutXKey string `json:"calloutxkey"`
		// CalloutAccount is the NATS account agents are placed in, the one
		// User is in; default "$G" (users configured without accounts).
		CalloutAccount string `json:"calloutaccount"`
		// CalloutTTL is how long an agent's login lasts before the NATS
		// asks again, and so how long a revoked agent may stay connected;
		// default 10m, at least 1m.
		CalloutTTL Duration `json:"calloutttl"`
		// Cluster makes the embedded relay one node of a NATS cluster
		// formed by several mig-server processes; see RelayCluster.
		Cluster RelayCluster `json:"cluster"`
		// ManagementURL, with an amqp:// or amqps:// URL, is RabbitMQ's
		// management API (https://admin:password@rabbit:15671) through which
		// the server creates one RabbitMQ user per agent at enrollment.
		ManagementURL string `json:"managementurl"`
		Listen        string `json:"listen"`
		// MaxConnections bounds the embedded relay's client connections
		// (agents, and logins in progress); default 0, NATS's own bound
		// (65536). Connections over it are refused at once. Connections
		// that never log in are closed after 6 seconds.
		MaxConnections int `json:"maxconnections"`
		// PublicURL is the URL handed to agents at enrollment; default
		// "tls://<listen>", or URL with an external relay.
		PublicURL string `json:"publicurl"`
		// CA is a PEM file agents use to verify the relay's certificate
		// (the API's certificate is reused for the relay).
		CA string `json:"ca"`
	} `json:"relay"`
	// Store selects the database: "sqlite:/path/to/mig.db", or
	// "postgres://user:password@host:5432/mig?sslmode=verify-full&sslrootcert=/etc/mig/pg-ca.pem"
	// (any connection string pgx accepts, with its TLS settings sslmode,
	// sslrootcert, sslcert, sslkey and its pool settings such as
	// pool_max_conns).
	Store string `json:"store"`
	// EnrollmentTokens are the secrets agents present to enroll.
	EnrollmentTokens []string `json:"enrollmenttokens"`
	// Agents ages agents by heartbeat.
	Agents struct {
		OnlineWindow Duration `json:"onlinewindow"`
		IdleWindow   Duration `json:"idlewindow"`
	} `json:"agents"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"loglevel"`
}

// RelayCluster makes the embedded relay a node of a NATS cluster: several
// mig-server processes, each with its own node, route messages between
// them, and every node checks agents against the shared store (PostgreSQL).
// The cluster is on when Listen is set.
type RelayCluster struct {
	// Name is the cluster's name, the same on every node.
	Name string `json:"name"`
	// NodeName is this node's name, unique in the cluster; default the
	// host name and the port of relay.listen.
	NodeName string `json:"nodename"`
	// Listen is the host:port other nodes connect to (NATS uses 6222).
	Listen string `json:"listen"`
	// Routes are the other nodes' route URLs, nats-route://host:port;
	// nodes learn the rest of the cluster from the ones they reach.
	Routes []string `json:"routes"`
	// User and Password authenticate nodes to each other, the same on
	// every node.
	User     string `json:"user"`
	Password string `json:"password"`
	// TLS protects the routes: each node presents Cert (default api.cert)
	// with Key (default api.key) and requires the other nodes' certificates
	// to verify against CA. Set CA to turn TLS on; strongly recommended
	// beyond one host, since commands and results cross the routes.
	TLS struct {
		Cert string `json:"cert"`
		Key  string `json:"key"`
		CA   string `json:"ca"`
	} `json:"tls"`
}

// enabled reports whether the cluster is configured.
func (c *RelayCluster) enabled() bool { return c.Listen != "" }

// set reports whether any cluster setting is set.
func (c *RelayCluster) set() bool {
	return c.Name != "" || c.NodeName != "" || c.Listen != "" || len(c.Routes) > 0 || c.User != "" ||
		c.Password != "" || c.TLS.Cert != "" || c.TLS.Key != "" || c.TLS.CA != ""
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	var c Config
	c.API.Listen = DefaultAPIAddr
	c.API.MaxConnections = 10000
	c.API.MaxConnectionsPerAddress = 256
	c.API.ReadHeaderTimeout = Duration(10 * time.Second)
	c.API.ReadTimeout = Duration(time.Minute)
	c.API.WriteTimeout = Duration(5 * time.Minute)
	c.API.IdleTimeout = Duration(2 * time.Minute)
	c.Relay.Listen = DefaultRelayAddr
	c.Agents.OnlineWindow = Duration(3 * time.Minute)
	c.Agents.IdleWindow = Duration(time.Hour)
	c.LogLevel = "info"
	return c
}

// LoadConfigFile reads a JSON config over c. Unknown keys are errors that
// name the file.
func LoadConfigFile(c *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := strictjson.Decode(data, c); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// ApplyEnv applies MIG_SERVER_* environment variables over c.
func ApplyEnv(c *Config, getenv func(string) string) {
	set := func(key string, dst *string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	set("MIG_SERVER_API_LISTEN", &c.API.Listen)
	set("MIG_SERVER_RELAY_LISTEN", &c.Relay.Listen)
	set("MIG_SERVER_RELAY_PUBLICURL", &c.Relay.PublicURL)
	set("MIG_SERVER_STORE", &c.Store)
	set("MIG_SERVER_RELAY_URL", &c.Relay.URL)
	set("MIG_SERVER_RELAY_MANAGEMENTURL", &c.Relay.ManagementURL)
	set("MIG_SERVER_RELAY_USER", &c.Relay.User)
	set("MIG_SERVER_RELAY_PASSWORD", &c.Relay.Password)
	set("MIG_SERVER_LOGLEVEL", &c.LogLevel)
	set("MIG_SERVER_RELAY_CALLOUTISSUER", &c.Relay.CalloutIssuer)
	set("MIG_SERVER_RELAY_CALLOUTXKEY", &c.Relay.CalloutXKey)
	set("MIG_SERVER_RELAY_CALLOUTACCOUNT", &c.Relay.CalloutAccount)
	set("MIG_SERVER_RELAY_CLUSTER_NAME", &c.Relay.Cluster.Name)
	set("MIG_SERVER_RELAY_CLUSTER_NODENAME", &c.Relay.Cluster.NodeName)
	set("MIG_SERVER_RELAY_CLUSTER_LISTEN", &c.Relay.Cluster.Listen)
	set("MIG_SERVER_RELAY_CLUSTER_USER", &c.Relay.Cluster.User)
	set("MIG_SERVER_RELAY_CLUSTER_PASSWORD", &c.Relay.Cluster.Password)
	if v := getenv("MIG_SERVER_RELAY_CLUSTER_ROUTES"); v != "" {
		c.Relay.Cluster.Routes = nil
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				c.Relay.Cluster.Routes = append(c.Relay.Cluster.Routes, r)
			}
		}
	}
	if v := getenv("MIG_SERVER_API_TRUSTEDPROXIES"); v != "" {
		c.API.TrustedProxies = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.API.TrustedProxies = append(c.API.TrustedProxies, p)
			}
		}
	}
	if v := getenv("MIG_SERVER_ENROLLMENT_TOKEN"); v != "" {
		c.EnrollmentTokens = append(c.EnrollmentTokens, v)
	}
}

// Validate checks the configuration once; errors name the setting.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.API.Listen); err != nil {
		errs = append(errs, fmt.Errorf("api.listen %q: %v", c.API.Listen, err))
	}
	if _, err := api.ParseTrustedProxies(c.API.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("api.trustedproxies: %w", err))
	}
	if c.Relay.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("relay.maxconnections %d: must not be negative", c.Relay.MaxConnections))
	}
	if c.API.MaxConnections < 1 {
		errs = append(errs, fmt.Errorf("api.maxconnections %d: must be at least 1", c.API.MaxConnections))
	}
	if c.API.MaxConnectionsPerAddress < 1 || c.API.MaxConnectionsPerAddress > c.API.MaxConnections {
		errs = append(errs, fmt.Errorf("api.maxconnectionsperaddress %d: must be between 1 and api.maxconnections (%d)",
			c.API.MaxConnectionsPerAddress, c.API.MaxConnections))
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"readheadertimeout", c.API.ReadHeaderTimeout}, {"readtimeout", c.API.ReadTimeout},
		{"writetimeout", c.API.WriteTimeout}, {"idletimeout", c.API.IdleTimeout}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("api.%s %s: must be positive", d.name, time.Duration(d.v)))
		}
	}
	if c.Relay.URL == "" {
		if _, _, err := net.SplitHostPort(c.Relay.Listen); err != nil {
			errs = append(errs, fmt.Errorf("relay.listen %q: %v", c.Relay.Listen, err))
		}
	} else if err := checkRelayURL(c.Relay.URL); err != nil {
		errs = append(errs, fmt.Errorf("relay.url: %w", err))
	} else if isAMQPURL(c.Relay.URL) {
		if strings.Contains(c.Relay.URL, ",") {
			errs = append(errs, errors.New("relay.url: one amqp:// URL only (put a RabbitMQ cluster behind one address)"))
		}
		if c.Relay.ManagementURL == "" {
			errs = append(errs, errors.New("relay.managementurl: required with a RabbitMQ relay, to give each agent its own RabbitMQ user"))
		}
	}
	errs = append(errs, c.validateCallout()...)
	errs = append(errs, c.validateCluster()...)
	if c.API.Cert == "" || c.API.Key == "" {
		errs = append(errs, errors.New("api.cert and api.key are required (the API is served over TLS only)"))
	}
	if err := checkStore(c.Store); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	if len(c.EnrollmentTokens) == 0 {
		errs = append(errs, errors.New("enrollmenttokens: at least one token is required for agents to enroll"))
	}
	for i, t := range c.EnrollmentTokens {
		if len(t) < 16 {
			errs = append(errs, fmt.Errorf("enrollmenttokens[%d]: shorter than 16 characters", i))
		}
	}
	if c.Agents.OnlineWindow <= 0 || c.Agents.IdleWindow <= c.Agents.OnlineWindow {
		errs = append(errs, fmt.Errorf("agents: onlinewindow %s must be positive and below idlewindow %s",
			time.Duration(c.Agents.OnlineWindow), time.Duration(c.Agents.IdleWindow)))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("loglevel %q: want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// isPostgres reports whether a store setting names PostgreSQL.
func isPostgres(store string) bool {
	return strings.HasPrefix(store, "postgres://") || strings.HasPrefix(store, "postgresql://")
}

// checkStore checks a store setting: sqlite:PATH or a PostgreSQL URL that
// pgx can parse. Errors never repeat a password.
func checkStore(store string) error {
	switch {
	case strings.HasPrefix(store, "sqlite:"):
		if strings.TrimPrefix(store, "sqlite:") == "" {
			return fmt.Errorf("%q: the sqlite path is empty", store)
		}
		return nil
	case isPostgres(store):
		if _, err := pgxpool.ParseConfig(store); err != nil {
			return fmt.Errorf("postgres URL: %w", err)
		}
		return nil
	}
	shown := store
	if u, err := url.Parse(store); err == nil {
		shown = u.Redacted()
	}
	return fmt.Errorf("%q: want sqlite:/path/to/mig.db or postgres://user@host/db", shown)
}

// checkRelayURL checks an external relay URL: one or more nats:// or tls://
// URLs, comma-separated, each with a host.
func checkRelayURL(s string) error {
	for _, one := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil {
			// url.Error repeats the URL, which may hold a password.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return fmt.Errorf("a URL does not parse: %w", err)
		}
		if u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls" && !isAMQP(u.Scheme)) {
			return fmt.Errorf("%q: want nats://host:port, tls://host:port, amqp://host:port/vhost or amqps://host:port/vhost", u.Redacted())
		}
	}
	return nil
}

func isAMQP(scheme string) bool { return scheme == "amqp" || scheme == "amqps" }

// isAMQPURL reports whether a relay URL names RabbitMQ.
func isAMQPURL(s string) bool {
	return strings.HasPrefix(s, "amqp://") || strings.HasPrefix(s, "amqps://")
}

// Bounds of relay.calloutttl.
const (
	minCalloutTTL = time.Minute
	maxCalloutTTL = 24 * time.Hour
)

// validateCallout checks the relay.callout* settings.
func (c *Config) validateCallout() []error {
	r := &c.Relay
	if r.CalloutIssuer == "" {
		var errs []error
		if r.CalloutXKey != "" || r.CalloutAccount != "" || r.CalloutTTL != 0 {
			errs = append(errs, errors.New("relay.calloutxkey, relay.calloutaccount and relay.calloutttl need relay.calloutissuer"))
		}
		return errs
	}
	var errs []error
	if r.URL == "" || isAMQPURL(r.URL) {
		errs = append(errs, errors.New("relay.calloutissuer: only with an external NATS (relay.url nats:// or tls://); "+
			"the embedded relay checks agents itself and RabbitMQ has a user per agent"))
	}
	if r.User == "" || r.Password == "" {
		errs = append(errs, errors.New("relay.calloutissuer: relay.user and relay.password are required "+
			"(a user in the NATS's auth_callout auth_users, which answers the callout)"))
	}
	if r.CalloutTTL != 0 && (time.Duration(r.CalloutTTL) < minCalloutTTL || time.Duration(r.CalloutTTL) > maxCalloutTTL) {
		errs = append(errs, fmt.Errorf("relay.calloutttl %s: want between %s and %s",
			time.Duration(r.CalloutTTL), minCalloutTTL, maxCalloutTTL))
	}
	if strings.ContainsAny(r.CalloutAccount, " \t\r\n.*>") {
		errs = append(errs, fmt.Errorf("relay.calloutaccount %q: not a NATS account name", r.CalloutAccount))
	}
	return errs
}

// validateCluster checks relay.cluster.
func (c *Config) validateCluster() []error {
	cl := &c.Relay.Cluster
	if !cl.set() {
		return nil
	}
	if !cl.enabled() {
		return []error{errors.New("relay.cluster.listen: required to make the embedded relay a cluster node (other relay.cluster settings are set)")}
	}
	var errs []error
	if c.Relay.URL != "" {
		errs = append(errs, errors.New("relay.cluster: only with the embedded relay, not with relay.url "+
			"(an external NATS cluster is configured in nats-server)"))
	}
	if !isPostgres(c.Store) {
		errs = append(errs, errors.New("relay.cluster: the servers of a cluster need a shared store (store: postgres://...)"))
	}
	if cl.Name == "" {
		errs = append(errs, errors.New("relay.cluster.name: required, the same on every node"))
	} else if strings.ContainsAny(cl.Name, " \t\r\n") {
		errs = append(errs, fmt.Errorf("relay.cluster.name %q: no spaces", cl.Name))
	}
	if strings.ContainsAny(cl.NodeName, " \t\r\n") {
		errs = append(errs, fmt.Errorf("relay.cluster.nodename %q: no spaces", cl.NodeName))
	}
	if _, port, err := net.SplitHostPort(cl.Listen); err != nil {
		errs = append(errs, fmt.Errorf("relay.cluster.listen %q: %v", cl.Listen, err))
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		errs = append(errs, fmt.Errorf("relay.cluster.listen %q: bad port", cl.Listen))
	}
	if cl.User == "" {
		errs = append(errs, errors.New("relay.cluster.user: required, the same on every node"))
	}
	if len(cl.Password) < 16 {
		errs = append(errs, errors.New("relay.cluster.password: required, at least 16 characters, the same on every node"))
	}
	for i, r := range cl.Routes {
		u, err := url.Parse(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("relay.cluster.routes[%d]: does not parse, want nats-route://host:port", i))
		} else if u.Scheme != "nats-route" || u.Host == "" || u.Port() == "" {
			errs = append(errs, fmt.Errorf("relay.cluster.routes[%d] %q: want nats-route://host:port", i, u.Redacted()))
		} else if u.User != nil {
			errs = append(errs, fmt.Errorf("relay.cluster.routes[%d] %q: no credentials in routes (relay.cluster.user and password are used)", i, u.Redacted()))
		}
	}
	if (cl.TLS.Cert != "" || cl.TLS.Key != "") && cl.TLS.CA == "" {
		errs = append(errs, errors.New("relay.cluster.tls.ca: required with relay.cluster.tls.cert or key, to verify the other nodes"))
	}
	if (cl.TLS.Cert == "") != (cl.TLS.Key == "") {
		errs = append(errs, errors.New("relay.cluster.tls: cert and key go together (both default to api.cert and api.key)"))
	}
	return errs
}

// Files GenCalloutKeys writes.
const (
	CalloutIssuerFile = "callout-issuer.nk"
	CalloutXKeyFile   = "callout-xkey.nk"
)

// GenCalloutKeys makes the auth callout's issuer and xkey in dir (created
// if needed, files mode 0600, never overwritten) and a password for the hub,
// and writes to w the nats-server configuration to add on every node and
// the relay settings of mig-server's configuration.
func GenCalloutKeys(dir string, w io.Writer) error {
	if dir == "" {
		return errors.New("-gen-callout-key: give the directory to write the keys in")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("-gen-callout-key: %w", err)
	}
	issuerSeed, xkeySeed, err := natsrelay.NewCalloutKeys()
	if err != nil {
		return err
	}
	issuer, err := natsrelay.ParseCalloutIssuer(issuerSeed)
	if err != nil {
		return err
	}
	xkey, err := natsrelay.ParseCalloutXKey(xkeySeed)
	if err != nil {
		return err
	}
	issuerPub, _ := issuer.PublicKey()
	xkeyPub, _ := xkey.PublicKey()
	hubPass, err := relay.NewPassword()
	if err != nil {
		return err
	}
	natsConf, err := natsrelay.CalloutNATSConfig(natsrelay.CalloutNATSOptions{Issuer: issuerPub, XKey: xkeyPub, HubPassword: hubPass})
	if err != nil {
		return err
	}
	issuerPath, xkeyPath := filepath.Join(dir, CalloutIssuerFile), filepath.Join(dir, CalloutXKeyFile)
	for _, p := range []string{issuerPath, xkeyPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("-gen-callout-key: %s exists; not overwriting a key nats-servers may trust", p)
		}
	}
	if err := writeNewFile(issuerPath, append(issuerSeed, '\n')); err != nil {
		return err
	}
	if err := writeNewFile(xkeyPath, append(xkeySeed, '\n')); err != nil {
		_ = os.Remove(issuerPath)
		return err
	}
	var rc struct {
		URL           string `json:"url"`
		User          string `json:"user"`
		Password      string `json:"password"`
		CalloutIssuer string `json:"calloutissuer"`
		CalloutXKey   string `json:"calloutxkey"`
	}
	rc.URL = "tls://nats1.example.net:4222,tls://nats2.example.net:4222,tls://nats3.example.net:4222"
	rc.User, rc.Password = natsrelay.HubUser, hubPass
	rc.CalloutIssuer, rc.CalloutXKey = issuerPath, xkeyPath
	if abs, err := filepath.Abs(issuerPath); err == nil {
		rc.CalloutIssuer = abs
	}
	if abs, err := filepath.Abs(xkeyPath); err == nil {
		rc.CalloutXKey = abs
	}
	relayJSON, err := json.MarshalIndent(map[string]any{"relay": rc}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, `Wrote %s (issuer %s)
  and %s (xkey %s).
Keep them, and the password below, secret.

Add this to the configuration of every nats-server node (v2.10 or later):

%s
and this to every mig-server's configuration (with your NATS URLs):

%s
`, issuerPath, issuerPub, xkeyPath, xkeyPub, natsConf, relayJSON)
	return err
}

// writeNewFile creates path, which must not exist, with mode 0600.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		_ = os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}
