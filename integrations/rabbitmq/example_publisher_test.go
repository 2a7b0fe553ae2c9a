package keelrabbit_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	keelrabbit "github.com/keelpg/keel/integrations/rabbitmq"
	"github.com/keelpg/keel/outbox"
)

// A relay publishes outbox messages to RabbitMQ through a Publisher. By
// default the topic is the routing key on the default exchange, so it names
// the queue the message goes to.
func ExamplePublisher() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	url := cmp.Or(os.Getenv("RABBITMQ_URL"), "amqp://guest:guest@127.0.0.1:5672/")
	conn, err := amqp.Dial(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		fmt.Println(err)
		return
	}
	const queue = "example-keel-orders"
	_, _ = ch.QueueDelete(queue, false, false, false) // start empty
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _, _ = ch.QueueDelete(queue, false, false, false) }()

	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer box.Close()
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// … the application's own writes with tx …
		_, err := box.Enqueue(ctx, tx, outbox.Message{
			Topic: queue, Key: "order-42", Type: "OrderPlaced", Payload: []byte(`{"order":42}`),
		})
		return err
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	pub, err := keelrabbit.NewPublisher(keelrabbit.PublisherConfig{URL: url})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close()
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

	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			fmt.Println(err)
			return
		}
		if ok {
			fmt.Println(d.RoutingKey, d.Headers[keelrabbit.HeaderKey], d.Type, string(d.Body))
			break
		}
	}
	// Output: example-keel-orders order-42 OrderPlaced {"order":42}
}
