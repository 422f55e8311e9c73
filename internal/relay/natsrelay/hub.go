package natsrelay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/natsconn"
)

// Pending limits of each of the hub's subscriptions: enough for a burst of
// results and heartbeats from 10,000 agents (several messages each) while the
// receiver is busy, and a bound on the memory such a burst can take.
const (
	hubPendingMsgs  = 1 << 17
	hubPendingBytes = 512 << 20
)

// flushTimeout bounds a flush when the caller's context has no deadline.
const flushTimeout = 30 * time.Second

// hub is relay.Hub over one NATS connection.
type hub struct {
	nc  *nats.Conn
	log *slog.Logger

	// done is closed by Close; lost when the NATS connection is closed for
	// good (the embedded server stopped, or Close).
	done      chan struct{}
	lost      chan struct{}
	closeOnce sync.Once
	lostOnce  sync.Once
}

// NewHub connects a hub to an external NATS server (or cluster: url may list
// several, comma-separated) as user with password, over TLS if tlsConf is
// set. The first connection must succeed; after that the hub reconnects
// forever, and Send fails while it is disconnected.
func NewHub(ctx context.Context, url, user, password string, tlsConf *tls.Config, logger *slog.Logger) (relay.Hub, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	log := logger.With("component", "natsrelay")
	opts := []nats.Option{
		nats.UserInfo(user, password),
		nats.MaxReconnects(-1),
		nats.IgnoreAuthErrorAbort(),
		nats.CustomReconnectDelay(relay.ReconnectDelay),
	}
	if tlsConf != nil {
		opts = append(opts, nats.Secure(tlsConf))
	}
	h, err := connectHub(ctx, url, log, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting the hub to %s as %q: %w", url, user, err)
	}
	return h, nil
}

// connectHub makes a hub on a new NATS connection with opts added to the
// hub's own options.
func connectHub(ctx context.Context, url string, log *slog.Logger, opts ...nats.Option) (*hub, error) {
	h := &hub{
		log:  log,
		done: make(chan struct{}),
		lost: make(chan struct{}),
	}
	all := []nats.Option{
		nats.Name("mig-server"),
		nats.Timeout(natsconn.DialTimeout(ctx)),
		// Publishing while disconnected fails instead of filling a buffer.
		nats.ReconnectBufSize(-1),
		nats.NoCallbacksAfterClientClose(),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) && sub != nil {
				dropped, _ := sub.Dropped()
				log.Warn("hub is a slow consumer, messages dropped",
					"subject", sub.Subject, "dropped", dropped)
				return
			}
			log.Warn("hub relay error", "err", err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("hub disconnected from the relay", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("hub reconnected to the relay", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { h.lostOnce.Do(func() { close(h.lost) }) }),
	}
	nc, err := nats.Connect(url, append(all, opts...)...)
	if err != nil {
		return nil, err
	}
	h.nc = nc
	return h, nil
}

// Send publishes every message, then flushes once: it returns when the relay
// has taken all of them. It checks every message first and sends nothing if
// one has a malformed agent ID or a kind other than command or ack.
func (h *hub) Send(ctx context.Context, msgs []relay.Outbound) error {
	if h.isClosed() {
		return relay.ErrClosed
	}
	subjects := make([]string, len(msgs))
	for i, m := range msgs {
		s, err := inboxSubject(m.AgentID, m.Kind)
		if err != nil {
			return fmt.Errorf("message %d of %d: %w", i, len(msgs), err)
		}
		subjects[i] = s
	}
	for i, m := range msgs {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := h.nc.Publish(subjects[i], m.Data); err != nil {
			return h.connErr(fmt.Errorf("sending %s to agent %s: %w", m.Kind, m.AgentID, err))
		}
	}
	if err := natsconn.Flush(ctx, h.nc); err != nil {
		return h.connErr(fmt.Errorf("flushing %d messages: %w", len(msgs), err))
	}
	return nil
}

// Receive subscribes to agents' results and heartbeats in QueueGroup and calls
// h, from one goroutine at a time, for each one until ctx ends or the hub is
// closed. Messages on a subject without a valid agent ID are dropped. h is
// never called after Receive returns.
func (h *hub) Receive(ctx context.Context, handle func(relay.Inbound)) error {
	if h.isClosed() {
		return relay.ErrClosed
	}
	var (
		mu      sync.Mutex // serialises handle and guards stopped
		stopped bool
	)
	deliver := func(m *nats.Msg) {
		id, kind, err := parseServerSubject(m.Subject)
		if err != nil {
			h.log.Warn("message dropped", "err", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		handle(relay.Inbound{AgentID: id, Kind: kind, Data: m.Data})
	}
	var subs []*nats.Subscription
	stop := func() {
		for _, s := range subs {
			if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				h.log.Warn("unsubscribing", "subject", s.Subject, "err", err)
			}
		}
		mu.Lock()
		stopped = true
		mu.Unlock()
	}
	for _, subject := range receiveSubjects {
		s, err := h.nc.QueueSubscribe(subject, QueueGroup, deliver)
		if err != nil {
			stop()
			return h.connErr(fmt.Errorf("subscribing to %s: %w", subject, err))
		}
		subs = append(subs, s)
		if err := s.SetPendingLimits(hubPendingMsgs, hubPendingBytes); err != nil {
			stop()
			return fmt.Errorf("setting pending limits on %s: %w", subject, err)
		}
	}
	defer stop()
	if h.nc.IsConnected() {
		// Make sure the subscriptions are in place before going on; if the
		// connection is down, they will be made on reconnect.
		if err := natsconn.Flush(ctx, h.nc); err != nil && ctx.Err() == nil {
			h.log.Warn("flushing subscriptions", "err", err)
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-h.done:
		return relay.ErrClosed
	case <-h.lost:
		return fmt.Errorf("%w: the connection to the relay was closed", relay.ErrClosed)
	}
}

// Close closes the hub's connection. Receive calls return relay.ErrClosed.
func (h *hub) Close() error {
	h.closeOnce.Do(func() {
		close(h.done)
		h.nc.Close()
	})
	return nil
}

func (h *hub) isClosed() bool {
	select {
	case <-h.done:
		return true
	case <-h.lost:
		return true
	default:
		return false
	}
}

// connErr adds relay.ErrClosed to err if the hub or its connection is closed.
func (h *hub) connErr(err error) error {
	if h.isClosed() || errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("%w: %w", relay.ErrClosed, err)
	}
	return err
}
