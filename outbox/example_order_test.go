package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
)

// A relay keeps the order of messages with the same key: a message waits
// while an earlier one of its key is undelivered, also when that one failed
// and waits to be retried. Messages of other keys go on meanwhile.
func ExampleRelay() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	const topic = "example-order-carts"
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		panic(err)
	}
	defer box.Close()
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var msgs []outbox.Message
		for _, m := range [][2]string{
			{"cart-1", "CartCreated"}, {"cart-2", "CartCreated"},
			{"cart-1", "ItemAdded"}, {"cart-2", "CheckedOut"},
			{"cart-1", "CheckedOut"},
		} {
			msgs = append(msgs, outbox.Message{Topic: topic, Key: m[0], Type: m[1], Payload: []byte(`{}`)})
		}
		_, err := box.Enqueue(ctx, tx, msgs...)
		return err
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	var mu sync.Mutex
	published := map[string][]string{}
	count := 0
	pub := outbox.PublisherFunc(func(_ context.Context, d outbox.Delivery) error {
		if d.Topic != topic {
			return nil
		}
		if d.Key == "cart-1" && d.Type == "ItemAdded" && d.Attempt == 1 {
			return errors.New("broker unavailable") // retried after the backoff
		}
		mu.Lock()
		defer mu.Unlock()
		published[d.Key] = append(published[d.Key], fmt.Sprintf("%s (attempt %d)", d.Type, d.Attempt))
		count++
		return nil
	})
	relay, err := outbox.NewRelay(pool, pub, outbox.RelayConfig{
		PollInterval: 50 * time.Millisecond,
		RetryPolicy:  keeltype.ExponentialBackoff{Initial: 100 * time.Millisecond},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := relay.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := count
		mu.Unlock()
		if n == 5 {
			break
		}
	}
	if err := relay.Stop(ctx); err != nil {
		fmt.Println(err)
	}
	for _, key := range []string{"cart-1", "cart-2"} {
		fmt.Println(key+":", strings.Join(published[key], ", "))
	}
	// Output:
	// cart-1: CartCreated (attempt 1), ItemAdded (attempt 2), CheckedOut (attempt 1)
	// cart-2: CartCreated (attempt 1), CheckedOut (attempt 1)
}
