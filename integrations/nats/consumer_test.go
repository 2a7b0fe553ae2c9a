package keelnats_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	keelnats "github.com/keelpg/keel/integrations/nats"
	"github.com/keelpg/keel/internal/brokertest"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
)

// Messages go from the outbox through a relay, JetStream and a Consumer
// into Postgres with one effect each and per-key order, although the
// handler fails the first delivery of every fifth message (nak, delivered
// again) and a copy of every message is published again with its keel id
// but without Nats-Msg-Id, past JetStream's dedup (the inbox drops it).
func TestRelayToConsumer(t *testing.T) {
	t.Parallel()
	nc, js := sharedJetStream(t)
	stream, prefix := testStream(t, js)
	pool := testdb.New(t)
	brokertest.CreateEffects(t, pool)
	const rounds = 30
	ks := brokertest.Keys(4)
	topic := prefix + ".counts"
	ctx := context.Background()
	if err := brokertest.Enqueue(ctx, pool, topic, ks, 0, rounds); err != nil {
		t.Fatal(err)
	}

	pub, err := keelnats.NewPublisher(js, keelnats.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	brokertest.StartRelay(t, pool, pub, outbox.RelayConfig{PollInterval: 50 * time.Millisecond})
	brokertest.WaitFor(t, time.Minute, "the relay to publish every message", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == uint64(rounds*len(ks))
	})
	copies := republishWithoutDedup(t, nc, stream)

	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var flaky brokertest.FailFifths
	handler := func(ctx context.Context, tx pgx.Tx, m keelnats.Message) error {
		if m.Topic != topic || m.Type != "Counted" || m.Key == "" {
			t.Errorf("message %s: topic %q, type %q, key %q", m.ID, m.Topic, m.Type, m.Key)
		}
		if fail, _ := flaky.Fail(m.ID, m.Payload); fail {
			if m.Delivered != 1 {
				t.Errorf("message %s failed first on delivery %d", m.ID, m.Delivered)
			}
			return brokertest.ErrFirstDelivery
		}
		return brokertest.WriteEffect(ctx, tx, m.ID, m.Key, m.Payload)
	}
	source := orderedConsumer(t, stream, 30*time.Second)
	consumer, err := keelnats.NewConsumer(inbox, source, handler, keelnats.ConsumerConfig{
		RetryPolicy: keeltype.ExponentialBackoff{Initial: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := consumer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	want := rounds * len(ks)
	brokertest.WaitFor(t, time.Minute, "every message and copy to be acked", func() bool {
		return brokertest.CountEffects(t, pool) == want && acked(t, source) == uint64(want+copies)
	})
	flaky.CheckRuns(t, want)
	if err := consumer.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	brokertest.CheckEffects(t, pool, want)
}

// acked is how far source's messages are acked, as a stream sequence,
// once none is pending or waiting for its ack.
func acked(t *testing.T, source jetstream.Consumer) uint64 {
	t.Helper()
	info, err := source.Info(context.Background())
	if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
		return 0
	}
	return info.AckFloor.Stream
}

// republishWithoutDedup publishes a copy of each message of the stream
// with its keel headers but no Nats-Msg-Id, as a publisher whose dedup
// window had passed would, and returns how many.
func republishWithoutDedup(t *testing.T, nc *nats.Conn, stream jetstream.Stream) int {
	t.Helper()
	ctx := context.Background()
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.State.Msgs)
	for seq := uint64(1); seq <= uint64(n); seq++ {
		raw, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		msg := nats.NewMsg(raw.Subject)
		msg.Data = raw.Data
		for k, v := range raw.Header {
			if k != jetstream.MsgIDHeader {
				msg.Header[k] = v
			}
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// StopAndCancel abandons the message in hand: its transaction rolls back
// and it is not acked, so a consumer started again handles it, once.
func TestConsumerStopAndCancel(t *testing.T) {
	t.Parallel()
	_, js := sharedJetStream(t)
	stream, prefix := testStream(t, js)
	pool := testdb.New(t)
	brokertest.CreateEffects(t, pool)
	if _, err := js.Publish(context.Background(), prefix+".one", []byte("0"), jetstream.WithMsgID("msg-one")); err != nil {
		t.Fatal(err)
	}
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	source := orderedConsumer(t, stream, time.Second)
	brokertest.StopAndCancel(t, pool, keelnats.ErrStarted, func(handle brokertest.Handler) brokertest.Consumer {
		c, err := keelnats.NewConsumer(inbox, source, func(ctx context.Context, tx pgx.Tx, m keelnats.Message) error {
			if m.ID != "msg-one" {
				t.Errorf("id %q, want the Nats-Msg-Id msg-one", m.ID)
			}
			return handle(ctx, tx, m.ID, m.Payload)
		}, keelnats.ConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

// A panicking handler is a failed attempt: the message is nak'ed and
// handled when it comes again.
func TestConsumerHandlerPanics(t *testing.T) {
	t.Parallel()
	_, js := sharedJetStream(t)
	stream, prefix := testStream(t, js)
	pool := testdb.New(t)
	brokertest.CreateEffects(t, pool)
	ctx := context.Background()
	if _, err := js.Publish(ctx, prefix+".one", []byte("0")); err != nil {
		t.Fatal(err)
	}
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	var id atomic.Value
	c, err := keelnats.NewConsumer(inbox, orderedConsumer(t, stream, 30*time.Second), func(ctx context.Context, tx pgx.Tx, m keelnats.Message) error {
		id.Store(m.ID)
		if calls.Add(1) == 1 {
			panic("handler bug")
		}
		return brokertest.WriteEffect(ctx, tx, m.ID, "k", m.Payload)
	}, keelnats.ConsumerConfig{RetryPolicy: keeltype.ExponentialBackoff{Initial: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, time.Minute, "the message to be handled after the panic", func() bool { return brokertest.CountEffects(t, pool) == 1 })
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if want := stream.CachedInfo().Config.Name + ":1"; id.Load() != want {
		t.Errorf("a message without ids has id %v, want %s", id.Load(), want)
	}
}

func TestNewConsumerRefuses(t *testing.T) {
	t.Parallel()
	_, js := sharedJetStream(t)
	stream, _ := testStream(t, js)
	source := orderedConsumer(t, stream, time.Second)
	inbox, err := outbox.NewInbox(testdb.New(t), outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	handler := func(context.Context, pgx.Tx, keelnats.Message) error { return nil }
	for name, tc := range map[string]struct {
		inbox   *outbox.Inbox
		source  jetstream.Consumer
		handler keelnats.Handler
	}{
		"nil inbox":   {nil, source, handler},
		"nil source":  {inbox, nil, handler},
		"nil handler": {inbox, source, nil},
	} {
		if _, err := keelnats.NewConsumer(tc.inbox, tc.source, tc.handler, keelnats.ConsumerConfig{}); !errors.Is(err, keelnats.ErrInvalidArgument) {
			t.Errorf("%s: error %v, want ErrInvalidArgument", name, err)
		}
	}
}
