package events_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
)

// openStore connects to DATABASE_URL, where keel's migrations are applied,
// and opens an event store on it.
func openStore(ctx context.Context) (*pgxpool.Pool, *events.Store) {
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	store, err := events.NewStore(pool, events.Config{})
	if err != nil {
		panic(err)
	}
	return pool, store
}

// Append events in your own transaction with an expected version, and read
// them back.
func ExampleStore_Append() {
	ctx := context.Background()
	pool, store := openStore(ctx)
	defer pool.Close()
	defer store.Close()

	placed, _ := events.NewEvent("OrderPlaced", map[string]any{"total": 42})
	paid, _ := events.NewEvent("OrderPaid", map[string]any{"amount": 42})
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Your own writes go here, in the same transaction.
		_, err := store.Append(ctx, tx, "order-example", events.NoStream, placed, paid)
		return err
	})
	if err != nil {
		panic(err)
	}

	_, err = store.Append(ctx, pool, "order-example", events.Exactly(1), paid)
	var conflict *events.VersionConflictError
	if errors.As(err, &conflict) {
		fmt.Println("conflict: stream is at version", conflict.Actual)
	}

	evs, err := store.ReadStream(ctx, pool, "order-example", nil)
	if err != nil {
		panic(err)
	}
	for _, e := range evs {
		fmt.Println(e.Version, e.Type, e.Category())
	}
	// Output:
	// conflict: stream is at version 2
	// 1 OrderPlaced order
	// 2 OrderPaid order
}

// A subscription projects events in the transaction that also advances its
// checkpoint.
func ExampleSubscription() {
	ctx := context.Background()
	pool, store := openStore(ctx)
	defer pool.Close()
	defer store.Close()

	for _, stream := range []string{"greeting-1", "greeting-2"} {
		e, _ := events.NewEvent("Greeted", map[string]string{"to": stream})
		if _, err := store.Append(ctx, pool, stream, events.Any, e); err != nil {
			panic(err)
		}
	}
	handled := make(chan string)
	sub, err := store.NewSubscription(events.SubscriptionConfig{
		Name:     "greetings",
		Category: "greeting",
		Handler: func(ctx context.Context, tx pgx.Tx, e events.RecordedEvent) error {
			// Write the read model through tx: it commits with the checkpoint.
			handled <- e.StreamID + " " + e.Type
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- sub.Run(runCtx) }()
	for range 2 {
		select {
		case h := <-handled:
			fmt.Println(h)
		case <-time.After(time.Minute):
			panic("no event handled")
		}
	}
	stop()
	if err := <-done; err != nil {
		panic(err)
	}
	// Output:
	// greeting-1 Greeted
	// greeting-2 Greeted
}

// An aggregate decides from its folded state and appends with the version
// it loaded.
func ExampleAggregate() {
	ctx := context.Background()
	pool, store := openStore(ctx)
	defer pool.Close()
	defer store.Close()

	type counter struct{ Total int }
	agg := events.Aggregate[counter]{
		Store: store,
		Apply: func(c counter, e events.RecordedEvent) (counter, error) {
			var added struct{ N int }
			err := e.Decode(&added)
			c.Total += added.N
			return c, err
		},
		SnapshotEvery: 2,
	}
	add := func(n int) func(counter) ([]events.EventData, error) {
		return func(c counter) ([]events.EventData, error) {
			if c.Total+n > 10 {
				return nil, errors.New("the counter stops at 10")
			}
			e, err := events.NewEvent("Added", map[string]int{"n": n})
			return []events.EventData{e}, err
		}
	}
	for _, n := range []int{3, 4, 5, 2} {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			c, res, err := agg.Execute(ctx, tx, "counter-example", add(n))
			if err == nil {
				fmt.Println("total", c.Total, "at version", res.Version)
			}
			return err
		})
		if err != nil {
			fmt.Println("refused:", err)
		}
	}
	snap, _ := store.LoadSnapshot(ctx, pool, "counter-example")
	fmt.Println("snapshot at version", snap.Version)
	// Output:
	// total 3 at version 1
	// total 7 at version 2
	// refused: the counter stops at 10
	// total 9 at version 3
	// snapshot at version 2
}
