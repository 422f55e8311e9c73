package amqprelay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay"
)

// inboxPrefetch is how many of its commands an agent holds unacknowledged
// at most; the rest wait in its queue.
const inboxPrefetch = 16

// Dial is a relay.Dialer for RabbitMQ that discards the connection's logs;
// see NewDialer.
func Dial(ctx context.Context, agentID string, c relay.Credentials) (relay.Conn, error) {
	return dial(ctx, agentID, c, nil)
}

// NewDialer returns a relay.Dialer for RabbitMQ that logs to logger.
//
// The connection authenticates as the agent (user agentID, c's password) to
// the virtual host in c.URL, over TLS for an amqps:// URL, verified with c.CA
// if set and the system roots otherwise. Dial checks its arguments and
// returns at once; the connection comes up in the background and reconnects
// forever with jittered exponential backoff. After every (re)connect the
// agent's consumer is in place before the OnConnect callbacks run.
func NewDialer(logger *slog.Logger) relay.Dialer {
	return func(ctx context.Context, agentID string, c relay.Credentials) (relay.Conn, error) {
		return dial(ctx, agentID, c, logger)
	}
}

// conn is relay.Conn over AMQP.
type conn struct {
	id  string
	url string
	cfg amqp.Config
	log *slog.Logger

	// msgs hands deliveries from the consumer to Subscribe.
	msgs chan inboxMsg

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup // run and runCallbacks

	mu        sync.Mutex
	pub       *amqp.Channel // confirm-mode publishing channel; nil while disconnected
	callbacks []func()      // every OnConnect callback
	queue     []func()      // callbacks to run now
	wake      chan struct{}
}

type inboxMsg struct {
	kind string
	data []byte
	ack  func()
}

func dial(ctx context.Context, agentID string, cr relay.Credentials, logger *slog.Logger) (relay.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := relay.CheckAgentID(agentID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	if cr.User != "" && cr.User != agentID {
		return nil, fmt.Errorf("%w: user %q is not agent id %s", ErrCredentials, cr.User, agentID)
	}
	if cr.URL == "" {
		return nil, fmt.Errorf("%w: no relay url", ErrCredentials)
	}
	uri, err := amqp.ParseURI(cr.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: relay url: %w", ErrCredentials, err)
	}
	cfg := amqp.Config{
		Vhost: uri.Vhost,
		SASL:  []amqp.Authentication{&amqp.PlainAuth{Username: agentID, Password: cr.Password}},
	}
	if cr.CA != "" {
		if uri.Scheme != "amqps" {
			return nil, fmt.Errorf("%w: a CA is given but the relay url %s is not amqps://", ErrCredentials, uri.Host)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(cr.CA)) {
			return nil, fmt.Errorf("%w: the CA holds no PEM certificate", ErrCredentials)
		}
		cfg.TLSClientConfig = tlsConfig(uri, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	} else {
		cfg.TLSClientConfig = tlsConfig(uri, &tls.Config{MinVersion: tls.VersionTLS12})
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("mig-agent " + agentID)
	cfg.Properties = props
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The URL's own user and password, if any, are ignored: SASL above
	// authenticates as the agent.
	uri.Username, uri.Password = "", ""
	c := &conn{
		id:   agentID,
		url:  uri.String(),
		cfg:  cfg,
		log:  logger.With("component", "amqprelay", "agent", agentID),
		msgs: make(chan inboxMsg),
		done: make(chan struct{}),
		wake: make(chan struct{}, 1),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(2)
	go c.run()
	go c.runCallbacks()
	return c, nil
}

// run keeps a session up until Close.
func (c *conn) run() {
	defer c.wg.Done()
	attempt := 0
	for {
		connected, err := c.session()
		if c.ctx.Err() != nil {
			return
		}
		if connected {
			attempt = 0
			c.log.Warn("disconnected from the relay", "err", err)
		} else {
			c.log.Debug("relay connection attempt failed", "err", err)
		}
		attempt++
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(relay.ReconnectDelay(attempt)):
		}
	}
}

// session connects, starts consuming the agent's queue, queues the OnConnect
// callbacks and hands deliveries to Subscribe until the connection or one of
// its channels closes, or Close. It reports whether it got connected.
func (c *conn) session() (bool, error) {
	ac, err := dialAMQP(c.ctx, c.url, c.cfg)
	if err != nil {
		return false, err
	}
	defer ac.Close()
	closed := ac.NotifyClose(make(chan *amqp.Error, 1))
	in, err := ac.Channel()
	if err != nil {
		return false, fmt.Errorf("opening the inbox channel: %w", err)
	}
	if err := in.Qos(inboxPrefetch, 0, false); err != nil {
		return false, fmt.Errorf("setting the prefetch count: %w", err)
	}
	inClosed := in.NotifyClose(make(chan *amqp.Error, 1))
	deliveries, err := in.Consume(AgentQueue(c.id), "", false, false, false, false, nil)
	if err != nil {
		return false, fmt.Errorf("consuming %s: %w", AgentQueue(c.id), err)
	}
	pub, err := ac.Channel()
	if err == nil {
		err = pub.Confirm(false)
	}
	if err != nil {
		return false, fmt.Errorf("opening the publishing channel: %w", err)
	}
	pubClosed := pub.NotifyClose(make(chan *amqp.Error, 1))

	c.mu.Lock()
	c.pub = pub
	c.queue = append(c.queue[:0], c.callbacks...)
	c.mu.Unlock()
	c.kick()
	c.log.Info("connected to the relay")
	defer func() {
		c.mu.Lock()
		c.pub = nil
		c.queue = nil
		c.mu.Unlock()
	}()

	for {
		var d amqp.Delivery
		var ok bool
		select {
		case <-c.ctx.Done():
			return true, relay.ErrClosed
		case err := <-closed:
			return true, fmt.Errorf("connection closed: %w", err)
		case err := <-inClosed:
			return true, fmt.Errorf("inbox channel closed: %w", err)
		case err := <-pubClosed:
			return true, fmt.Errorf("publishing channel closed: %w", err)
		case d, ok = <-deliveries:
		}
		if !ok {
			return true, errors.New("the relay cancelled the inbox consumer")
		}
		kind, err := parseInboxDelivery(c.id, d.Exchange, d.RoutingKey, d.Type)
		if err != nil {
			c.log.Warn("inbox message dropped", "err", err)
			if err := d.Nack(false, false); err != nil {
				c.log.Debug("rejecting a message", "err", err)
			}
			continue
		}
		m := inboxMsg{kind: kind, data: d.Body, ack: func() {
			if err := d.Ack(false); err != nil {
				c.log.Debug("acknowledging a message", "err", err)
			}
		}}
		// Wait for a Subscribe; the message stays unacknowledged, so if
		// the connection goes away now it is delivered again later.
		select {
		case c.msgs <- m:
		case <-c.ctx.Done():
			return true, relay.ErrClosed
		case err := <-closed:
			return true, fmt.Errorf("connection closed: %w", err)
		case err := <-inClosed:
			return true, fmt.Errorf("inbox channel closed: %w", err)
		case err := <-pubClosed:
			return true, fmt.Errorf("publishing channel closed: %w", err)
		}
	}
}

func (c *conn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// runCallbacks runs queued OnConnect callbacks, one at a time, until Close.
func (c *conn) runCallbacks() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		}
		for {
			c.mu.Lock()
			q := c.queue
			c.queue = nil
			c.mu.Unlock()
			if len(q) == 0 {
				break
			}
			for _, f := range q {
				if c.ctx.Err() != nil {
					return
				}
				f()
			}
		}
	}
}

// Publish sends a result (persistent) or heartbeat (transient, expiring
// after HeartbeatTTL) and waits for RabbitMQ's confirm, for at most
// confirmTimeout if ctx has no deadline. It fails at once, with
// ErrDisconnected, while the connection is down.
func (c *conn) Publish(ctx context.Context, kind string, data []byte) error {
	if c.isClosed() {
		return relay.ErrClosed
	}
	key, err := serverKey(c.id, kind)
	if err != nil {
		return err
	}
	if len(data) > action.MaxMessageSize {
		return fmt.Errorf("%w: %s of %d bytes, over the limit of %d", ErrTooLarge, kind, len(data), action.MaxMessageSize)
	}
	c.mu.Lock()
	pub := c.pub
	c.mu.Unlock()
	if pub == nil {
		return fmt.Errorf("publishing %s: %w", kind, ErrDisconnected)
	}
	msg := amqp.Publishing{DeliveryMode: amqp.Persistent, Type: kind, UserId: c.id, Body: data}
	if kind == relay.KindHeartbeat {
		msg.DeliveryMode = amqp.Transient
		msg.Expiration = fmt.Sprint(HeartbeatTTL.Milliseconds())
	}
	dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, ServerExchange, key, false, false, msg)
	if err != nil {
		return c.publishErr(kind, err)
	}
	wctx, cancel := withTimeout(ctx, confirmTimeout)
	defer cancel()
	ok, err := dc.WaitContext(wctx)
	if err != nil {
		return fmt.Errorf("publishing %s: waiting for the confirm: %w", kind, err)
	}
	if !ok {
		return c.publishErr(kind, ErrNotConfirmed)
	}
	return nil
}

func (c *conn) publishErr(kind string, err error) error {
	if c.isClosed() {
		return fmt.Errorf("publishing %s: %w: %w", kind, relay.ErrClosed, err)
	}
	c.mu.Lock()
	down := c.pub == nil
	c.mu.Unlock()
	if down || errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("publishing %s: %w: %w", kind, ErrDisconnected, err)
	}
	return fmt.Errorf("publishing %s: %w", kind, err)
}

// Subscribe calls h for each message in the agent's queue until ctx ends or
// the connection is closed, and acknowledges the message once h returns: a
// message whose h does not return before the connection goes away is
// delivered again. Messages wait in the queue while no Subscribe runs; if
// several run at once, each message goes to one of them.
func (c *conn) Subscribe(ctx context.Context, h func(kind string, data []byte)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return relay.ErrClosed
		case m := <-c.msgs:
			h(m.kind, m.data)
			m.ack()
		}
	}
}

// OnConnect registers f to run after every (re)connect, once the agent's
// consumer is in place. If the connection is up when f is registered, f also
// runs once soon. Callbacks run one at a time on a goroutine the connection
// owns; they must not call Close.
func (c *conn) OnConnect(f func()) {
	c.mu.Lock()
	c.callbacks = append(c.callbacks, f)
	now := c.pub != nil
	if now {
		c.queue = append(c.queue, f)
	}
	c.mu.Unlock()
	if now {
		c.kick()
	}
}

// Close closes the connection and waits for its goroutines, including a
// running OnConnect callback. Unacknowledged messages go back to the queue.
func (c *conn) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.cancel()
		c.wg.Wait()
	})
	return nil
}

func (c *conn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}
