// Package natsconn is the agent's side of the NATS relay: relay.Conn over a
// NATS client connection, and the subjects agents and servers use. It does
// not import the NATS server, which internal/relay/natsrelay embeds: linking
// nats-server starts, in every process, a timer that reads /proc/self/stat
// every second (its pse package's init), and costs an idle agent CPU and
// memory for nothing. TestNoNATSServer keeps it so.
package natsconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay"
)

// Pending limits of an agent's inbox subscription: commands wait there while
// no Subscribe is running.
const (
	inboxPendingMsgs  = 4096
	inboxPendingBytes = 8 * action.MaxMessageSize
)

// Keepalive: a dead connection is noticed after about pingInterval ×
// (maxPingsOut+1).
const (
	pingInterval = time.Minute
	maxPingsOut  = 2
)

// flushTimeout bounds a flush when the caller's context has no deadline.
const flushTimeout = 30 * time.Second

// callbackFlushTimeout bounds the wait for the inbox subscription to reach
// the server before OnConnect callbacks run.
const callbackFlushTimeout = 10 * time.Second

// ErrDisconnected is wrapped by Publish's error when the agent is not
// connected to the relay; the caller keeps what it could not send.
var ErrDisconnected = errors.New("not connected to the relay")

// ErrTooLarge is wrapped by Publish's error for data over
// action.MaxMessageSize.
var ErrTooLarge = errors.New("message too large")

// ErrCredentials is wrapped by Dial's errors about the credentials it was
// given.
var ErrCredentials = errors.New("invalid relay credentials")

// Dial is a relay.Dialer for NATS that discards the connection's logs; see
// NewDialer.
func Dial(ctx context.Context, agentID string, c relay.Credentials) (relay.Conn, error) {
	return dial(ctx, agentID, c, nil)
}

// NewDialer returns a relay.Dialer for NATS that logs to logger.
//
// The connection it makes authenticates as the agent (user agentID, c's
// password), over TLS verified with c.CA if that is set (or if c.URL is a
// tls:// URL, with the system roots). It reconnects forever with jittered
// exponential backoff, and Dial succeeds even when the relay is down: the
// connection comes up when the relay does. The agent's inbox subscription is
// made before Dial returns and is always in place before OnConnect callbacks
// run.
func NewDialer(logger *slog.Logger) relay.Dialer {
	return func(ctx context.Context, agentID string, c relay.Credentials) (relay.Conn, error) {
		return dial(ctx, agentID, c, logger)
	}
}

// conn is relay.Conn over NATS.
type conn struct {
	id  string
	nc  *nats.Conn
	log *slog.Logger

	// msgs hands inbox messages from the NATS subscription to Subscribe.
	msgs chan inboxMsg
	// done is closed by Close; lost when the NATS connection is closed for
	// good.
	done      chan struct{}
	lost      chan struct{}
	closeOnce sync.Once
	lostOnce  sync.Once

	mu        sync.Mutex
	callbacks []func() // every OnConnect callback
	queue     []func() // callbacks to run now
	connected bool     // between a (re)connect and the next disconnect
	wake      chan struct{}
	wg        sync.WaitGroup // the callback runner
}

type inboxMsg struct {
	kind string
	data []byte
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
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &conn{
		id:   agentID,
		log:  logger.With("component", "natsrelay", "agent", agentID),
		msgs: make(chan inboxMsg),
		done: make(chan struct{}),
		lost: make(chan struct{}),
		wake: make(chan struct{}, 1),
	}
	opts := []nats.Option{
		nats.Name("mig-agent " + agentID),
		nats.UserInfo(agentID, cr.Password),
		nats.Timeout(DialTimeout(ctx)),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.IgnoreAuthErrorAbort(),
		nats.CustomReconnectDelay(relay.ReconnectDelay),
		nats.ReconnectBufSize(-1),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.NoCallbacksAfterClientClose(),
		nats.ConnectHandler(func(nc *nats.Conn) { c.onConnect(nc) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { c.onConnect(nc) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { c.onDisconnect(err) }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			c.log.Debug("relay connection attempt failed", "err", err)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.log.Warn("relay error", "err", err)
		}),
		nats.ClosedHandler(func(*nats.Conn) { c.lostOnce.Do(func() { close(c.lost) }) }),
	}
	if cr.CA != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(cr.CA)) {
			return nil, fmt.Errorf("%w: the CA holds no PEM certificate", ErrCredentials)
		}
		opts = append(opts, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	nc, err := nats.Connect(cr.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting agent %s to %s: %w", agentID, cr.URL, err)
	}
	c.nc = nc
	sub, err := nc.Subscribe(AgentSubscription(agentID), c.deliver)
	if err == nil {
		err = sub.SetPendingLimits(inboxPendingMsgs, inboxPendingBytes)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("subscribing agent %s to its inbox: %w", agentID, err)
	}
	if nc.IsConnected() {
		// Have the subscription in place before any OnConnect callback
		// runs. If this fails, the connection is going down and the
		// subscription is made again on reconnect, before the callbacks.
		if err := Flush(ctx, nc); err != nil {
			c.log.Debug("flushing the inbox subscription", "err", err)
		}
	}
	c.wg.Add(1)
	go c.runCallbacks()
	return c, nil
}

// deliver hands one inbox message to Subscribe, waiting for one to run.
func (c *conn) deliver(m *nats.Msg) {
	kind, err := ParseInboxSubject(c.id, m.Subject)
	if err != nil {
		c.log.Warn("inbox message dropped", "err", err)
		return
	}
	select {
	case c.msgs <- inboxMsg{kind: kind, data: m.Data}:
	case <-c.done:
	case <-c.lost:
	}
}

// onConnect runs on NATS's callback goroutine after each (re)connect, when
// the inbox subscription has been sent again.
func (c *conn) onConnect(nc *nats.Conn) {
	c.log.Info("connected to the relay", "url", nc.ConnectedUrlRedacted())
	c.mu.Lock()
	c.connected = true
	c.queue = append(c.queue, c.callbacks...)
	c.mu.Unlock()
	c.kick()
}

func (c *conn) onDisconnect(err error) {
	c.mu.Lock()
	c.connected = false
	c.mu.Unlock()
	c.log.Warn("disconnected from the relay", "err", err)
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
		case <-c.done:
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
			// NATS calls its connect handlers before the subscription it
			// has just sent again is flushed; wait until the server has
			// it, so that whatever a callback triggers finds the inbox.
			if err := c.nc.FlushTimeout(callbackFlushTimeout); err != nil {
				c.log.Debug("flushing before OnConnect callbacks", "err", err)
			}
			for _, f := range q {
				select {
				case <-c.done:
					return
				default:
				}
				f()
			}
		}
	}
}

// Publish sends a result or heartbeat and waits until the relay has it, for
// at most flushTimeout if ctx has no deadline. It fails at once, with
// ErrDisconnected, while the connection is down.
func (c *conn) Publish(ctx context.Context, kind string, data []byte) error {
	if err := c.Notify(kind, data); err != nil {
		return err
	}
	if err := Flush(ctx, c.nc); err != nil {
		return c.publishErr(kind, err)
	}
	return nil
}

// Notify is Publish without waiting for the relay (relay.Notifier): the
// message is written to the connection and may be lost with it. It fails at
// once, with ErrDisconnected, while the connection is down.
func (c *conn) Notify(kind string, data []byte) error {
	if c.isClosed() {
		return relay.ErrClosed
	}
	subject, err := ServerSubject(c.id, kind)
	if err != nil {
		return err
	}
	if len(data) > action.MaxMessageSize {
		return fmt.Errorf("%w: %s of %d bytes, over the limit of %d", ErrTooLarge, kind, len(data), action.MaxMessageSize)
	}
	if !c.nc.IsConnected() {
		return fmt.Errorf("publishing %s: %w", kind, ErrDisconnected)
	}
	if err := c.nc.Publish(subject, data); err != nil {
		return c.publishErr(kind, err)
	}
	return nil
}

func (c *conn) publishErr(kind string, err error) error {
	switch {
	case c.isClosed() || errors.Is(err, nats.ErrConnectionClosed):
		return fmt.Errorf("publishing %s: %w: %w", kind, relay.ErrClosed, err)
	case errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected), !c.nc.IsConnected():
		return fmt.Errorf("publishing %s: %w: %w", kind, ErrDisconnected, err)
	}
	return fmt.Errorf("publishing %s: %w", kind, err)
}

// Subscribe calls h for each message in the agent's inbox until ctx ends or
// the connection is closed. Messages that arrive while no Subscribe runs wait
// (up to the inbox's pending limits); if several run at once, each message
// goes to one of them.
func (c *conn) Subscribe(ctx context.Context, h func(kind string, data []byte)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return relay.ErrClosed
		case <-c.lost:
			return fmt.Errorf("%w: the connection to the relay was closed", relay.ErrClosed)
		case m := <-c.msgs:
			h(m.kind, m.data)
		}
	}
}

// OnConnect registers f to run after every (re)connect, once the inbox
// subscription is in place. If the connection is up when f is registered, f
// also runs once soon. Callbacks run one at a time on a goroutine the
// connection owns; they must not call Close.
func (c *conn) OnConnect(f func()) {
	c.mu.Lock()
	c.callbacks = append(c.callbacks, f)
	now := c.connected
	if now {
		c.queue = append(c.queue, f)
	}
	c.mu.Unlock()
	if now {
		c.kick()
	}
}

// Close closes the connection and waits for a running OnConnect callback.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		c.nc.Close()
		c.wg.Wait()
	})
	return nil
}

func (c *conn) isClosed() bool {
	select {
	case <-c.done:
		return true
	case <-c.lost:
		return true
	default:
		return false
	}
}

// DialTimeout is how long one connection attempt may take: the time left
// before ctx's deadline, or a default.
func DialTimeout(ctx context.Context) time.Duration {
	const def = 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < def {
			return max(d, time.Millisecond)
		}
	}
	return def
}

// Flush waits until the server has processed everything sent on nc so far,
// for at most 30 s if ctx has no deadline.
func Flush(ctx context.Context, nc *nats.Conn) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	return nc.FlushWithContext(ctx)
}
