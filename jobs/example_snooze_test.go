package jobs_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
)

type ShipOrderArgs struct {
	Order string `json:"order"`
}

func (ShipOrderArgs) Kind() string { return "example_snooze_ship_order" }

// A handler that cannot go on yet snoozes its job: the job runs again after
// the snooze, and the snoozed run does not use up an attempt.
func ExampleJobSnooze() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	var runs atomic.Int32
	shipped := make(chan struct{})
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[ShipOrderArgs]) error {
		if runs.Add(1) == 1 {
			fmt.Println("stock of", job.Args.Order, "not in yet: snooze, attempt", job.Attempt)
			return jobs.JobSnooze(100 * time.Millisecond)
		}
		fmt.Println("shipped", job.Args.Order, "attempt", job.Attempt)
		close(shipped)
		return nil
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers:             workers,
		Queues:              map[string]jobs.QueueConfig{"example-snooze": {}},
		FetchPollInterval:   50 * time.Millisecond,
		MaintenanceInterval: 50 * time.Millisecond, // makes snoozed jobs available
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()

	if _, err := client.Insert(ctx, pool, ShipOrderArgs{Order: "order-7"}, &jobs.InsertOpts{Queue: "example-snooze"}); err != nil {
		log.Fatal(err)
	}
	select {
	case <-shipped:
	case <-time.After(30 * time.Second):
		fmt.Println("timed out")
	}
	// Output:
	// stock of order-7 not in yet: snooze, attempt 1
	// shipped order-7 attempt 1
}
