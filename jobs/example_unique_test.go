package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
)

type SendInvoiceArgs struct {
	Customer string `json:"customer"`
	Month    string `json:"month"`
}

func (SendInvoiceArgs) Kind() string { return "example_unique_send_invoice" }

// A unique key lets one job at a time hold it: a second insert while the
// first job is not final writes nothing and names the job that holds the
// key. Once that job is final, the key is free again.
func ExampleDuplicateError() {
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
	args := SendInvoiceArgs{Customer: "acme", Month: "2024-05"}
	opts := &jobs.InsertOpts{Queue: "example-unique", UniqueKey: "invoice:" + args.Customer + ":" + args.Month}

	first, err := client.Insert(ctx, pool, args, opts)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first insert:", first.State)

	_, err = client.Insert(ctx, pool, args, opts)
	var dup *jobs.DuplicateError
	if errors.As(err, &dup) {
		fmt.Println("second insert refused:", errors.Is(err, jobs.ErrDuplicate), "held by the first job:", dup.ExistingID == first.ID)
	}

	if _, err := client.JobCancel(ctx, first.ID); err != nil {
		log.Fatal(err)
	}
	again, err := client.Insert(ctx, pool, args, opts)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("insert after the first job was cancelled:", again.State)
	// Output:
	// first insert: available
	// second insert refused: true held by the first job: true
	// insert after the first job was cancelled: available
}
