package events_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
)

// Optimistic concurrency: two writers decide from the same version of a
// stream and append expecting it. The first wins; the second gets a
// *VersionConflictError, writes nothing, reads the stream again and decides
// anew.
func ExampleVersionConflictError() {
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

	const seat = "seat-flight12-3A"
	listed, _ := events.NewEvent("SeatListed", map[string]string{"seat": "3A"})
	if _, err := store.Append(ctx, pool, seat, events.NoStream, listed); err != nil {
		panic(err)
	}
	// seatState reads the stream: its version, and who holds the seat.
	seatState := func() (version int64, holder string) {
		evs, err := store.ReadStream(ctx, pool, seat, nil)
		if err != nil {
			panic(err)
		}
		for _, e := range evs {
			if e.Type == "SeatReserved" {
				var r struct{ By string }
				_ = e.Decode(&r)
				holder = r.By
			}
		}
		return evs[len(evs)-1].Version, holder
	}
	reserve := func(who string, version int64) error {
		reserved, _ := events.NewEvent("SeatReserved", map[string]string{"by": who})
		_, err := store.Append(ctx, pool, seat, events.Exactly(version), reserved)
		return err
	}

	// Two requests read the free seat at the same version …
	adaRead, _ := seatState()
	bobRead, _ := seatState()
	// … and both reserve it; ada's append comes first.
	fmt.Println("ada:", reserve("ada", adaRead))
	err = reserve("bob", bobRead)
	var conflict *events.VersionConflictError
	if errors.As(err, &conflict) {
		fmt.Println("bob: expected", conflict.Expected, "but the stream is at", conflict.Actual)
		// Read again and decide again.
		if _, holder := seatState(); holder != "" {
			fmt.Println("bob: the seat is taken by", holder)
		}
	}
	// Output:
	// ada: <nil>
	// bob: expected version 1 but the stream is at 2
	// bob: the seat is taken by ada
}
