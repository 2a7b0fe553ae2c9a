package events_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
)

// Tombstone soft-deletes a stream: its rows stay, but reads of it, category
// reads, the feed and subscriptions leave its events out, and appends to it
// are refused.
func ExampleStore_Tombstone() {
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

	const stream = "member-tombstone-example"
	joined, _ := events.NewEvent("MemberJoined", map[string]string{"email": "ada@example.com"})
	left, _ := events.NewEvent("MemberLeft", map[string]string{})
	if _, err := store.Append(ctx, pool, stream, events.NoStream, joined, left); err != nil {
		panic(err)
	}

	// Deleted on request, expecting the version last read.
	if err := store.Tombstone(ctx, pool, stream, events.Exactly(2)); err != nil {
		panic(err)
	}
	_, err = store.ReadStream(ctx, pool, stream, nil)
	fmt.Println("read:", errors.Is(err, events.ErrStreamDeleted))
	_, err = store.Append(ctx, pool, stream, events.Any, joined)
	fmt.Println("append:", errors.Is(err, events.ErrStreamDeleted))
	info, err := store.Stream(ctx, pool, stream)
	fmt.Println("deleted:", info.Deleted, "at version", info.Version, err)
	// Output:
	// read: true
	// append: true
	// deleted: true at version 2 <nil>
}
