package natsrelay

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/relaytest"
)

// BenchmarkAgentLogin measures one agent login (connect, authenticate,
// close): on the embedded relay, whose server checks the password itself
// (the baseline), and on a three-node nats-server cluster that asks the
// Callout, with the agent on the Callout's node or on another one (the
// request and the answer cross a route), with and without an xkey.
func BenchmarkAgentLogin(b *testing.B) {
	login := func(b *testing.B, url, id, password string) {
		for b.Loop() {
			nc, err := nats.Connect(url, nats.UserInfo(id, password), nats.NoReconnect())
			if err != nil {
				b.Fatalf("Connect = %v", err)
			}
			nc.Close()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
	}
	b.Run("embedded", func(b *testing.B) {
		r := startTestRelay(b, nil, "")
		id := relaytest.NewAgentID(b)
		p, err := relay.NewPassword()
		if err != nil {
			b.Fatal(err)
		}
		r.mu.Lock()
		r.passwords[id] = relay.HashPassword(p)
		r.mu.Unlock()
		login(b, r.server().ClientURL(), id, p)
	})
	for _, encrypt := range []bool{false, true} {
		name := "callout"
		if encrypt {
			name += "-xkey"
		}
		c := startCalloutCluster(b, encrypt, 0)
		id := relaytest.NewAgentID(b)
		creds := c.creds(b, id)
		b.Run(name+"-same-node", func(b *testing.B) { login(b, c.urls(0), id, creds.Password) })
		b.Run(name+"-other-node", func(b *testing.B) { login(b, c.urls(1), id, creds.Password) })
	}
}

// BenchmarkCalloutAnswer measures the Callout's work for one login:
// verifying the request, checking the password, signing the user JWT and
// the answer (and decrypting and encrypting with an xkey).
func BenchmarkCalloutAnswer(b *testing.B) {
	for _, encrypt := range []bool{false, true} {
		name := "clear"
		if encrypt {
			name = "xkey"
		}
		b.Run(name, func(b *testing.B) {
			tc := newTestCallout(b, encrypt)
			r := newRequest(b, tc.issuerPub, tc.agent, tc.password)
			data, serverXPub := []byte(r.encode(b)), ""
			if encrypt {
				xpub, _ := tc.xkey.PublicKey()
				sx := newCurveKey(b)
				serverXPub, _ = sx.PublicKey()
				var err error
				if data, err = sx.Seal(data, xpub); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if _, err := tc.answer(data, serverXPub); err != nil {
					b.Fatalf("answer = %v", err)
				}
			}
		})
	}
}
