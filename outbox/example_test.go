package outbox_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/outbox"
)

// Enqueue a message in the same transaction as your own writes, and run a
// relay that publishes it.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		panic(err)
	}
	defer box.Close()
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// … the application's own writes with tx …
		_, err := box.Enqueue(ctx, tx, outbox.Message{
			Topic:   "orders",
			Key:     "order-42",
			Type:    "OrderPlaced",
			Payload: []byte(`{"order":42}`),
		})
		return err
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	relay, err := outbox.NewRelay(pool, outbox.PublisherFunc(func(_ context.Context, d outbox.Delivery) error {
		fmt.Printf("publish %s %s to %s: %s\n", d.Type, d.Key, d.Topic, d.Payload)
		stop() // one message is all this example waits for
		return nil
	}), outbox.RelayConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = relay.Run(ctx)
	// Output: publish OrderPlaced order-42 to orders: {"order":42}
}

// Process a delivered message once, however often it arrives.
func ExampleInbox_Process() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		panic(err)
	}
	for range 2 { // the broker delivers the message twice
		processed, err := inbox.Process(ctx, "billing", "msg-0001", func(ctx context.Context, tx pgx.Tx) error {
			// … the consumer's writes with tx; they commit with the seen-record …
			return nil
		})
		fmt.Println("processed:", processed, "error:", err)
	}
	// Output:
	// processed: true error: <nil>
	// processed: false error: <nil>
}
