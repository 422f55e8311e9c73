package amqprelay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay"
)

// DefaultPrefetch is how many unacknowledged deliveries one Receive holds
// at most when Options.Prefetch is zero. The scheduler keeps each result
// unacknowledged until it is stored (relay.Inbound.Defer), in batches of up
// to 1,000: room for two batches keeps ingestion from waiting on the broker.
const DefaultPrefetch = 2048

// Options configures a hub.
type Options struct {
	// TLS configures amqps:// connections; nil uses the system roots.
	TLS *tls.Config
	// Logger receives the hub's logs; nil discards them.
	Logger *slog.Logger
	// Prefetch is how many deliveries each Receive holds unacknowledged at
	// most; zero means DefaultPrefetch.
	Prefetch int
}

// hub is relay.Hub over one AMQP connection, kept up by run.
type hub struct {
	url      string
	cfg      amqp.Config
	log      *slog.Logger
	prefetch int

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup // run

	mu   sync.Mutex
	conn *amqp.Connection // nil while disconnected
	pub  *amqp.Channel    // confirm-mode publishing channel of conn
	up   chan struct{}    // closed while connected; replaced on disconnect
}

// NewHub connects mig-server to RabbitMQ at url ("amqp://user:password@host:
// 5672/vhost" or amqps://), declares the exchanges and server queues, and
// keeps the connection up until Close, reconnecting forever with backoff.
// The first connection must succeed. The URL's user needs configure, write
// and read permissions on the relay's exchanges and queues.
func NewHub(ctx context.Context, url string, opts Options) (relay.Hub, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	uri, err := amqp.ParseURI(url)
	if err != nil {
		return nil, fmt.Errorf("relay url: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Prefetch < 0 {
		return nil, fmt.Errorf("prefetch %d is negative", opts.Prefetch)
	}
	if opts.Prefetch == 0 {
		opts.Prefetch = DefaultPrefetch
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("mig-server")
	h := &hub{
		url:      url,
		cfg:      amqp.Config{Vhost: uri.Vhost, TLSClientConfig: tlsConfig(uri, opts.TLS), Properties: props},
		log:      logger.With("component", "amqprelay"),
		prefetch: opts.Prefetch,
		done:     make(chan struct{}),
		up:       make(chan struct{}),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	conn, err := h.connect(ctx)
	if err != nil {
		h.cancel()
		return nil, fmt.Errorf("connecting the hub to %s: %w", uri.Host, err)
	}
	h.wg.Add(1)
	go h.run(conn)
	return h, nil
}

// connect dials RabbitMQ, declares the topology, opens the publishing
// channel and marks the hub connected.
func (h *hub) connect(ctx context.Context) (*amqp.Connection, error) {
	conn, err := dialAMQP(ctx, h.url, h.cfg)
	if err != nil {
		return nil, err
	}
	if err := declareServerTopology(conn); err != nil {
		conn.Close()
		return nil, err
	}
	pub, err := conn.Channel()
	if err == nil {
		err = pub.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("opening the publishing channel: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.isClosed() {
		conn.Close()
		return nil, relay.ErrClosed
	}
	h.conn, h.pub = conn, pub
	close(h.up)
	return conn, nil
}

// declareServerTopology declares both exchanges and the server queues.
func declareServerTopology(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("opening a channel: %w", err)
	}
	defer ch.Close()
	for _, e := range []struct{ name, kind string }{{AgentExchange, "direct"}, {ServerExchange, "topic"}} {
		if err := ch.ExchangeDeclare(e.name, e.kind, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declaring exchange %s: %w", e.name, err)
		}
	}
	queues := []struct {
		name, key string
		args      amqp.Table
	}{
		{ResultQueue, relay.KindResult + ".*", nil},
		{HeartbeatQueue, relay.KindHeartbeat + ".*", amqp.Table{
			"x-message-ttl": int64(HeartbeatTTL / time.Millisecond),
			"x-max-length":  int64(heartbeatQueueMaxLength),
		}},
	}
	for _, q := range queues {
		if _, err := ch.QueueDeclare(q.name, true, false, false, false, q.args); err != nil {
			return fmt.Errorf("declaring queue %s: %w", q.name, err)
		}
		if err := ch.QueueBind(q.name, q.key, ServerExchange, false, nil); err != nil {
			return fmt.Errorf("binding queue %s to %s: %w", q.name, q.key, err)
		}
	}
	return nil
}

// run watches the connection and reconnects until Close.
func (h *hub) run(conn *amqp.Connection) {
	defer h.wg.Done()
	for {
		h.watch(conn)
		h.mu.Lock()
		h.conn, h.pub = nil, nil
		h.up = make(chan struct{})
		h.mu.Unlock()
		conn.Close()
		conn = nil
		for attempt := 1; conn == nil; attempt++ {
			select {
			case <-h.ctx.Done():
				return
			case <-time.After(relay.ReconnectDelay(attempt)):
			}
			var err error
			if conn, err = h.connect(h.ctx); err != nil {
				h.log.Debug("hub reconnect failed", "attempt", attempt, "err", err)
				conn = nil
				continue
			}
			h.log.Info("hub reconnected to the relay")
		}
	}
}

// watch logs unroutable messages and returns when conn or its publishing
// channel closes, or at Close.
func (h *hub) watch(conn *amqp.Connection) {
	h.mu.Lock()
	pub := h.pub
	h.mu.Unlock()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	pubClosed := pub.NotifyClose(make(chan *amqp.Error, 1))
	returns := pub.NotifyReturn(make(chan amqp.Return, 64))
	for {
		select {
		case <-h.ctx.Done():
			return
		case err := <-closed:
			h.log.Warn("hub disconnected from the relay", "err", err)
			return
		case err := <-pubClosed:
			h.log.Warn("hub publishing channel closed", "err", err)
			return
		case r, ok := <-returns:
			if !ok {
				return
			}
			h.log.Warn("message to an agent without a queue dropped", "agent", r.RoutingKey, "kind", r.Type)
		}
	}
}

// publisher returns the current publishing channel, or an error wrapping
// ErrDisconnected or relay.ErrClosed.
func (h *hub) publisher() (*amqp.Channel, error) {
	if h.isClosed() {
		return nil, relay.ErrClosed
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pub == nil {
		return nil, ErrDisconnected
	}
	return h.pub, nil
}

// Send publishes every message (commands persistent, with a TTL until
// Expires; acks transient) and returns once RabbitMQ has confirmed all of
// them. It checks every message first and sends nothing if one has a
// malformed agent ID, a kind other than command or ack, or too much data.
func (h *hub) Send(ctx context.Context, msgs []relay.Outbound) error {
	if h.isClosed() {
		return relay.ErrClosed
	}
	for i, m := range msgs {
		if err := relay.CheckAgentID(m.AgentID); err != nil {
			return fmt.Errorf("message %d of %d: %w", i, len(msgs), err)
		}
		if err := checkInboxKind(m.Kind); err != nil {
			return fmt.Errorf("message %d of %d: %w", i, len(msgs), err)
		}
		if len(m.Data) > action.MaxMessageSize {
			return fmt.Errorf("message %d of %d: %w: %d bytes, over the limit of %d",
				i, len(msgs), ErrTooLarge, len(m.Data), action.MaxMessageSize)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	pub, err := h.publisher()
	if err != nil {
		return fmt.Errorf("sending %d messages: %w", len(msgs), err)
	}
	now := time.Now()
	confirms := make([]*amqp.DeferredConfirmation, len(msgs))
	for i, m := range msgs {
		mode := amqp.Persistent
		if m.Kind == relay.KindAck {
			mode = amqp.Transient
		}
		dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, AgentExchange, m.AgentID, true, false, amqp.Publishing{
			DeliveryMode: mode,
			Type:         m.Kind,
			Expiration:   expiration(m.Expires, now),
			Body:         m.Data,
		})
		if err != nil {
			return h.sendErr(fmt.Errorf("sending %s to agent %s: %w", m.Kind, m.AgentID, err))
		}
		confirms[i] = dc
	}
	wctx, cancel := withTimeout(ctx, confirmTimeout)
	defer cancel()
	for i, dc := range confirms {
		ok, err := dc.WaitContext(wctx)
		if err != nil {
			return fmt.Errorf("waiting for the confirm of message %d of %d: %w", i, len(msgs), err)
		}
		if !ok {
			return h.sendErr(fmt.Errorf("%w: %s to agent %s (message %d of %d)",
				ErrNotConfirmed, msgs[i].Kind, msgs[i].AgentID, i, len(msgs)))
		}
	}
	return nil
}

// sendErr adds relay.ErrClosed or ErrDisconnected to err when the hub or its
// connection went away.
func (h *hub) sendErr(err error) error {
	if h.isClosed() {
		return fmt.Errorf("%w: %w", relay.ErrClosed, err)
	}
	if errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("%w: %w", ErrDisconnected, err)
	}
	h.mu.Lock()
	down := h.pub == nil
	h.mu.Unlock()
	if down {
		return fmt.Errorf("%w: %w", ErrDisconnected, err)
	}
	return err
}

// Receive consumes the result and heartbeat queues and calls handle, from
// one goroutine, for each message; it acknowledges a message once handle
// has returned, so a message whose server dies first goes to another one.
// Messages whose routing key and checked user-id do not name the same agent
// are dropped. Receive consumes again after every reconnect and returns when
// ctx ends or the hub is closed; handle is never called after it returns.
func (h *hub) Receive(ctx context.Context, handle func(relay.Inbound)) error {
	for {
		if h.isClosed() {
			return relay.ErrClosed
		}
		h.mu.Lock()
		conn, up := h.conn, h.up
		h.mu.Unlock()
		if conn == nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-h.done:
				return relay.ErrClosed
			case <-up:
			}
			continue
		}
		err := h.consume(ctx, conn, handle)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case h.isClosed():
			return relay.ErrClosed
		}
		h.log.Warn("hub stopped consuming, consuming again", "err", err)
		// Let run notice a dead connection before trying again.
		select {
		case <-ctx.Done():
		case <-h.done:
		case <-time.After(relay.ReconnectBase):
		}
	}
}

// consume runs one consumer of both server queues on a new channel of conn
// until ctx ends, the hub closes or the channel dies.
func (h *hub) consume(ctx context.Context, conn *amqp.Connection, handle func(relay.Inbound)) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("opening a channel: %w", err)
	}
	defer ch.Close()
	if err := ch.Qos(h.prefetch, 0, false); err != nil {
		return fmt.Errorf("setting the prefetch count to %d: %w", h.prefetch, err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	results, err := ch.Consume(ResultQueue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consuming %s: %w", ResultQueue, err)
	}
	heartbeats, err := ch.Consume(HeartbeatQueue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consuming %s: %w", HeartbeatQueue, err)
	}
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.done:
			return relay.ErrClosed
		case err := <-closed:
			return fmt.Errorf("channel closed: %w", err)
		case d, ok = <-results:
		case d, ok = <-heartbeats:
		}
		if !ok {
			return errors.New("consumer cancelled")
		}
		id, kind, err := parseServerDelivery(d.Exchange, d.RoutingKey, d.UserId)
		if err != nil {
			h.log.Warn("message dropped", "err", err)
			if err := d.Nack(false, false); err != nil {
				h.log.Debug("rejecting a message", "err", err)
			}
			continue
		}
		ack := func() {
			if err := d.Ack(false); err != nil {
				h.log.Debug("acknowledging a message", "err", err)
			}
		}
		deferred := false
		handle(relay.Inbound{AgentID: id, Kind: kind, Data: d.Body, Defer: func() func() {
			deferred = true
			return sync.OnceFunc(ack)
		}})
		if !deferred {
			ack()
		}
	}
}

// Close closes the hub's connection and waits for its reconnect loop. A
// Receive returns relay.ErrClosed once its handler returns; unacknowledged
// messages go back to their queue.
func (h *hub) Close() error {
	h.once.Do(func() {
		close(h.done)
		h.cancel()
		h.mu.Lock()
		conn := h.conn
		h.mu.Unlock()
		if conn != nil {
			conn.Close()
		}
		h.wg.Wait()
	})
	return nil
}

func (h *hub) isClosed() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}
