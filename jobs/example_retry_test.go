package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltype"
)

type CallWebhookArgs struct {
	URL string `json:"url"`
}

func (CallWebhookArgs) Kind() string { return "example_retry_call_webhook" }

// A failed attempt is retried after the kind's retry policy until the job's
// MaxAttempts are used up; then the job is discarded, the dead letter, with
// every attempt's error in its row.
func ExampleWorkerOpts_retry() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[CallWebhookArgs]) error {
		fmt.Println("attempt", job.Attempt, "of", job.MaxAttempts)
		return errors.New("503 from " + job.Args.URL)
	}, &jobs.WorkerOpts{
		// Short waits for the example; the default doubles from 2s.
		RetryPolicy: keeltype.ExponentialBackoff{Initial: 20 * time.Millisecond, Max: time.Second},
	})
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers:             workers,
		Queues:              map[string]jobs.QueueConfig{"example-retry": {}},
		FetchPollInterval:   50 * time.Millisecond,
		MaintenanceInterval: 20 * time.Millisecond, // makes retryable jobs available
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()

	job, err := client.Insert(ctx, pool, CallWebhookArgs{URL: "https://example.com/hook"},
		&jobs.InsertOpts{Queue: "example-retry", MaxAttempts: 3})
	if err != nil {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !job.State.Final() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if job, err = client.JobGet(ctx, job.ID); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(job.State, "with", len(job.Errors), "errors, the last:", job.Errors[len(job.Errors)-1].Error)
	// Output:
	// attempt 1 of 3
	// attempt 2 of 3
	// attempt 3 of 3
	// discarded with 3 errors, the last: 503 from https://example.com/hook
}
