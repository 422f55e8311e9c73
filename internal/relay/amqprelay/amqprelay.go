// Package amqprelay is MIG's relay over RabbitMQ (AMQP 0-9-1): a Hub for
// mig-server, a Dialer for agents, and a Provisioner that gives each agent its
// own RabbitMQ user, permissions and queue through the management HTTP API.
//
// Topology, in one virtual host (the path of the AMQP URL):
//
//   - Exchange "mig.agents" (direct, durable). The hub publishes an agent's
//     commands and acks there with the agent ID as routing key and the kind
//     (command or ack) as the message type. Commands are persistent and carry
//     a per-message TTL until relay.Outbound.Expires; acks are transient.
//   - Queue "mig.agent.<agentID>" (classic, durable, at most
//     AgentQueueMaxLength messages, oldest dropped first), bound to
//     "mig.agents" with the agent ID. The Provisioner declares it when the
//     agent is enrolled, so commands sent while the agent is offline wait
//     there until it comes back or they expire.
//   - Exchange "mig.server" (topic, durable). Agents publish results and
//     heartbeats there with routing key "<kind>.<agentID>" and the AMQP
//     user-id property set to their user name, which RabbitMQ checks against
//     the authenticated user.
//   - Queues "mig.server.results" (durable, persistent messages) and
//     "mig.server.heartbeats" (durable, messages live HeartbeatTTL), which
//     every hub consumes: several servers share them, each message goes to
//     one. The hub declares them.
//
// Delivery is at least once: agents and hubs acknowledge a message only
// after their handler has returned, so a message whose consumer dies first
// is delivered again (to the next connection of the same agent, or to
// another server). The hub publishes with publisher confirms and Send returns
// only once RabbitMQ has confirmed every message; agents' Publish waits for
// the confirm too.
//
// Identity: an agent connects with its agent ID as user name and the relay
// password it got at enrollment. Its permissions (set by the Provisioner)
// let it read only its own queue, write only to "mig.server", and, through a
// topic permission, publish only the routing keys "result.<agentID>" and
// "heartbeat.<agentID>". The hub drops any message whose routing key and
// checked user-id do not name the same agent, so a message is attributed to
// the agent the broker authenticated, never to a value from its body.
//
// Connections reconnect forever with jittered exponential backoff. Dial
// returns at once and connects in the background; OnConnect callbacks run
// after every (re)connect once the agent's consumer is in place. Publish and
// Send fail while disconnected. Hub.Receive and Conn.Subscribe block until
// their context ends or the hub or connection is closed, consuming again
// after each reconnect.
package amqprelay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/migplatform/mig/internal/relay"
)

// Names of the exchanges and queues.
const (
	AgentExchange    = "mig.agents"
	ServerExchange   = "mig.server"
	ResultQueue      = "mig.server.results"
	HeartbeatQueue   = "mig.server.heartbeats"
	agentQueuePrefix = "mig.agent."
)

// AgentQueueMaxLength bounds an agent's queue; past it the oldest messages
// are dropped (the server sends pending commands again when the agent says
// hello, so nothing is lost for good).
const AgentQueueMaxLength = 4096

// HeartbeatTTL is how long a heartbeat waits for a server: an older one
// says nothing about the agent any more.
const HeartbeatTTL = 5 * time.Minute

// heartbeatQueueMaxLength bounds the heartbeat queue while no server
// consumes it.
const heartbeatQueueMaxLength = 1 << 20

// Timeouts.
const (
	// dialTimeout bounds one TCP, TLS and AMQP handshake.
	dialTimeout = 15 * time.Second
	// confirmTimeout bounds the wait for publisher confirms when the
	// caller's context has no deadline.
	confirmTimeout = 30 * time.Second
	// heartbeatInterval is the AMQP heartbeat: a dead connection is
	// noticed after about two intervals without traffic.
	heartbeatInterval = 30 * time.Second
)

// ErrDisconnected is wrapped by Publish's and Send's errors while the
// connection to RabbitMQ is down; the caller keeps what it could not send.
var ErrDisconnected = errors.New("not connected to the relay")

// ErrTooLarge is wrapped by Publish's and Send's errors for data over
// action.MaxMessageSize.
var ErrTooLarge = errors.New("message too large")

// ErrCredentials is wrapped by Dial's errors about the credentials it was
// given.
var ErrCredentials = errors.New("invalid relay credentials")

// ErrKind is wrapped by errors about a message kind that does not belong
// where it was used (a result sent to an agent, a command published by one).
var ErrKind = errors.New("wrong message kind")

// ErrNotConfirmed is wrapped by errors about a message RabbitMQ refused
// (nacked) or did not confirm before its connection went away.
var ErrNotConfirmed = errors.New("message not confirmed by the relay")

// ErrMessage is wrapped by errors about a delivery that is not one of the
// relay's (wrong exchange, routing key, type or user).
var ErrMessage = errors.New("unexpected relay message")

// AgentQueue returns the name of agent id's queue. id must have passed
// relay.CheckAgentID.
func AgentQueue(id string) string { return agentQueuePrefix + id }

// checkInboxKind checks that kind may be sent to an agent.
func checkInboxKind(kind string) error {
	if kind != relay.KindCommand && kind != relay.KindAck {
		return fmt.Errorf("%w: %q cannot be sent to an agent", ErrKind, kind)
	}
	return nil
}

// serverKey returns the routing key agent id publishes kind with, after
// checking both.
func serverKey(id, kind string) (string, error) {
	if err := relay.CheckAgentID(id); err != nil {
		return "", err
	}
	if kind != relay.KindResult && kind != relay.KindHeartbeat {
		return "", fmt.Errorf("%w: %q cannot be published by an agent", ErrKind, kind)
	}
	return kind + "." + id, nil
}

// parseServerDelivery checks a message from the server queues and returns
// the agent that published it and its kind. The routing key names the
// agent; userID, which RabbitMQ checked against the publisher's login, must
// name the same one.
func parseServerDelivery(exchange, key, userID string) (id, kind string, err error) {
	if exchange != ServerExchange {
		return "", "", fmt.Errorf("%w: published to exchange %q, want %q", ErrMessage, exchange, ServerExchange)
	}
	kind, id, ok := strings.Cut(key, ".")
	if !ok {
		return "", "", fmt.Errorf("%w: routing key %q has no agent id", ErrMessage, key)
	}
	if kind != relay.KindResult && kind != relay.KindHeartbeat {
		return "", "", fmt.Errorf("%w: routing key %q: %w: %q", ErrMessage, key, ErrKind, kind)
	}
	if err := relay.CheckAgentID(id); err != nil {
		return "", "", fmt.Errorf("%w: routing key %q: %w", ErrMessage, key, err)
	}
	if userID != id {
		return "", "", fmt.Errorf("%w: routing key %q published by user %q", ErrMessage, key, userID)
	}
	return id, kind, nil
}

// parseInboxDelivery checks a message from agent id's queue and returns its
// kind.
func parseInboxDelivery(id, exchange, key, typ string) (kind string, err error) {
	if exchange != AgentExchange || key != id {
		return "", fmt.Errorf("%w: exchange %q routing key %q in the queue of agent %s", ErrMessage, exchange, key, id)
	}
	if err := checkInboxKind(typ); err != nil {
		return "", fmt.Errorf("%w: %w", ErrMessage, err)
	}
	return typ, nil
}

// expiration returns the AMQP per-message TTL, in milliseconds, for a
// message that expires at t; "" for no expiry. A time already past gives
// "0": RabbitMQ delivers the message only to a consumer ready for it now.
func expiration(t time.Time, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	ms := t.Sub(now).Milliseconds()
	if ms < 0 {
		ms = 0
	}
	return fmt.Sprint(ms)
}

// dialAMQP opens an AMQP connection, giving up when ctx ends or after
// dialTimeout.
func dialAMQP(ctx context.Context, url string, cfg amqp.Config) (*amqp.Connection, error) {
	timeout := dialTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(min(timeout, time.Until(dl)), time.Millisecond)
	}
	var stop func() bool
	cfg.Dial = func(network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		// The deadline covers the TLS and AMQP handshakes; amqp091
		// clears it once the connection is open. Closing ctx aborts them.
		if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
			c.Close()
			return nil, err
		}
		stop = context.AfterFunc(ctx, func() { c.Close() })
		return c, nil
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = heartbeatInterval
	}
	conn, err := amqp.DialConfig(url, cfg)
	if stop != nil && !stop() && conn != nil {
		// ctx ended during the handshake and closed the socket.
		conn.Close()
		return nil, ctx.Err()
	}
	return conn, err
}

// tlsConfig returns the TLS configuration for uri: tc (cloned) for an amqps
// URI, with the host as server name if tc names none.
func tlsConfig(uri amqp.URI, tc *tls.Config) *tls.Config {
	if uri.Scheme != "amqps" || tc == nil {
		return nil
	}
	c := tc.Clone()
	if c.ServerName == "" {
		c.ServerName = uri.Host
	}
	return c
}

// withTimeout returns ctx, or ctx with timeout d if it has no deadline.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}
