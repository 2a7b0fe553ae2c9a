package listener_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/listener"
	"github.com/keelpg/keel/outbox"
)

// Run an outbox relay and an event subscription on one LISTEN connection.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	l := listener.New(pool, nil)
	got := make(chan string, 2)
	relay, err := outbox.NewRelay(pool, outbox.PublisherFunc(func(_ context.Context, d outbox.Delivery) error {
		got <- "relay published " + d.Type
		return nil
	}), outbox.RelayConfig{Listener: l})
	if err != nil {
		fmt.Println(err)
		return
	}
	store, err := events.NewStore(pool, events.Config{Listener: l})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	sub, err := store.NewSubscription(events.SubscriptionConfig{
		Name: "example-listener",
		Handler: func(_ context.Context, _ pgx.Tx, e events.RecordedEvent) error {
			got <- "subscription handled " + e.Type
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	runCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	var running sync.WaitGroup
	running.Go(func() { _ = relay.Run(runCtx) })
	running.Go(func() { _ = sub.Run(runCtx) })
	defer func() { stop(); running.Wait() }()

	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		panic(err)
	}
	defer box.Close()
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := box.Enqueue(ctx, tx, outbox.Message{Topic: "orders", Type: "OrderPlaced", Payload: []byte(`{}`)}); err != nil {
			return err
		}
		_, err := store.Append(ctx, tx, "order-42", events.NoStream, events.EventData{Type: "OrderPlaced", Data: []byte(`{}`)})
		return err
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var lines []string
	for range 2 {
		select {
		case line := <-got:
			lines = append(lines, line)
		case <-runCtx.Done():
			fmt.Println("timed out")
			return
		}
	}
	slices.Sort(lines)
	for _, line := range lines {
		fmt.Println(line)
	}
	// Output:
	// relay published OrderPlaced
	// subscription handled OrderPlaced
}
