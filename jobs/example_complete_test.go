package jobs_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
)

type InvoiceArgs struct {
	Order string `json:"order"`
}

func (InvoiceArgs) Kind() string { return "example_complete_invoice" }

// A handler that writes its effect in a transaction completes its job in
// the same transaction: the invoice and the job's completion commit
// together, so no crash can leave an invoice whose job runs again.
func ExampleJobCompleteTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE example_invoices (job_id bigint PRIMARY KEY, order_id text NOT NULL)`); err != nil {
		log.Fatal(err)
	}
	defer func() { _, _ = pool.Exec(ctx, `DROP TABLE example_invoices`) }()

	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[InvoiceArgs]) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO example_invoices VALUES ($1, $2)`, job.ID, job.Args.Order); err != nil {
				return err
			}
			return jobs.JobCompleteTx(ctx, tx, job)
		})
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers: workers, FetchPollInterval: 50 * time.Millisecond,
		Queues: map[string]jobs.QueueConfig{"example-complete": {}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()
	job, err := client.Insert(ctx, pool, InvoiceArgs{Order: "order-12"}, &jobs.InsertOpts{Queue: "example-complete"})
	if err != nil {
		log.Fatal(err)
	}
	for {
		row, err := client.JobGet(ctx, job.ID)
		if err != nil {
			log.Fatal(err)
		}
		if row.State == jobs.StateCompleted {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var order string
	if err := pool.QueryRow(ctx, `SELECT order_id FROM example_invoices WHERE job_id = $1`, job.ID).Scan(&order); err != nil {
		log.Fatal(err)
	}
	fmt.Println("completed, with the invoice of", order)
	// Output: completed, with the invoice of order-12
}
