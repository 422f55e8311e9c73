package natsrelay

import (
	"context"
	"log/slog"

	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/natsconn"
)

// The agent's side of the relay is package natsconn, which does not link the
// NATS server; what it exports is forwarded here for servers, tests and
// tools that use this package.

// ErrDisconnected is natsconn.ErrDisconnected: Publish's error while the
// agent is not connected to the relay.
var ErrDisconnected = natsconn.ErrDisconnected

// ErrTooLarge is natsconn.ErrTooLarge: Publish's error for data over
// action.MaxMessageSize.
var ErrTooLarge = natsconn.ErrTooLarge

// ErrCredentials is natsconn.ErrCredentials: Dial's error about the
// credentials it was given.
var ErrCredentials = natsconn.ErrCredentials

// Dial is natsconn.Dial: a relay.Dialer for NATS that discards the
// connection's logs.
func Dial(ctx context.Context, agentID string, c relay.Credentials) (relay.Conn, error) {
	return natsconn.Dial(ctx, agentID, c)
}

// NewDialer is natsconn.NewDialer: a relay.Dialer for NATS that logs to
// logger.
func NewDialer(logger *slog.Logger) relay.Dialer {
	return natsconn.NewDialer(logger)
}
