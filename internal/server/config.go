// Package server assembles mig-server: the API, the scheduler, the store and
// the relay in one process, from a typed configuration (defaults, then a JSON
// file, then MIG_SERVER_* environment variables, then flags), and the -dev
// mode that runs a whole platform on loopback with one local agent.
package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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
	} `json:"api"`
	// Relay configures the embedded NATS relay that agents connect to, or
	// the external NATS (cluster) the server uses instead.
	Relay struct {
		// URL, when set, is an external NATS (nats://host:4222 or
		// tls://..., several comma-separated for a cluster): no relay is
		// embedded, the server connects to it as User with Password and
		// receives in the queue group shared by every mig-server. Agents'
		// per-agent permissions then come from that NATS's own
		// configuration (see internal/relay/natsrelay).
		URL      string `json:"url"`
		User     string `json:"user"`
		Password string `json:"password"`
		// ManagementURL, with an amqp:// or amqps:// URL, is RabbitMQ's
		// management API (https://admin:password@rabbit:15671) through which
		// the server creates one RabbitMQ user per agent at enrollment.
		ManagementURL string `json:"managementurl"`
		Listen        string `json:"listen"`
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

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	var c Config
	c.API.Listen = DefaultAPIAddr
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
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("config %s: data after the JSON object", path)
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
