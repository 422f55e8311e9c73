package amqprelay

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/relaytest"
)

// benchAgents is the fan-out of the dispatch benchmark:
// MIG_BENCH_AGENTS, or 10,000.
func benchAgents() int {
	if n, err := strconv.Atoi(os.Getenv("MIG_BENCH_AGENTS")); err == nil && n > 0 {
		return n
	}
	return 10000
}

// BenchmarkDispatch10000 measures one action dispatched to 10,000 agent
// queues (MIG_BENCH_AGENTS changes the number): Send publishes 10,000 persistent 1.5 KB commands and returns once
// RabbitMQ has confirmed them all. "raw" does the same with amqp091-go
// directly on one confirm-mode channel, for the ratio.
func BenchmarkDispatch10000(b *testing.B) {
	br := testBroker(b)
	// Confirms for 10,000 persistent messages can take longer than Send's
	// default wait on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	hub, err := NewHub(ctx, br.amqpURL.String(), Options{})
	if err != nil {
		b.Fatalf("NewHub = %v", err)
	}
	defer hub.Close()
	ids := make([]string, benchAgents())
	for i := range ids {
		ids[i] = relaytest.NewAgentID(b)
	}
	declareAgentQueues(b, br.amqpURL.String(), ids)
	data := bytes.Repeat([]byte("x"), 1500)
	msgs := make([]relay.Outbound, len(ids))
	for i, id := range ids {
		msgs[i] = relay.Outbound{AgentID: id, Kind: relay.KindCommand, Data: data, Expires: time.Now().Add(time.Hour)}
	}
	b.Run("hub", func(b *testing.B) {
		for b.Loop() {
			if err := hub.Send(ctx, msgs); err != nil {
				b.Fatalf("Send = %v", err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/dispatch")
	})
	b.Run("raw", func(b *testing.B) {
		conn, err := amqp.Dial(br.amqpURL.String())
		if err != nil {
			b.Fatalf("Dial = %v", err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			b.Fatalf("Channel = %v", err)
		}
		if err := ch.Confirm(false); err != nil {
			b.Fatalf("Confirm = %v", err)
		}
		dcs := make([]*amqp.DeferredConfirmation, len(ids))
		for b.Loop() {
			for i, id := range ids {
				dcs[i], err = ch.PublishWithDeferredConfirm(AgentExchange, id, true, false,
					amqp.Publishing{DeliveryMode: amqp.Persistent, Type: relay.KindCommand, Expiration: "3600000", Body: data})
				if err != nil {
					b.Fatalf("Publish = %v", err)
				}
			}
			for _, dc := range dcs {
				if ok, err := dc.WaitContext(ctx); !ok || err != nil {
					b.Fatalf("not confirmed: %v", err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/dispatch")
	})
}

// declareAgentQueues declares the agents' queues and bindings directly, as
// the Provisioner would, without 10,000 users.
func declareAgentQueues(b *testing.B, url string, ids []string) {
	b.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatalf("Dial = %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatalf("Channel = %v", err)
	}
	args := amqp.Table{"x-queue-type": "classic", "x-max-length": int64(AgentQueueMaxLength)}
	for _, id := range ids {
		if _, err := ch.QueueDeclare(AgentQueue(id), true, false, false, false, args); err != nil {
			b.Fatalf("QueueDeclare = %v", err)
		}
		if err := ch.QueueBind(AgentQueue(id), id, AgentExchange, false, nil); err != nil {
			b.Fatalf("QueueBind = %v", err)
		}
	}
	b.Logf("%s", fmt.Sprint(len(ids), " agent queues declared"))
}
