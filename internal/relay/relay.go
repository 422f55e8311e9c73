// Package relay defines how commands reach agents and how results and
// heartbeats come back, independently of the message broker. Implementations
// live in sub-packages (natsrelay: embedded NATS or a NATS cluster;
// amqprelay: RabbitMQ) and all pass the conformance suite in relaytest.
//
// Each agent has an inbox that only it may read, carrying commands and acks;
// agents publish results and heartbeats that the server receives with the
// publishing agent's identity attached by the relay, never taken from the
// message body. The protocol needs no more than at-most-once delivery from
// the relay (NATS gives exactly that; RabbitMQ's durable queues give at least
// once, and keep commands for offline agents until Outbound.Expires): the
// agent keeps each result on disk until the server acknowledges it
// (action.AckMessage, sent only after the result is stored), and the server
// sends an agent its pending commands again whenever the agent says hello,
// so nothing is lost when a connection or a process goes away, and a
// command delivered twice runs once.
package relay

import (
	"context"
	"errors"
	"time"
)

// Message kinds.
const (
	KindCommand   = "command"   // server -> agent inbox
	KindAck       = "ack"       // server -> agent inbox
	KindResult    = "result"    // agent -> server
	KindHeartbeat = "heartbeat" // agent -> server
)

// ErrClosed is returned by operations on a closed hub or connection.
var ErrClosed = errors.New("relay closed")

// Outbound is a message from the server to one agent's inbox.
type Outbound struct {
	AgentID string
	Kind    string // KindCommand or KindAck
	Data    []byte
	// Expires, if set, is when the message stops being worth delivering: a
	// relay that keeps messages for agents that are offline (RabbitMQ's
	// durable queues) drops it then. The server sets it to the action's
	// expireafter for commands. Relays that keep nothing (NATS) ignore it.
	Expires time.Time
}

// Inbound is a message from an agent to the server. AgentID is the identity
// the relay authenticated, not a value read from Data.
type Inbound struct {
	AgentID string
	Kind    string // KindResult or KindHeartbeat
	Data    []byte
	// Defer, if non-nil, lets the handler keep the message in the relay
	// after it returns: called while the handler runs, it returns the
	// function that releases the message (call it once, from any
	// goroutine, when the message is handled for good — a result stored).
	// Until then a relay that keeps messages (RabbitMQ) delivers it to
	// another server if this one dies. Without a call to Defer the relay
	// releases the message when the handler returns. Relays that keep
	// nothing (NATS) leave Defer nil: there the agent sends again what the
	// server did not acknowledge.
	Defer func() (release func())
}

// Hub is the server's side of the relay.
type Hub interface {
	// Send publishes messages to agents' inboxes and returns once the relay
	// has taken all of them (flushed), or the first error.
	Send(ctx context.Context, msgs []Outbound) error
	// Receive calls h for every message agents publish until ctx ends or the
	// hub is closed. Several servers may receive at once; each message goes
	// to one of them. h must not block for long.
	Receive(ctx context.Context, h func(Inbound)) error
	// Close releases the hub's connections.
	Close() error
}

// Credentials are what an agent needs to connect to the relay as itself.
type Credentials struct {
	URL      string `json:"url"`
	User     string `json:"user"`
	Password string `json:"password"`
	// CA is a PEM bundle to verify the relay's TLS certificate, if any.
	CA string `json:"ca,omitempty"`
}

// Conn is an agent's connection to the relay. It reconnects by itself,
// forever, with backoff.
type Conn interface {
	// Publish sends a result or heartbeat. It fails while disconnected;
	// callers keep what they could not send.
	Publish(ctx context.Context, kind string, data []byte) error
	// Subscribe calls h for every message in the agent's inbox until ctx
	// ends or the connection is closed.
	Subscribe(ctx context.Context, h func(kind string, data []byte)) error
	// OnConnect registers f to run after every successful (re)connect, so the
	// agent can say hello and resend what it keeps on disk.
	OnConnect(f func())
	// Close closes the connection.
	Close() error
}

// Notifier is implemented by connections that can also publish without
// waiting for the relay to confirm it has the message (a round trip to the
// broker). The agent uses it for its periodic heartbeats, whose loss costs
// nothing (the next one follows), so that an idle fleet costs the relay one
// read per heartbeat instead of a read and a write; hellos and results are
// always published with Publish.
type Notifier interface {
	Notify(kind string, data []byte) error
}

// Dialer connects an agent to the relay named in its credentials.
type Dialer func(ctx context.Context, agentID string, c Credentials) (Conn, error)
