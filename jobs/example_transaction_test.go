package jobs_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
)

type RefundArgs struct {
	Order string `json:"order"`
}

func (RefundArgs) Kind() string { return "example_transaction_refund" }

// A job inserted in the caller's transaction exists only if the transaction
// commits: when it rolls back, with the caller's own writes, the job was
// never there and never runs.
func ExampleClient_Insert() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	client, err := jobs.NewClient(pool, jobs.Config{}) // insert-only
	if err != nil {
		log.Fatal(err)
	}
	refunds := &jobs.JobListParams{Queue: "example-transaction", Kind: RefundArgs{}.Kind()}
	for _, commit := range []bool{false, true} {
		tx, err := pool.Begin(ctx)
		if err != nil {
			log.Fatal(err)
		}
		// … the application marks the order refunded in tx …
		if _, err := client.Insert(ctx, tx, RefundArgs{Order: "order-9"}, &jobs.InsertOpts{Queue: "example-transaction"}); err != nil {
			log.Fatal(err)
		}
		inTx, err := client.JobListTx(ctx, tx, refunds)
		if err != nil {
			log.Fatal(err)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			log.Fatal(err)
		}
		after, err := client.JobList(ctx, refunds)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("commit %t: %d job in the transaction, %d after it\n", commit, len(inTx), len(after))
	}
	// Output:
	// commit false: 1 job in the transaction, 0 after it
	// commit true: 1 job in the transaction, 1 after it
}
