package keelnats_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	keelnats "github.com/keelpg/keel/integrations/nats"
	"github.com/keelpg/keel/outbox"
)

// A relay publishes outbox messages to JetStream through a Publisher.
func ExamplePublisher() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	nc, err := nats.Connect(cmp.Or(os.Getenv("NATS_URL"), nats.DefaultURL), nats.MaxReconnects(-1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	// One stream takes every topic under "example-keel"; its dedup window
	// drops a message the relay publishes again.
	_ = js.DeleteStream(ctx, "EXAMPLE_KEEL") // start empty
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "EXAMPLE_KEEL", Subjects: []string{"example-keel.>"}, Duplicates: 2 * time.Minute,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = js.DeleteStream(ctx, "EXAMPLE_KEEL") }()

	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer box.Close()
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// … the application's own writes with tx …
		_, err := box.Enqueue(ctx, tx, outbox.Message{
			Topic: "orders", Key: "order-42", Type: "OrderPlaced", Payload: []byte(`{"order":42}`),
		})
		return err
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	pub, err := keelnats.NewPublisher(js, keelnats.PublisherConfig{Subject: keelnats.PrefixSubject("example-keel")})
	if err != nil {
		fmt.Println(err)
		return
	}
	relay, err := outbox.NewRelay(pool, pub, outbox.RelayConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := relay.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = relay.Stop(ctx) }()

	reader, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	msg, err := reader.Next(jetstream.FetchMaxWait(30 * time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(msg.Subject(), msg.Headers().Get(keelnats.HeaderKey), msg.Headers().Get(keelnats.HeaderType), string(msg.Data()))
	// Output: example-keel.orders order-42 OrderPlaced {"order":42}
}
