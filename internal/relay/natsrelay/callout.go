package natsrelay

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/natsconn"
)

// Auth callout: an operator-run nats-server (v2.10 or later) hands every
// login it does not know itself to mig-server, which checks the agent's
// password against the store and answers with a user JWT that grants
// exactly the agent's own subjects, the same ones the embedded relay grants
// (agentPermissions). The nats-server side is
//
//	authorization {
//	  users: [ { user: "mig-hub", password: "..." } ]
//	  auth_callout { issuer: <Callout issuer public key>, auth_users: [ "mig-hub" ], xkey: <public xkey> }
//	}
//
// (CalloutNATSConfig writes it). The server sends each request, a JWT it
// signs with its own server nkey, on CalloutSubject in the callout account;
// every mig-server answers in QueueGroup, so each request goes to one of
// them. What a Callout accepts from a request:
//
//   - the JWT verifies against its issuer, a server nkey, and the server ID
//     it names is that same key, so the answer can only be used by the
//     server that asked;
//   - its subject is this Callout's issuer, its audience is nats-server's
//     request audience, and it carries an expiry that has not passed (the
//     server gives each request its authorization timeout), so a request
//     recorded earlier is refused;
//   - with an xkey, it arrives encrypted to that key: the agent's password
//     never crosses the callout account in clear text;
//   - its user name is a well-formed agent ID and the password is that
//     agent's (ServerConfig.Authenticate's check, against the store).
//
// Anything else gets an error answer (or none, when the request cannot be
// decoded at all) and the server refuses the login. The user JWT places the
// agent in the hub's account, lasts CalloutConfig.TTL (the server
// disconnects the agent when it expires and the agent logs in again, so a
// revoked agent is gone within one TTL) and allows only standard client
// connections.

// CalloutSubject is the subject nats-server sends authorization requests on.
const CalloutSubject = "$SYS.REQ.USER.AUTH"

// calloutXKeyHeader is the header in which nats-server names its own xkey
// when it encrypts a request.
const calloutXKeyHeader = "Nats-Server-Xkey"

// calloutRequestAudience is the audience of nats-server's requests.
const calloutRequestAudience = "nats-authorization-request"

// GlobalAccount is the account of users configured without accounts, where
// a Callout places agents unless CalloutConfig.Account says otherwise.
const GlobalAccount = "$G"

// Callout defaults.
const (
	// DefaultCalloutTTL is how long a login granted by a Callout lasts.
	DefaultCalloutTTL = 10 * time.Minute
	// DefaultCalloutWorkers is how many requests a Callout checks at once.
	DefaultCalloutWorkers = 16
	// calloutQueueLen bounds the requests waiting for a worker; beyond it
	// the connection drops them (a slow consumer) and the logins time out
	// and are retried by the agents.
	calloutQueueLen = 4096
)

// ErrCalloutKey is wrapped by errors about a callout key seed.
var ErrCalloutKey = errors.New("invalid auth callout key")

// errRefused is the reason given to nats-server for a refused agent login:
// the same for an unknown agent, a wrong password and a revoked agent.
const errRefused = "mig: agent credentials refused"

// CalloutConfig configures a Callout.
type CalloutConfig struct {
	// Issuer signs the answers and the user JWTs: an account key pair whose
	// public key ("A...") is the issuer of nats-server's auth_callout.
	// Required; see ParseCalloutIssuer.
	Issuer nkeys.KeyPair
	// XKey, if set, is a curve key pair whose public key ("X...") is the
	// auth_callout's xkey: requests must arrive encrypted to it, and answers
	// are encrypted to the requesting server's xkey. See ParseCalloutXKey.
	XKey nkeys.KeyPair
	// Account is the account agents are placed in, the hub's; "" means
	// GlobalAccount.
	Account string
	// Authenticate reports whether password is agentID's relay password,
	// as ServerConfig.Authenticate. It is called from several goroutines at
	// once, with agentID already checked by relay.CheckAgentID. Required.
	Authenticate func(agentID, password string) bool
	// TTL is how long a granted login lasts (with up to a tenth more, at
	// random, so that agents that logged in together do not all log in
	// again together); zero means DefaultCalloutTTL. It is also how long an
	// agent whose credentials are revoked can stay connected.
	TTL time.Duration
	// Workers is how many requests are checked at once; zero means
	// DefaultCalloutWorkers.
	Workers int
	// Logger receives the Callout's logs; nil discards them.
	Logger *slog.Logger
}

// Callout answers an operator-run nats-server's auth callout requests on
// its own connection; see the package's CalloutSubject.
type Callout struct {
	cfg       CalloutConfig
	issuerPub string
	log       *slog.Logger

	nc     *nats.Conn
	sub    *nats.Subscription
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// newCallout checks cfg and fills in its defaults; the Callout has no
// connection yet.
func newCallout(cfg CalloutConfig) (*Callout, error) {
	if cfg.Issuer == nil {
		return nil, fmt.Errorf("%w: no issuer key", ErrCalloutKey)
	}
	issuerPub, err := cfg.Issuer.PublicKey()
	if err != nil || !nkeys.IsValidPublicAccountKey(issuerPub) {
		return nil, fmt.Errorf("%w: the issuer must be an account key (seed \"SA...\")", ErrCalloutKey)
	}
	if cfg.Issuer, err = newSigner(cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.XKey != nil {
		pub, err := cfg.XKey.PublicKey()
		if err != nil || !nkeys.IsValidPublicCurveKey(pub) {
			return nil, fmt.Errorf("%w: the xkey must be a curve key (seed \"SX...\")", ErrCalloutKey)
		}
	}
	if cfg.Authenticate == nil {
		return nil, fmt.Errorf("%w: Authenticate is nil", ErrConfig)
	}
	if cfg.TTL < 0 || cfg.Workers < 0 {
		return nil, fmt.Errorf("%w: negative callout TTL %s or workers %d", ErrConfig, cfg.TTL, cfg.Workers)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultCalloutTTL
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultCalloutWorkers
	}
	if cfg.Account == "" {
		cfg.Account = GlobalAccount
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Callout{cfg: cfg, issuerPub: issuerPub, log: log.With("component", "natsrelay-callout")}, nil
}

// StartCallout connects to the NATS server (or cluster: url may list
// several, comma-separated) as user with password, a user in the
// auth_callout's auth_users, over TLS if tlsConf is set, and answers
// authorization requests until Close. It returns once its subscription is
// in place on the server it connected to; other nodes of a cluster learn of
// it shortly after. The first connection must succeed; after that the
// Callout reconnects forever.
func StartCallout(ctx context.Context, url, user, password string, tlsConf *tls.Config, cfg CalloutConfig) (*Callout, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := newCallout(cfg)
	if err != nil {
		return nil, err
	}
	opts := []nats.Option{
		nats.Name("mig-server-callout"),
		nats.UserInfo(user, password),
		nats.Timeout(natsconn.DialTimeout(ctx)),
		nats.MaxReconnects(-1),
		nats.IgnoreAuthErrorAbort(),
		nats.CustomReconnectDelay(relay.ReconnectDelay),
		nats.ReconnectBufSize(-1),
		nats.NoCallbacksAfterClientClose(),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) && sub != nil {
				dropped, _ := sub.Dropped()
				c.log.Warn("callout is a slow consumer, login requests dropped", "dropped", dropped)
				return
			}
			c.log.Warn("callout relay error", "err", err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.log.Warn("callout disconnected from the relay", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.log.Info("callout reconnected to the relay", "url", nc.ConnectedUrlRedacted())
		}),
	}
	if tlsConf != nil {
		opts = append(opts, nats.Secure(tlsConf))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting the auth callout to %s as %q: %w", url, user, err)
	}
	c.nc = nc
	msgs := make(chan *nats.Msg, calloutQueueLen)
	sub, err := nc.ChanQueueSubscribe(CalloutSubject, QueueGroup, msgs)
	if err == nil {
		err = nc.FlushWithContext(flushContext(ctx))
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("subscribing the auth callout to %s: %w", CalloutSubject, err)
	}
	c.sub = sub
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	for range c.cfg.Workers {
		c.wg.Go(func() {
			for {
				select {
				case <-runCtx.Done():
					return
				case m := <-msgs:
					c.serve(m)
				}
			}
		})
	}
	c.log.Info("auth callout started", "url", nc.ConnectedUrlRedacted(), "issuer", c.issuerPub,
		"encrypted", c.cfg.XKey != nil, "account", c.cfg.Account)
	return c, nil
}

// flushContext gives a flush a deadline when ctx has none.
func flushContext(ctx context.Context) context.Context {
	if _, ok := ctx.Deadline(); ok {
		return ctx
	}
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	// The flush ends before the timeout matters; release the timer then.
	context.AfterFunc(ctx, cancel)
	return ctx
}

// Close stops answering and closes the connection. Requests not answered
// yet time out on the server, which refuses those logins.
func (c *Callout) Close() error {
	c.once.Do(func() {
		if c.sub != nil {
			_ = c.sub.Unsubscribe()
		}
		if c.cancel != nil {
			c.cancel()
		}
		c.wg.Wait()
		if c.nc != nil {
			c.nc.Close()
		}
		c.log.Info("auth callout stopped")
	})
	return nil
}

// serve answers one request, if it can be answered at all.
func (c *Callout) serve(m *nats.Msg) {
	if m.Reply == "" {
		c.log.Warn("auth callout request refused", "reason", "no reply subject")
		return
	}
	answer, err := c.answer(m.Data, m.Header.Get(calloutXKeyHeader))
	if err != nil {
		c.log.Warn("auth callout request refused", "reason", err)
		return
	}
	if err := m.Respond(answer); err != nil {
		c.log.Warn("auth callout answer not sent", "err", err)
	}
}

// answer returns the answer to a request (encrypted when it was), granting
// or refusing the login; it returns an error, and no answer, for a request
// it cannot even address an answer to.
func (c *Callout) answer(data []byte, serverXKey string) ([]byte, error) {
	plain := data
	if c.cfg.XKey != nil {
		if serverXKey == "" {
			return nil, errors.New("request is not encrypted, and an xkey is configured")
		}
		if !nkeys.IsValidPublicCurveKey(serverXKey) {
			return nil, fmt.Errorf("request names %q as its server's xkey, not a public curve key", serverXKey)
		}
		var err error
		if plain, err = c.cfg.XKey.Open(data, serverXKey); err != nil {
			return nil, fmt.Errorf("decrypting the request: %w", err)
		}
	} else if serverXKey != "" {
		return nil, errors.New("request is encrypted (the nats-server has an auth_callout xkey) but no xkey is configured here")
	}
	req, err := jwt.DecodeAuthorizationRequestClaims(string(plain))
	if err != nil {
		return nil, fmt.Errorf("decoding the request: %w", err)
	}
	// The answer is bound to the user key the server made for this login
	// and to the server itself; without both there is no one to answer.
	if !nkeys.IsValidPublicUserKey(req.UserNkey) || !nkeys.IsValidPublicServerKey(req.Server.ID) {
		return nil, fmt.Errorf("request from %q names no valid user key or server ID", req.Issuer)
	}
	grant, user, reason := c.decide(req)
	if reason != "" {
		c.log.Debug("agent login refused", "user", user, "server", req.Server.Name, "host", req.ClientInformation.Host, "reason", reason)
	} else {
		c.log.Debug("agent login granted", "agent", user, "server", req.Server.Name, "host", req.ClientInformation.Host)
	}
	resp := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	resp.Audience = req.Server.ID
	if reason != "" {
		resp.Error = errRefused
		if !grantable(reason) {
			// Not about an agent's credentials: the operator must see it.
			resp.Error = "mig: " + reason
			c.log.Warn("auth callout request refused", "reason", reason, "server", req.Server.Name)
		}
	} else {
		resp.Jwt = grant
	}
	token, err := resp.Encode(c.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("signing the answer: %w", err)
	}
	if c.cfg.XKey == nil {
		return []byte(token), nil
	}
	sealed, err := c.cfg.XKey.Seal([]byte(token), serverXKey)
	if err != nil {
		return nil, fmt.Errorf("encrypting the answer: %w", err)
	}
	return sealed, nil
}

// Refusal reasons about an agent's credentials, as opposed to the request.
const (
	reasonNotAgent    = "user name is not an agent id"
	reasonCredentials = "unknown agent, wrong password or revoked agent"
)

// grantable reports whether reason is about the credentials of a login
// (which the server would have granted with others) rather than about the
// request itself.
func grantable(reason string) bool { return reason == reasonNotAgent || reason == reasonCredentials }

// decide checks a decoded request and returns the user JWT for its agent,
// or the reason it is refused; user is the login's user name, for logs.
func (c *Callout) decide(req *jwt.AuthorizationRequestClaims) (grant, user, reason string) {
	user = req.ConnectOptions.Username
	vr := jwt.CreateValidationResults()
	req.Validate(vr)
	switch {
	case len(vr.Issues) > 0:
		return "", user, "request does not validate: " + vr.Issues[0].Description
	case req.Expires == 0:
		return "", user, "request has no expiry"
	case req.Issuer != req.Server.ID:
		return "", user, fmt.Sprintf("request signed by %s for server %s", req.Issuer, req.Server.ID)
	case req.Subject != c.issuerPub:
		return "", user, fmt.Sprintf("request is for issuer %s, this callout's issuer is %s (check auth_callout.issuer)", req.Subject, c.issuerPub)
	case req.Audience != calloutRequestAudience:
		return "", user, fmt.Sprintf("request audience %q, want %q", req.Audience, calloutRequestAudience)
	}
	if relay.CheckAgentID(user) != nil {
		return "", user, reasonNotAgent
	}
	if !c.cfg.Authenticate(user, req.ConnectOptions.Password) {
		return "", user, reasonCredentials
	}
	grant, err := c.userJWT(req.UserNkey, user)
	if err != nil {
		return "", user, fmt.Sprintf("making the user JWT: %v", err)
	}
	return grant, user, ""
}

// userJWT returns the user JWT that lets agent id log in with the server's
// user key userKey: the agent's own permissions (agentPermissions), in the
// hub's account, for TTL, over a standard client connection only.
func (c *Callout) userJWT(userKey, id string) (string, error) {
	uc := jwt.NewUserClaims(userKey)
	uc.Name = id
	uc.Audience = c.cfg.Account
	ttl := c.cfg.TTL + rand.N(c.cfg.TTL/10+1)
	uc.Expires = time.Now().Add(ttl).Unix()
	p := agentPermissions(id)
	uc.Pub.Allow.Add(p.Publish.Allow...)
	uc.Sub.Allow.Add(p.Subscribe.Allow...)
	uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard)
	vr := jwt.CreateValidationResults()
	uc.Validate(vr)
	if errs := vr.Errors(); len(errs) > 0 {
		return "", errs[0]
	}
	return uc.Encode(c.cfg.Issuer)
}

// signer is an nkeys key pair that derives its ed25519 key once: nkeys
// derives it from the seed on every PublicKey and Sign, which is most of
// the cost of a login's two signatures.
type signer struct {
	nkeys.KeyPair
	pub  string
	priv ed25519.PrivateKey
}

// newSigner returns kp, which must hold a seed, with its keys derived.
func newSigner(kp nkeys.KeyPair) (*signer, error) {
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("%w: the issuer key has no private key to sign with", ErrCalloutKey)
	}
	_, raw, err := nkeys.DecodeSeed(seed)
	if err != nil || len(raw) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: the issuer seed does not decode", ErrCalloutKey)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCalloutKey, err)
	}
	return &signer{KeyPair: kp, pub: pub, priv: ed25519.NewKeyFromSeed(raw)}, nil
}

// PublicKey implements nkeys.KeyPair.
func (s *signer) PublicKey() (string, error) { return s.pub, nil }

// Sign implements nkeys.KeyPair.
func (s *signer) Sign(data []byte) ([]byte, error) { return ed25519.Sign(s.priv, data), nil }
