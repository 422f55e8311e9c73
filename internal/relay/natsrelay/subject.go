package natsrelay

import (
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/natsconn"
)

// Subjects are defined in natsconn, the agent's side; see there.
const (
	agentPrefix  = natsconn.AgentPrefix
	serverPrefix = natsconn.ServerPrefix

	// QueueGroup is the NATS queue group servers receive in, so that each
	// message from an agent goes to one of several servers.
	QueueGroup = "mig-server"
)

// Subjects the hub receives on, in QueueGroup.
var receiveSubjects = []string{
	serverPrefix + relay.KindResult + ".*",
	serverPrefix + relay.KindHeartbeat + ".*",
}

// ErrKind is natsconn.ErrKind: a message kind that does not belong where it
// was used (a result sent to an agent, a command published by one).
var ErrKind = natsconn.ErrKind

// ErrSubject is natsconn.ErrSubject: a subject that is not one of the
// relay's.
var ErrSubject = natsconn.ErrSubject

func inboxSubject(id, kind string) (string, error) { return natsconn.InboxSubject(id, kind) }

func serverSubject(id, kind string) (string, error) { return natsconn.ServerSubject(id, kind) }

func agentSubscription(id string) string { return natsconn.AgentSubscription(id) }

func parseServerSubject(subject string) (id, kind string, err error) {
	return natsconn.ParseServerSubject(subject)
}

func parseInboxSubject(id, subject string) (kind string, err error) {
	return natsconn.ParseInboxSubject(id, subject)
}
