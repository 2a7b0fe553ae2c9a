package events_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
)

// LoadAt rebuilds an aggregate as it was at a version or at a point in time
// — what the balance was when a statement was sent, say. ReadStream takes
// the same bounds in ReadOpts.
func ExampleAggregate_LoadAt() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	store, err := events.NewStore(pool, events.Config{})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	const stream = "wallet-point-in-time-example"
	wallet := events.Aggregate[int]{
		Store: store,
		Apply: func(balance int, e events.RecordedEvent) (int, error) {
			var m struct{ Amount int }
			err := e.Decode(&m)
			if e.Type == "Spent" {
				m.Amount = -m.Amount
			}
			return balance + m.Amount, err
		},
	}
	for _, m := range []struct {
		typ    string
		amount int
	}{{"ToppedUp", 100}, {"Spent", 30}, {"Spent", 50}} {
		e, _ := events.NewEvent(m.typ, map[string]int{"amount": m.amount})
		if _, err := store.Append(ctx, pool, stream, events.Any, e); err != nil {
			panic(err)
		}
	}

	balance, version, err := wallet.Load(ctx, pool, stream)
	fmt.Println("now:", balance, "at version", version, err)
	balance, version, err = wallet.LoadAt(ctx, pool, stream, &events.ReadOpts{UntilVersion: 1})
	fmt.Println("at version 1:", balance, "at version", version, err)

	// The time the second event was recorded stands for "when the
	// statement was sent".
	evs, err := store.ReadStream(ctx, pool, stream, &events.ReadOpts{From: 2, Limit: 1})
	if err != nil {
		panic(err)
	}
	balance, version, err = wallet.LoadAt(ctx, pool, stream, &events.ReadOpts{UntilTime: evs[0].RecordedAt})
	fmt.Println("as of that time:", balance, "at version", version, err)
	// Output:
	// now: 20 at version 3 <nil>
	// at version 1: 100 at version 1 <nil>
	// as of that time: 70 at version 2 <nil>
}
