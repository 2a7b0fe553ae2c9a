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

type NotifyArgs struct {
	What string `json:"what"`
}

func (NotifyArgs) Kind() string { return "example_priority_notify" }

// Jobs of a queue are claimed by priority, 1 first and 4 last, whatever
// order they were inserted in.
func ExampleInsertOpts_priority() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	done := make(chan string)
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[NotifyArgs]) error {
		done <- fmt.Sprintf("priority %d: %s", job.Priority, job.Args.What)
		return nil
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers: workers,
		// One worker, so the jobs run one by one and the order shows.
		Queues:            map[string]jobs.QueueConfig{"example-priority": {MaxWorkers: 1}},
		FetchPollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, n := range []struct {
			what     string
			priority int
		}{{"weekly digest", 4}, {"newsletter", 3}, {"password reset", 1}, {"comment reply", 2}} {
			opts := &jobs.InsertOpts{Queue: "example-priority", Priority: n.priority}
			if _, err := client.Insert(ctx, tx, NotifyArgs{What: n.what}, opts); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()
	for range 4 {
		select {
		case s := <-done:
			fmt.Println(s)
		case <-time.After(30 * time.Second):
			log.Fatal("timed out")
		}
	}
	// Output:
	// priority 1: password reset
	// priority 2: comment reply
	// priority 3: newsletter
	// priority 4: weekly digest
}
