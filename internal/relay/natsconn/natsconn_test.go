package natsconn

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/relay"
)

const testID = "0123456789abcdef0123456789abcdef"

// TestNoNATSServer checks that neither this package nor the agent binary
// links the NATS server (see the package documentation for why).
func TestNoNATSServer(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}",
		"github.com/migplatform/mig/internal/relay/natsconn", "github.com/migplatform/mig/cmd/mig-agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/nats-io/nats-server") {
			t.Errorf("natsconn or mig-agent depends on %s", pkg)
		}
	}
}

func TestSubjects(t *testing.T) {
	in, err := InboxSubject(testID, relay.KindCommand)
	if err != nil || in != "mig.agent."+testID+".command" {
		t.Fatalf("InboxSubject = %q, %v", in, err)
	}
	if kind, err := ParseInboxSubject(testID, in); err != nil || kind != relay.KindCommand {
		t.Errorf("ParseInboxSubject(%q) = %q, %v; want command", in, kind, err)
	}
	out, err := ServerSubject(testID, relay.KindResult)
	if err != nil || out != "mig.server.result."+testID {
		t.Fatalf("ServerSubject = %q, %v", out, err)
	}
	if id, kind, err := ParseServerSubject(out); err != nil || id != testID || kind != relay.KindResult {
		t.Errorf("ParseServerSubject(%q) = %q, %q, %v", out, id, kind, err)
	}
	if got := AgentSubscription(testID); got != "mig.agent."+testID+".>" {
		t.Errorf("AgentSubscription = %q", got)
	}
	refused := []struct {
		name string
		err  error
		want error
	}{
		{"result to an agent", second(InboxSubject(testID, relay.KindResult)), ErrKind},
		{"command from an agent", second(ServerSubject(testID, relay.KindCommand)), ErrKind},
		{"another agent's inbox", second(ParseInboxSubject(testID, "mig.agent.ffffffffffffffffffffffffffffffff.command")), ErrSubject},
		{"a result in an inbox", second(ParseInboxSubject(testID, "mig.agent."+testID+".result")), ErrSubject},
		{"wildcard sender", third(ParseServerSubject("mig.server.result.*")), ErrSubject},
	}
	for _, tt := range refused {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: error %v, want one wrapping %v", tt.name, tt.err, tt.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func third[T, U any](_ T, _ U, err error) error { return err }

func TestDialRefusesBadCredentials(t *testing.T) {
	tests := []struct {
		name string
		id   string
		c    relay.Credentials
	}{
		{"bad agent id", "not-an-id", relay.Credentials{URL: "nats://127.0.0.1:1"}},
		{"user is another agent", testID, relay.Credentials{URL: "nats://127.0.0.1:1", User: "ffffffffffffffffffffffffffffffff"}},
		{"no url", testID, relay.Credentials{}},
		{"ca without a certificate", testID, relay.Credentials{URL: "tls://127.0.0.1:1", CA: "not PEM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(t.Context(), tt.id, tt.c)
			if !errors.Is(err, ErrCredentials) {
				if c != nil {
					c.Close()
				}
				t.Errorf("Dial = %v, want an error wrapping ErrCredentials", err)
			}
		})
	}
}
