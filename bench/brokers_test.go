package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	keelnats "github.com/keelpg/keel/integrations/nats"
	keelrabbit "github.com/keelpg/keel/integrations/rabbitmq"
	"github.com/keelpg/keel/outbox"
)

// The broker benchmarks: keel's relay draining relayMessages unkeyed
// messages from the outbox into NATS JetStream and into RabbitMQ through
// the integrations' publishers, against each broker's own publish rate
// from a bare client that sends the same messages in batches of floorBatch
// (the relay's default batch) and awaits each batch's acks or confirms:
//
//	cd bench && go test -run '^$' -bench Broker -benchtime 1x .
//
// NATS is NATS_URL (default nats://127.0.0.1:4222), publishing to a file
// stream of its own with a 2-minute dedup window, every message with a
// Nats-Msg-Id; RabbitMQ is RABBITMQ_URL (default
// amqp://guest:guest@127.0.0.1:5672/), publishing persistent, mandatory
// messages to a durable queue of its own on a channel in confirm mode. A
// broker that cannot be reached skips its cases.

func benchNATSURL() string { return cmp.Or(os.Getenv("NATS_URL"), nats.DefaultURL) }

func benchRabbitURL() string {
	return cmp.Or(os.Getenv("RABBITMQ_URL"), "amqp://guest:guest@127.0.0.1:5672/")
}

// countingRelay counts what the publisher it wraps delivered.
type countingRelay struct {
	outbox.Publisher
	n atomic.Int64
}

func (c *countingRelay) Publish(ctx context.Context, batch []outbox.Delivery) []error {
	errs := c.Publisher.Publish(ctx, batch)
	for _, err := range errs {
		if err == nil {
			c.n.Add(1)
		}
	}
	return errs
}

// relayThrough enqueues relayMessages unkeyed messages of the topic
// destinationName and returns the rate at which one relay with default
// settings delivers them through pub.
func relayThrough(b *testing.B, pub outbox.Publisher) float64 {
	b.Helper()
	pool := freshDB(b, true, 16)
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer box.Close()
	keelEnqueue(b, pool, box, 1000, relayMessages/1000, noKey)
	counted := &countingRelay{Publisher: pub}
	r, err := outbox.NewRelay(pool, counted, outbox.RelayConfig{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { _ = r.Run(ctx); close(done) }()
	waitCount(b, &counted.n, relayMessages)
	elapsed := time.Since(start)
	cancel()
	<-done
	return float64(relayMessages) / elapsed.Seconds()
}

// benchStream makes a JetStream file stream of the benchmark's own, which
// takes the subjects under the prefix it returns.
func benchStream(b *testing.B) (jetstream.JetStream, string) {
	b.Helper()
	nc, err := nats.Connect(benchNATSURL(), nats.Timeout(2*time.Second), nats.MaxReconnects(-1))
	if err != nil {
		b.Skipf("NATS at %s unreachable: %v", benchNATSURL(), err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	suffix := uuid.NewString()[:8]
	name, prefix := "KEELBENCH_"+suffix, "keelbench."+suffix
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{prefix + ".>"}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = js.DeleteStream(ctx, name) })
	return js, prefix
}

// benchQueue declares a durable queue of the benchmark's own.
func benchQueue(b *testing.B) (*amqp.Connection, string) {
	b.Helper()
	conn, err := amqp.Dial(benchRabbitURL())
	if err != nil {
		b.Skipf("RabbitMQ at %s unreachable: %v", benchRabbitURL(), err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	name := "keelbench-" + uuid.NewString()[:8]
	if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = ch.QueueDelete(name, false, false, false) })
	return conn, name
}

func BenchmarkBroker(b *testing.B) {
	b.Run("keel/nats", func(b *testing.B) {
		js, prefix := benchStream(b)
		pub, err := keelnats.NewPublisher(js, keelnats.PublisherConfig{Subject: keelnats.PrefixSubject(prefix)})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(relayThrough(b, pub), "msgs/s")
	})
	b.Run("client/nats", func(b *testing.B) {
		js, prefix := benchStream(b)
		start := time.Now()
		for range relayMessages / floorBatch {
			if err := natsBatch(js, prefix+"."+destinationName); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(relayMessages)/time.Since(start).Seconds(), "msgs/s")
	})
	b.Run("keel/rabbitmq", func(b *testing.B) {
		_, queue := benchQueue(b)
		pub, err := keelrabbit.NewPublisher(keelrabbit.PublisherConfig{
			URL: benchRabbitURL(), RoutingKey: func(outbox.Delivery) string { return queue },
		})
		if err != nil {
			b.Fatal(err)
		}
		defer pub.Close()
		b.ReportMetric(relayThrough(b, pub), "msgs/s")
	})
	b.Run("client/rabbitmq", func(b *testing.B) {
		conn, queue := benchQueue(b)
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			b.Fatal(err)
		}
		confirms := ch.NotifyPublish(make(chan amqp.Confirmation, floorBatch))
		start := time.Now()
		for range relayMessages / floorBatch {
			if err := rabbitBatch(ch, confirms, queue); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(relayMessages)/time.Since(start).Seconds(), "msgs/s")
	})
}

// natsBatch publishes floorBatch messages asynchronously and awaits every
// ack, as the relay's publisher does with a batch.
func natsBatch(js jetstream.JetStream, subject string) error {
	acks := make([]jetstream.PubAckFuture, floorBatch)
	for i := range acks {
		var err error
		acks[i], err = js.PublishAsync(subject, payload, jetstream.WithMsgID(uuid.NewString()))
		if err != nil {
			return err
		}
	}
	for _, ack := range acks {
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			return err
		}
	}
	return nil
}

// rabbitBatch publishes floorBatch persistent, mandatory messages and
// awaits every confirm.
func rabbitBatch(ch *amqp.Channel, confirms <-chan amqp.Confirmation, queue string) error {
	ctx := context.Background()
	for range floorBatch {
		if err := ch.PublishWithContext(ctx, "", queue, true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, MessageId: uuid.NewString(), Type: "OrderPlaced", Body: payload,
		}); err != nil {
			return err
		}
	}
	for range floorBatch {
		c, ok := <-confirms
		if !ok {
			return errors.New("channel closed")
		}
		if !c.Ack {
			return fmt.Errorf("message %d nacked", c.DeliveryTag)
		}
	}
	return nil
}
