package keelrabbit_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	keelrabbit "github.com/keelpg/keel/integrations/rabbitmq"
	"github.com/keelpg/keel/internal/brokertest"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
)

// Messages go from the outbox through a relay, RabbitMQ and a Consumer
// into Postgres with one effect each and per-key order, although the
// handler fails the first delivery of every fifth message (held, then
// requeued) and a copy of every message is published again with its
// message-id (the inbox drops it).
func TestRelayToConsumer(t *testing.T) {
	t.Parallel()
	url := sharedBroker(t)
	queue := testQueue(t)
	pool := testdb.New(t)
	brokertest.CreateEffects(t, pool)
	const rounds = 30
	ks := brokertest.Keys(4)
	ctx := context.Background()
	if err := brokertest.Enqueue(ctx, pool, queue, ks, 0, rounds); err != nil {
		t.Fatal(err)
	}
	pub, err := keelrabbit.NewPublisher(keelrabbit.PublisherConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	brokertest.StartRelay(t, pool, pub, outbox.RelayConfig{PollInterval: 50 * time.Millisecond})
	want := rounds * len(ks)
	ch := channel(t)
	brokertest.WaitFor(t, time.Minute, "the relay to publish every message", func() bool { return queueDepth(t, ch, queue) == want })
	republish(t, ch, queue, want)

	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var flaky brokertest.FailFifths
	handler := func(ctx context.Context, tx pgx.Tx, m keelrabbit.Message) error {
		if m.Topic != queue || m.Type != "Counted" || m.Key == "" || m.RoutingKey != queue {
			t.Errorf("message %s: topic %q, type %q, key %q, routing key %q", m.ID, m.Topic, m.Type, m.Key, m.RoutingKey)
		}
		switch fail, again := flaky.Fail(m.ID, m.Payload); {
		case fail:
			if m.Attempt != 1 {
				t.Errorf("message %s failed first at attempt %d", m.ID, m.Attempt)
			}
			return brokertest.ErrFirstDelivery
		case again && m.Attempt != 2:
			t.Errorf("message %s came again at attempt %d, want 2", m.ID, m.Attempt)
		}
		return brokertest.WriteEffect(ctx, tx, m.ID, m.Key, m.Payload)
	}
	consumer, err := keelrabbit.NewConsumer(inbox, handler, keelrabbit.ConsumerConfig{
		URL: url, Queue: queue, RetryPolicy: keeltype.ExponentialBackoff{Initial: 10 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := consumer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, time.Minute, "every message and copy to be acked", func() bool {
		return brokertest.CountEffects(t, pool) == want && queueDepth(t, ch, queue) == 0
	})
	if err := consumer.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	brokertest.CheckEffects(t, pool, want)
	flaky.CheckRuns(t, want)
}

// republish publishes a copy of the queue's n messages with their
// message-ids, as a publisher whose confirm was lost would, and waits until
// the queue holds both.
func republish(t *testing.T, ch *amqp.Channel, queue string, n int) {
	t.Helper()
	var copies []amqp.Publishing
	for range n {
		d, ok, err := ch.Get(queue, false)
		if err != nil || !ok {
			t.Fatalf("get: %v, %v", ok, err)
		}
		copies = append(copies, amqp.Publishing{MessageId: d.MessageId, Type: d.Type, Headers: d.Headers, Body: d.Body, DeliveryMode: amqp.Persistent})
	}
	if err := ch.Nack(0, true, true); err != nil { // all back, in order
		t.Fatal(err)
	}
	for _, c := range copies {
		if err := ch.PublishWithContext(context.Background(), "", queue, false, false, c); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.WaitFor(t, time.Minute, "the copies", func() bool { return queueDepth(t, ch, queue) == 2*n })
}

// StopAndCancel abandons the message in hand: its transaction rolls back
// and it is requeued, so a consumer started again handles it, once.
func TestConsumerStopAndCancel(t *testing.T) {
	t.Parallel()
	url := sharedBroker(t)
	queue := testQueue(t)
	pool := testdb.New(t)
	brokertest.CreateEffects(t, pool)
	ch := channel(t)
	if err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{MessageId: "msg-one", Body: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	brokertest.StopAndCancel(t, pool, keelrabbit.ErrStarted, func(handle brokertest.Handler) brokertest.Consumer {
		c, err := keelrabbit.NewConsumer(inbox, func(ctx context.Context, tx pgx.Tx, m keelrabbit.Message) error {
			return handle(ctx, tx, m.ID, m.Payload)
		}, keelrabbit.ConsumerConfig{URL: url, Queue: queue})
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

// A panicking handler is a failed attempt, and a message without
// message-id cannot be deduplicated: it is rejected, never handled.
func TestConsumerPanicAndMissingID(t *testing.T) {
	t.Parallel()
	url := sharedBroker(t)
	queue := testQueue(t)
	pool := testdb.New(t)
	brokertest.CreateEffects(t, pool)
	ctx := context.Background()
	ch := channel(t)
	for _, m := range []amqp.Publishing{{Body: []byte("0")}, {MessageId: "msg-panics", Body: []byte("1")}} {
		if err := ch.PublishWithContext(ctx, "", queue, false, false, m); err != nil {
			t.Fatal(err)
		}
	}
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	c, err := keelrabbit.NewConsumer(inbox, func(ctx context.Context, tx pgx.Tx, m keelrabbit.Message) error {
		if calls.Add(1) == 1 {
			panic("handler bug")
		}
		return brokertest.WriteEffect(ctx, tx, m.ID, "k", m.Payload)
	}, keelrabbit.ConsumerConfig{URL: url, Queue: queue, RetryPolicy: keeltype.ExponentialBackoff{Initial: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, time.Minute, "the message to be handled after the panic", func() bool {
		return brokertest.CountEffects(t, pool) == 1 && queueDepth(t, ch, queue) == 0
	})
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var id string
	if err := pool.QueryRow(ctx, "SELECT id FROM effects").Scan(&id); err != nil || id != "msg-panics" || calls.Load() != 2 {
		t.Errorf("effect of %q (%v), handler ran %d times", id, err, calls.Load())
	}
}

func TestNewConsumerRefuses(t *testing.T) {
	t.Parallel()
	inbox, err := outbox.NewInbox(testdb.New(t), outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	handler := func(context.Context, pgx.Tx, keelrabbit.Message) error { return nil }
	ok := keelrabbit.ConsumerConfig{URL: "amqp://127.0.0.1/", Queue: "q"}
	for name, tc := range map[string]struct {
		inbox   *outbox.Inbox
		handler keelrabbit.Handler
		cfg     keelrabbit.ConsumerConfig
	}{
		"nil inbox":         {nil, handler, ok},
		"nil handler":       {inbox, nil, ok},
		"no queue":          {inbox, handler, keelrabbit.ConsumerConfig{URL: ok.URL}},
		"no URL":            {inbox, handler, keelrabbit.ConsumerConfig{Queue: "q"}},
		"negative prefetch": {inbox, handler, keelrabbit.ConsumerConfig{URL: ok.URL, Queue: "q", Prefetch: -1}},
	} {
		if _, err := keelrabbit.NewConsumer(tc.inbox, tc.handler, tc.cfg); !errors.Is(err, keelrabbit.ErrInvalidArgument) {
			t.Errorf("%s: error %v, want ErrInvalidArgument", name, err)
		}
	}
}
