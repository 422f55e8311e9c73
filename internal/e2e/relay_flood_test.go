package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/natsconn"
)

// TestRelayFloodAndIntruders attacks the relay that the real mig-server
// -dev embeds (NATS), on loopback: a flood of connections that never log
// in, a client that sends its CONNECT a byte at a time, garbage, a login
// with a wrong password, an enrolled agent (its own credentials) that
// subscribes to another agent's inbox or publishes in its name, and a
// message over the relay's payload limit. The relay closes every such
// connection, the intruder receives nothing of the other agent's, and the
// platform keeps answering investigations through the relay meanwhile.
func TestRelayFloodAndIntruders(t *testing.T) {
	apiAddr, relayAddr := freeAddr(t), freeAddr(t)
	home := t.TempDir()
	env := []string{"HOME=" + home, "MIG_CONFIG="}
	srv := start(t, env, bins.server, "-dev", "-api", apiAddr, "-relay", relayAddr)
	waitFor(t, 30*time.Second, "mig-server -dev", func() bool { return strings.Contains(srv.output(), "API:") })
	dir := filepath.Join(home, ".mig", "dev")

	// An enrolled agent turned intruder: enrolled by the real agent, then
	// stopped, its credentials in the attacker's hands.
	intruderState := filepath.Join(t.TempDir(), "intruder")
	intruder := start(t, nil, bins.agent, "-c", writeAgentConfigWith(t, dir, "https://"+apiAddr+"/api/v1", func(c map[string]any) {
		c["name"], c["statedir"] = "intruder", intruderState
	}))
	waitFor(t, 30*time.Second, "both agents to be online", func() bool {
		out, _, code := run(t, env, "agents", "-render", "json")
		return code == 0 && strings.Count(out, `"online"`) == 2
	})
	intruder.stop()
	credData, err := os.ReadFile(filepath.Join(intruderState, "relay.json"))
	must(t, err)
	var cred struct {
		AgentID string            `json:"agentid"`
		Relay   relay.Credentials `json:"relay"`
	}
	must(t, json.Unmarshal(credData, &cred))
	out, _, _ := run(t, env, "agents", "-render", "json")
	victim := ""
	for _, line := range strings.Split(out, "\n") {
		var a action.Agent
		if json.Unmarshal([]byte(line), &a) == nil && a.ID != "" && a.ID != cred.AgentID {
			victim = a.ID
		}
	}
	if victim == "" {
		t.Fatalf("no other agent than the intruder in:\n%s", out)
	}

	// works runs an investigation on the dev agent through the relay.
	works := func() error {
		out, errOut, code := run(t, env, "file", "-t", "name!='intruder'", "-path", "/etc", "-name", "^hostname$")
		if code != 0 || !strings.Contains(out, "/etc/hostname") {
			return fmt.Errorf("mig file: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		return nil
	}
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	must(t, err)
	pool.AppendCertsFromPEM(ca)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	attacker := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	// closedWithin reports whether the relay closes c before d passes.
	closedWithin := func(c net.Conn, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, c)
		ne, ok := err.(net.Error)
		return !ok || !ne.Timeout()
	}
	// natsTLS connects to the relay, reads its INFO and upgrades to TLS,
	// as a NATS client does.
	natsTLS := func(t *testing.T) *tls.Conn {
		t.Helper()
		raw, err := attacker.Dial("tcp", relayAddr)
		must(t, err)
		_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := bufio.NewReader(io.LimitReader(raw, 64<<10)).ReadString('\n'); err != nil {
			t.Fatalf("reading the relay's INFO: %v", err)
		}
		_ = raw.SetReadDeadline(time.Time{})
		c := tls.Client(raw, tlsConf)
		must(t, c.Handshake())
		return c
	}

	t.Run("connection flood", func(t *testing.T) {
		atk := attack(t, "relay-flood", "flood of connections that never log in")
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range 200 {
			c, err := attacker.Dial("tcp", relayAddr)
			if err != nil {
				break
			}
			conns = append(conns, c)
		}
		if err := works(); err != nil {
			atk.executed("the platform does not answer during the flood: %v", err)
		}
		for i, c := range conns {
			if !closedWithin(c, 60*time.Second) {
				atk.executed("flood connection %d of %d still open after 60s", i, len(conns))
				break
			}
		}
		atk.refused()
	})
	t.Run("CONNECT a byte at a time", func(t *testing.T) {
		atk := attack(t, "relay-flood", "slow client: CONNECT a byte at a time")
		c := natsTLS(t)
		defer c.Close()
		msg := `CONNECT {"user":"` + cred.AgentID + `","pass":"` + strings.Repeat("x", 200)
		closed := false
		for i := 0; i < len(msg) && !closed; i++ {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write([]byte{msg[i]}); err != nil || closedWithin(c, 500*time.Millisecond) {
				closed = true
			}
		}
		if !closed {
			atk.executed("the relay kept a connection that took %d×0.5s to send half a CONNECT", len(msg))
		}
		atk.refused()
	})
	t.Run("garbage", func(t *testing.T) {
		atk := attack(t, "relay-flood", "protocol garbage before logging in")
		c := natsTLS(t)
		defer c.Close()
		_, _ = c.Write([]byte("PUB mig.server.x.result 99999999999\r\n\x00\xff\r\nSUB > 1\r\n"))
		if !closedWithin(c, 30*time.Second) {
			atk.executed("the relay kept a connection that sent garbage")
		}
		atk.refused()
	})

	connect := func(t *testing.T, user, pass string, errs chan<- error) (*nats.Conn, error) {
		t.Helper()
		return nats.Connect(cred.Relay.URL, nats.UserInfo(user, pass), nats.Secure(tlsConf), nats.NoReconnect(),
			nats.Timeout(10*time.Second),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				select {
				case errs <- err:
				default:
				}
			}))
	}
	t.Run("wrong password", func(t *testing.T) {
		atk := attack(t, "relay-intruder", "login with an agent's ID and a wrong password")
		nc, err := connect(t, victim, "not-the-password", make(chan error, 1))
		if err == nil {
			nc.Close()
			atk.executed("the relay let a wrong password log in as %s", victim)
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("login with a wrong password: %v, want an authorization violation", err)
		}
		atk.refused()
	})
	t.Run("another agent's inbox", func(t *testing.T) {
		atk := attack(t, "relay-intruder", "an enrolled agent subscribes to another agent's inbox")
		errs := make(chan error, 4)
		nc, err := connect(t, cred.Relay.User, cred.Relay.Password, errs)
		must(t, err)
		defer nc.Close()
		sub, err := nc.SubscribeSync(natsconn.AgentSubscription(victim))
		must(t, err)
		must(t, nc.Flush())
		if err := works(); err != nil { // a command is sent to the victim meanwhile
			t.Fatal(err)
		}
		if m, err := sub.NextMsg(2 * time.Second); err == nil {
			atk.executed("the intruder received a message for %s on %s", victim, m.Subject)
		}
		select {
		case err := <-errs:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Errorf("the relay's error is %v, want a permissions violation", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the relay did not refuse the subscription")
		}
		atk.refused()
	})
	t.Run("publishing in another agent's name", func(t *testing.T) {
		atk := attack(t, "relay-intruder", "an enrolled agent publishes on another agent's subject")
		errs := make(chan error, 4)
		nc, err := connect(t, cred.Relay.User, cred.Relay.Password, errs)
		must(t, err)
		defer nc.Close()
		subj, err := natsconn.ServerSubject(victim, relay.KindHeartbeat)
		must(t, err)
		must(t, nc.Publish(subj, []byte(`{"v":1,"agent":{"id":"`+victim+`","name":"forged"}}`)))
		must(t, nc.Flush())
		select {
		case err := <-errs:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				atk.executed("publishing on %s: %v, want a permissions violation", subj, err)
			}
		case <-time.After(10 * time.Second):
			atk.executed("the relay took a message on %s from %s", subj, cred.AgentID)
		}
		atk.refused()
	})
	t.Run("payload over the limit", func(t *testing.T) {
		atk := attack(t, "relay-flood", "a message over the relay's payload limit")
		c := natsTLS(t)
		defer c.Close()
		subj, err := natsconn.ServerSubject(cred.AgentID, relay.KindResult)
		must(t, err)
		connectMsg, _ := json.Marshal(map[string]any{"user": cred.Relay.User, "pass": cred.Relay.Password, "verbose": false, "pedantic": false, "tls_required": true})
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		_, err = fmt.Fprintf(c, "CONNECT %s\r\nPING\r\nPUB %s %d\r\n", connectMsg, subj, 64<<20)
		must(t, err)
		b, _ := io.ReadAll(io.LimitReader(c, 64<<10))
		if !strings.Contains(string(b), "Maximum Payload") {
			atk.executed("announcing a 64 MiB message got %q, want a maximum payload violation", b)
		}
		atk.refused()
	})
	if err := works(); err != nil {
		t.Errorf("after the attacks: %v", err)
	}
}
