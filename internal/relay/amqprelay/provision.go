package amqprelay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/relay"
)

// ErrManagement is wrapped by the Provisioner's errors about a request the
// RabbitMQ management API refused or could not answer.
var ErrManagement = errors.New("rabbitmq management api error")

// managementTimeout bounds one management API request when the caller's
// context has no deadline.
const managementTimeout = 30 * time.Second

// ProvisionerConfig configures a Provisioner.
type ProvisionerConfig struct {
	// ManagementURL is the base URL of RabbitMQ's management HTTP API
	// with the credentials of a user tagged administrator, for example
	// "https://mig-server:secret@rabbit.example.net:15671".
	ManagementURL string
	// VHost is the virtual host of the relay, as in the agents' AMQP URL;
	// "" means "/".
	VHost string
	// HTTPClient makes the requests; nil means a client with a 30-second
	// timeout.
	HTTPClient *http.Client
	// Logger receives the Provisioner's logs; nil discards them.
	Logger *slog.Logger
}

// Provisioner gives each agent its own RabbitMQ user through the management
// HTTP API (plugin rabbitmq_management): mig-server calls AddAgent when it
// enrolls an agent and RemoveAgent when it revokes one. RabbitMQ then
// authenticates and authorizes agents by itself, with no call back to
// mig-server.
type Provisioner struct {
	base   string // scheme://host[:port][/prefix], no trailing slash
	user   string
	pass   string
	vhost  string
	client *http.Client
	log    *slog.Logger
}

// NewProvisioner checks cfg and returns a Provisioner. It makes no request.
func NewProvisioner(cfg ProvisionerConfig) (*Provisioner, error) {
	u, err := url.Parse(cfg.ManagementURL)
	if err != nil {
		return nil, fmt.Errorf("management url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("management url %s://%s: want http(s)://user:password@host:port", u.Scheme, u.Host)
	}
	if u.User == nil {
		return nil, fmt.Errorf("management url %s: no user and password", u.Redacted())
	}
	pass, _ := u.User.Password()
	p := &Provisioner{
		base:   u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/"),
		user:   u.User.Username(),
		pass:   pass,
		vhost:  cfg.VHost,
		client: cfg.HTTPClient,
		log:    cfg.Logger,
	}
	if p.vhost == "" {
		p.vhost = "/"
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: managementTimeout}
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("component", "amqprelay")
	return p, nil
}

// AgentPermissions are the permissions the Provisioner gives agent id, as
// RabbitMQ regular expressions: configure nothing, write only to the server
// exchange, read only its own queue; on the server exchange (a topic
// permission), publish only its own result and heartbeat routing keys.
type AgentPermissions struct {
	Configure, Write, Read string
	TopicWrite, TopicRead  string
}

// PermissionsFor returns agent id's permissions. id must have passed
// relay.CheckAgentID.
func PermissionsFor(id string) AgentPermissions {
	return AgentPermissions{
		Configure:  "^$",
		Write:      "^" + regexp.QuoteMeta(ServerExchange) + "$",
		Read:       "^" + regexp.QuoteMeta(AgentQueue(id)) + "$",
		TopicWrite: "^(" + relay.KindResult + "|" + relay.KindHeartbeat + `)\.` + id + "$",
		TopicRead:  "^$",
	}
}

// AddAgent creates or updates agent id's RabbitMQ user with password (sent
// as a salted SHA-256 hash, never in clear), sets its permissions, and
// declares its queue bound to the agent exchange, so that commands sent
// before it first connects wait for it. It is idempotent.
func (p *Provisioner) AddAgent(ctx context.Context, id, password string) error {
	if err := relay.CheckAgentID(id); err != nil {
		return err
	}
	if password == "" {
		return fmt.Errorf("%w: agent %s: empty password", ErrCredentials, id)
	}
	hash, err := passwordHash(password)
	if err != nil {
		return err
	}
	vh := url.PathEscape(p.vhost)
	perms := PermissionsFor(id)
	steps := []struct {
		method, path string
		body         any
	}{
		{http.MethodPut, "/api/exchanges/" + vh + "/" + AgentExchange, map[string]any{"type": "direct", "durable": true}},
		{http.MethodPut, "/api/exchanges/" + vh + "/" + ServerExchange, map[string]any{"type": "topic", "durable": true}},
		{http.MethodPut, "/api/queues/" + vh + "/" + AgentQueue(id), map[string]any{
			"durable":   true,
			"arguments": map[string]any{"x-queue-type": "classic", "x-max-length": AgentQueueMaxLength},
		}},
		{http.MethodPost, "/api/bindings/" + vh + "/e/" + AgentExchange + "/q/" + AgentQueue(id), map[string]any{"routing_key": id}},
		{http.MethodPut, "/api/users/" + id, map[string]any{
			"password_hash":     hash,
			"hashing_algorithm": "rabbit_password_hashing_sha256",
			"tags":              "",
		}},
		{http.MethodPut, "/api/permissions/" + vh + "/" + id, map[string]any{
			"configure": perms.Configure, "write": perms.Write, "read": perms.Read,
		}},
		{http.MethodPut, "/api/topic-permissions/" + vh + "/" + id, map[string]any{
			"exchange": ServerExchange, "write": perms.TopicWrite, "read": perms.TopicRead,
		}},
	}
	for _, s := range steps {
		if err := p.do(ctx, s.method, s.path, s.body); err != nil {
			return fmt.Errorf("provisioning agent %s: %w", id, err)
		}
	}
	p.log.Info("agent provisioned on the relay", "agent", id)
	return nil
}

// RemoveAgent deletes agent id's RabbitMQ user, closes its connections and
// deletes its queue. Missing pieces are not an error.
func (p *Provisioner) RemoveAgent(ctx context.Context, id string) error {
	if err := relay.CheckAgentID(id); err != nil {
		return err
	}
	vh := url.PathEscape(p.vhost)
	// The user goes first so that a closed connection cannot come back.
	// RabbitMQ answers 500 when a connection closes while it closes it:
	// try again, the second attempt finds none.
	if err := p.do(ctx, http.MethodDelete, "/api/users/"+id, nil); err != nil && !errors.Is(err, errNotFound) {
		return fmt.Errorf("removing agent %s: %w", id, err)
	}
	var err error
	for range 3 {
		if err = p.do(ctx, http.MethodDelete, "/api/connections/username/"+id, nil); err == nil || errors.Is(err, errNotFound) {
			break
		}
	}
	if err != nil && !errors.Is(err, errNotFound) {
		return fmt.Errorf("removing agent %s: %w", id, err)
	}
	if err := p.do(ctx, http.MethodDelete, "/api/queues/"+vh+"/"+AgentQueue(id), nil); err != nil && !errors.Is(err, errNotFound) {
		return fmt.Errorf("removing agent %s: %w", id, err)
	}
	p.log.Info("agent removed from the relay", "agent", id)
	return nil
}

// errNotFound is wrapped (with ErrManagement) by do's error for a 404.
var errNotFound = errors.New("not found")

// do sends one request with a JSON body, if any, and checks the status.
func (p *Provisioner) do(ctx context.Context, method, path string, body any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding the request body of %s %s: %w", method, path, err)
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := withTimeout(ctx, managementTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, r)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.SetBasicAuth(p.user, p.pass)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrManagement, method, path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %s %s: %w: %s", ErrManagement, method, path, errNotFound, bytes.TrimSpace(msg))
	default:
		return fmt.Errorf("%w: %s %s: %s: %s", ErrManagement, method, path, resp.Status, bytes.TrimSpace(msg))
	}
}

// passwordHash returns password hashed the way RabbitMQ's
// rabbit_password_hashing_sha256 stores it: base64 of a 4-byte random salt
// followed by SHA-256(salt ‖ password).
func passwordHash(password string) (string, error) {
	salt := make([]byte, 4)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("reading a random salt: %w", err)
	}
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(password))
	return base64.StdEncoding.EncodeToString(h.Sum(salt)), nil
}
