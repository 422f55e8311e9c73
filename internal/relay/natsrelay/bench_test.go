package natsrelay

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/relaytest"
)

// benchAgents is the fan-out of the dispatch benchmark.
const benchAgents = 10000

// BenchmarkDispatch10000 measures one action dispatched to 10,000 agent
// inboxes on the embedded server: Send publishes 10,000 1.5 KB commands and
// returns once the server has them all (flush). A subscriber to every inbox
// makes the server route each message. "inprocess" and "network" are the
// two hubs; "raw" is nats.go publishing the same messages and flushing, for
// the ratio.
func BenchmarkDispatch10000(b *testing.B) {
	r := startTestRelay(b, nil, "")
	srv := r.server()
	ctx := context.Background()
	sink, err := nats.Connect(srv.ClientURL(), nats.UserInfo(HubUser, srv.hubPass))
	if err != nil {
		b.Fatalf("connect = %v", err)
	}
	defer sink.Close()
	var got atomic.Int64
	sub, err := sink.Subscribe(agentPrefix+"*."+relay.KindCommand, func(*nats.Msg) { got.Add(1) })
	if err != nil {
		b.Fatalf("Subscribe = %v", err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		b.Fatalf("SetPendingLimits = %v", err)
	}
	if err := sink.Flush(); err != nil {
		b.Fatalf("Flush = %v", err)
	}
	data := bytes.Repeat([]byte("x"), 1500)
	msgs := make([]relay.Outbound, benchAgents)
	for i := range msgs {
		msgs[i] = relay.Outbound{AgentID: relaytest.NewAgentID(b), Kind: relay.KindCommand, Data: data, Expires: time.Now().Add(time.Hour)}
	}
	run := func(b *testing.B, send func() error) {
		for b.Loop() {
			if err := send(); err != nil {
				b.Fatalf("send = %v", err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/dispatch")
	}
	inproc, err := srv.NewHub(ctx)
	if err != nil {
		b.Fatalf("NewHub = %v", err)
	}
	defer inproc.Close()
	network, err := NewHub(ctx, srv.ClientURL(), HubUser, srv.hubPass, nil, nil)
	if err != nil {
		b.Fatalf("NewHub = %v", err)
	}
	defer network.Close()
	b.Run("inprocess", func(b *testing.B) { run(b, func() error { return inproc.Send(ctx, msgs) }) })
	b.Run("network", func(b *testing.B) { run(b, func() error { return network.Send(ctx, msgs) }) })
	b.Run("raw", func(b *testing.B) {
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(HubUser, srv.hubPass))
		if err != nil {
			b.Fatalf("connect = %v", err)
		}
		defer nc.Close()
		run(b, func() error {
			for _, m := range msgs {
				if err := nc.Publish(agentPrefix+m.AgentID+"."+m.Kind, m.Data); err != nil {
					return err
				}
			}
			return nc.Flush()
		})
	})
	b.Logf("subscriber received %d messages", got.Load())
}
