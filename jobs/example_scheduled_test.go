package jobs_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
)

type RemindArgs struct {
	User string `json:"user"`
}

func (RemindArgs) Kind() string { return "example_scheduled_remind" }

// A job inserted with a run-at time (or a delay) is scheduled, and runs once
// its time has come.
func ExampleInsertOpts_runAt() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	ranLate := make(chan bool, 1)
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[RemindArgs]) error {
		ranLate <- !time.Now().Before(job.RunAt)
		return nil
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers:             workers,
		Queues:              map[string]jobs.QueueConfig{"example-scheduled": {}},
		FetchPollInterval:   50 * time.Millisecond,
		MaintenanceInterval: 50 * time.Millisecond, // makes scheduled jobs available
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()

	// RunAt: time.Now().Add(24 * time.Hour) is the same with an absolute time.
	job, err := client.Insert(ctx, pool, RemindArgs{User: "ada"},
		&jobs.InsertOpts{Queue: "example-scheduled", Delay: 200 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("inserted:", job.State)
	select {
	case late := <-ranLate:
		fmt.Println("ran at or after its run-at time:", late)
	case <-time.After(30 * time.Second):
		fmt.Println("timed out")
	}
	// Output:
	// inserted: scheduled
	// ran at or after its run-at time: true
}
