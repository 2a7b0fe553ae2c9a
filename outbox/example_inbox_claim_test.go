package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/outbox"
)

// Claim records a message as processed in the consumer's own transaction:
// a transaction that rolls back leaves the message to be processed again,
// and one that commits makes every later delivery a duplicate.
func ExampleInbox_Claim() {
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
	deliver := func(consumerFails bool) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer func() { _ = tx.Rollback(ctx) }()
		err = inbox.Claim(ctx, tx, "example-claim-shipping", "msg-order-shipped-0042")
		if errors.Is(err, outbox.ErrDuplicate) {
			fmt.Println("duplicate: skipped")
			return
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		// … the consumer's own writes with tx …
		if consumerFails {
			fmt.Println("consumer failed: rolled back")
			return
		}
		if err := tx.Commit(ctx); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("processed")
	}
	deliver(true)  // the first delivery fails half-way
	deliver(false) // the broker redelivers
	deliver(false) // and redelivers again
	// Output:
	// consumer failed: rolled back
	// processed
	// duplicate: skipped
}
