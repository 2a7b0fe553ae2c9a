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
)

type EncodeVideoArgs struct {
	Seconds int `json:"seconds"`
}

func (EncodeVideoArgs) Kind() string { return "example_shutdown_encode_video" }

// A graceful shutdown: Stop stops claiming, lets the running jobs finish and
// writes their results. Its context is the deadline: past it, the jobs'
// contexts are cancelled, and Stop returns the context's error.
func ExampleClient_Stop() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	started := make(chan struct{})
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[EncodeVideoArgs]) error {
		close(started)
		select { // encoding, for 200ms here
		case <-time.After(200 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers:           workers,
		Queues:            map[string]jobs.QueueConfig{"example-stop": {}},
		FetchPollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	job, err := client.Insert(ctx, pool, EncodeVideoArgs{Seconds: 90}, &jobs.InsertOpts{Queue: "example-stop"})
	if err != nil {
		log.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		log.Fatal("the job did not start")
	}

	// On SIGTERM: give running jobs up to 10s.
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fmt.Println("stop:", client.Stop(stopCtx))
	job, err = client.JobGet(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("job:", job.State)
	// Output:
	// stop: <nil>
	// job: completed
}

// A hard shutdown: StopAndCancel cancels the running jobs' contexts at once,
// waits for their handlers and writes their results; a job cut short this
// way is retried later.
func ExampleClient_StopAndCancel() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	started := make(chan struct{})
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[EncodeVideoArgs]) error {
		close(started)
		<-ctx.Done() // a long encoding
		fmt.Println("handler stopped:", errors.Is(ctx.Err(), context.Canceled))
		return ctx.Err()
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers:           workers,
		Queues:            map[string]jobs.QueueConfig{"example-stop-and-cancel": {}},
		FetchPollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	job, err := client.Insert(ctx, pool, EncodeVideoArgs{Seconds: 3600}, &jobs.InsertOpts{Queue: "example-stop-and-cancel"})
	if err != nil {
		log.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		log.Fatal("the job did not start")
	}

	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fmt.Println("stop:", client.StopAndCancel(stopCtx))
	job, err = client.JobGet(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("job:", job.State)
	// Output:
	// handler stopped: true
	// stop: <nil>
	// job: retryable
}
