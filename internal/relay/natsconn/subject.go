package natsconn

import (
	"errors"
	"fmt"
	"strings"

	"github.com/migplatform/mig/internal/relay"
)

// Subjects. An agent's inbox is AgentPrefix + id + "." + kind (command or
// ack); agents publish to ServerPrefix + kind + "." + id (result or
// heartbeat). The agent ID is always the last token the relay's permissions
// bind to the connection, so the server reads the sender from the subject.
const (
	AgentPrefix  = "mig.agent."
	ServerPrefix = "mig.server."
)

// ErrKind is wrapped by errors about a message kind that does not belong
// where it was used (a result sent to an agent, a command published by one).
var ErrKind = errors.New("wrong message kind")

// ErrSubject is wrapped by errors about a subject that is not one of the
// relay's.
var ErrSubject = errors.New("unexpected subject")

// InboxSubject returns the subject of agent id's inbox for kind, after
// checking both.
func InboxSubject(id, kind string) (string, error) {
	if err := relay.CheckAgentID(id); err != nil {
		return "", err
	}
	if kind != relay.KindCommand && kind != relay.KindAck {
		return "", fmt.Errorf("%w: %q cannot be sent to an agent", ErrKind, kind)
	}
	return AgentPrefix + id + "." + kind, nil
}

// ServerSubject returns the subject agent id publishes kind on, after
// checking both.
func ServerSubject(id, kind string) (string, error) {
	if err := relay.CheckAgentID(id); err != nil {
		return "", err
	}
	if kind != relay.KindResult && kind != relay.KindHeartbeat {
		return "", fmt.Errorf("%w: %q cannot be published by an agent", ErrKind, kind)
	}
	return ServerPrefix + kind + "." + id, nil
}

// AgentSubscription is the only subject an agent may subscribe to.
func AgentSubscription(id string) string { return AgentPrefix + id + ".>" }

// ParseServerSubject splits a subject agents publish on into the agent ID and
// the message kind. The relay's permissions make the ID the publisher's own.
func ParseServerSubject(subject string) (id, kind string, err error) {
	rest, ok := strings.CutPrefix(subject, ServerPrefix)
	if !ok {
		return "", "", fmt.Errorf("%w: %q does not start with %q", ErrSubject, subject, ServerPrefix)
	}
	kind, id, ok = strings.Cut(rest, ".")
	if !ok {
		return "", "", fmt.Errorf("%w: %q has no agent id", ErrSubject, subject)
	}
	if kind != relay.KindResult && kind != relay.KindHeartbeat {
		return "", "", fmt.Errorf("%w: %q: %w: %q", ErrSubject, subject, ErrKind, kind)
	}
	if err := relay.CheckAgentID(id); err != nil {
		return "", "", fmt.Errorf("%w: %q: %w", ErrSubject, subject, err)
	}
	return id, kind, nil
}

// ParseInboxSubject returns the kind of a message in agent id's inbox.
func ParseInboxSubject(id, subject string) (kind string, err error) {
	kind, ok := strings.CutPrefix(subject, AgentPrefix+id+".")
	if !ok {
		return "", fmt.Errorf("%w: %q is not in the inbox of agent %s", ErrSubject, subject, id)
	}
	if kind != relay.KindCommand && kind != relay.KindAck {
		return "", fmt.Errorf("%w: %q: %w: %q", ErrSubject, subject, ErrKind, kind)
	}
	return kind, nil
}
