package natsrelay

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/relay"
)

const fuzzID = "0123456789abcdef0123456789abcdef"

// FuzzParseServerSubject: whatever subject a message arrives on, the hub
// either refuses it or gets a valid agent ID and kind that build exactly that
// subject again.
func FuzzParseServerSubject(f *testing.F) {
	for _, s := range []string{
		"mig.server.result." + fuzzID, "mig.server.heartbeat." + fuzzID, "mig.server.result.*",
		"mig.server.result." + fuzzID + ".x", "mig.server.command." + fuzzID, "mig.server.", "", ">",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		id, kind, err := parseServerSubject(subject)
		if err != nil {
			if !errors.Is(err, ErrSubject) {
				t.Fatalf("parseServerSubject(%q) = %v, want an error wrapping ErrSubject", subject, err)
			}
			return
		}
		if relay.CheckAgentID(id) != nil {
			t.Fatalf("parseServerSubject(%q) gave invalid agent id %q", subject, id)
		}
		again, err := serverSubject(id, kind)
		if err != nil || again != subject {
			t.Fatalf("serverSubject(%q, %q) = %q, %v; want %q", id, kind, again, err, subject)
		}
	})
}

// FuzzParseInboxSubject: an agent accepts only its own command and ack
// subjects.
func FuzzParseInboxSubject(f *testing.F) {
	for _, s := range []string{
		"mig.agent." + fuzzID + ".command", "mig.agent." + fuzzID + ".ack", "mig.agent." + fuzzID + ".result",
		"mig.agent." + fuzzID + ".command.x", "mig.agent.x.command", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		kind, err := parseInboxSubject(fuzzID, subject)
		if err != nil {
			if !errors.Is(err, ErrSubject) {
				t.Fatalf("parseInboxSubject(%q) = %v, want an error wrapping ErrSubject", subject, err)
			}
			return
		}
		again, err := inboxSubject(fuzzID, kind)
		if err != nil || again != subject {
			t.Fatalf("inboxSubject(%q) = %q, %v; want %q", kind, again, err, subject)
		}
	})
}

// FuzzAuthorize: whatever user name and password a client presents, even
// with an Authenticate that accepts everything, it gets either full rights as
// the hub (with the hub's password only) or the permissions of one valid agent
// ID, its own user name, with no wildcard reaching another agent's subjects.
func FuzzAuthorize(f *testing.F) {
	const hubPass = "hub-password"
	for _, s := range [][2]string{
		{fuzzID, "x"}, {hubUser, hubPass}, {hubUser, "x"}, {"*", "x"}, {">", "x"},
		{"mig.agent.>", "x"}, {strings.ToUpper(fuzzID), "x"}, {"", ""},
	} {
		f.Add(s[0], s[1])
	}
	var calls []string
	a := &authenticator{
		hubPass: hubPass,
		check: func(id, _ string) bool {
			calls = append(calls, id)
			return true
		},
		log: slog.New(slog.DiscardHandler),
	}
	f.Fuzz(func(t *testing.T, user, password string) {
		calls = calls[:0]
		u, ok := a.authorize(user, password)
		for _, c := range calls {
			if relay.CheckAgentID(c) != nil {
				t.Fatalf("Authenticate called with invalid agent id %q", c)
			}
		}
		if !ok {
			return
		}
		if user == hubUser {
			if password != hubPass || u.Permissions != nil {
				t.Fatalf("authorize(%q, %q) = %+v, want the hub only with its password", user, password, u)
			}
			return
		}
		if relay.CheckAgentID(user) != nil {
			t.Fatalf("authorize(%q) accepted an invalid agent id", user)
		}
		p := u.Permissions
		wantPub := []string{"mig.server.result." + user, "mig.server.heartbeat." + user}
		wantSub := []string{"mig.agent." + user + ".>"}
		if p == nil || p.Response != nil || p.Publish == nil || p.Subscribe == nil ||
			!slices.Equal(p.Publish.Allow, wantPub) || !slices.Equal(p.Subscribe.Allow, wantSub) {
			t.Fatalf("authorize(%q) permissions = %+v, want publish %v, subscribe %v, no responses",
				user, p, wantPub, wantSub)
		}
	})
}
