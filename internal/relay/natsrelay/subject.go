package natsrelay

import (
	"errors"
	"fmt"
	"strings"

	"github.com/migplatform/mig/internal/relay"
)

// Subjects. An agent's inbox is agentPrefix + id + "." + kind (command or
// ack); agents publish to serverPrefix + kind + "." + id (result or
// heartbeat). The agent ID is always the last token the relay's permissions
// bind to the connection, so the server reads the sender from the subject.
const (
	agentPrefix  = "mig.agent."
	serverPrefix = "mig.server."

	// QueueGroup is the NATS queue group servers receive in, so that each
	// message from an agent goes to one of several servers.
	QueueGroup = "mig-server"
)

// Subjects the hub receives on, in QueueGroup.
var receiveSubjects = []string{
	serverPrefix + relay.KindResult + ".*",
	serverPrefix + relay.KindHeartbeat + ".*",
}

// ErrKind is wrapped by errors about a message kind that does not belong
// where it was used (a result sent to an agent, a command published by one).
var ErrKind = errors.New("wrong message kind")

// ErrSubject is wrapped by errors about a subject that is not one of the
// relay's.
var ErrSubject = errors.New("unexpected subject")

// inboxSubject returns the subject of agent id's inbox for kind, after
// checking both.
func inboxSubject(id, kind string) (string, error) {
	if err := relay.CheckAgentID(id); err != nil {
		return "", err
	}
	if kind != relay.KindCommand && kind != relay.KindAck {
		return "", fmt.Errorf("%w: %q cannot be sent to an agent", ErrKind, kind)
	}
	return agentPrefix + id + "." + kind, nil
}

// serverSubject returns the subject agent id publishes kind on, after
// checking both.
func serverSubject(id, kind string) (string, error) {
	if err := relay.CheckAgentID(id); err != nil {
		return "", err
	}
	if kind != relay.KindResult && kind != relay.KindHeartbeat {
		return "", fmt.Errorf("%w: %q cannot be published by an agent", ErrKind, kind)
	}
	return serverPrefix + kind + "." + id, nil
}

// agentSubscription is the only subject an agent may subscribe to.
func agentSubscription(id string) string { return agentPrefix + id + ".>" }

// parseServerSubject splits a subject agents publish on into the agent ID and
// the message kind. The relay's permissions make the ID the publisher's own.
func parseServerSubject(subject string) (id, kind string, err error) {
	rest, ok := strings.CutPrefix(subject, serverPrefix)
	if !ok {
		return "", "", fmt.Errorf("%w: %q does not start with %q", ErrSubject, subject, serverPrefix)
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

// parseInboxSubject returns the kind of a message in agent id's inbox.
func parseInboxSubject(id, subject string) (kind string, err error) {
	kind, ok := strings.CutPrefix(subject, agentPrefix+id+".")
	if !ok {
		return "", fmt.Errorf("%w: %q is not in the inbox of agent %s", ErrSubject, subject, id)
	}
	if kind != relay.KindCommand && kind != relay.KindAck {
		return "", fmt.Errorf("%w: %q: %w: %q", ErrSubject, subject, ErrKind, kind)
	}
	return kind, nil
}
