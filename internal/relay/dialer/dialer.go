// Package dialer picks an agent's relay implementation by the scheme of the
// relay URL its enrollment returned: RabbitMQ for amqp:// and amqps://, NATS
// for nats:// and tls://. Agents link both, so the choice is the server's
// configuration, not a different agent build.
package dialer

import (
	"context"
	"log/slog"
	"strings"

	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/amqprelay"
	"github.com/migplatform/mig/internal/relay/natsconn"
)

// New returns a relay.Dialer that dispatches on the credentials' URL scheme
// and logs to logger (nil discards).
func New(logger *slog.Logger) relay.Dialer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	amqp := amqprelay.NewDialer(logger)
	nats := natsconn.NewDialer(logger)
	return func(ctx context.Context, agentID string, c relay.Credentials) (relay.Conn, error) {
		if IsAMQP(c.URL) {
			return amqp(ctx, agentID, c)
		}
		return nats(ctx, agentID, c)
	}
}

// IsAMQP reports whether a relay URL names RabbitMQ.
func IsAMQP(url string) bool {
	u := strings.ToLower(strings.TrimSpace(url))
	return strings.HasPrefix(u, "amqp://") || strings.HasPrefix(u, "amqps://")
}
