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

type SyncCatalogArgs struct{}

func (SyncCatalogArgs) Kind() string { return "example_pause_sync_catalog" }

// Pausing a queue stops every client in every process from claiming its
// jobs — say while a supplier's API is down; inserts go on, and the jobs
// run once the queue is resumed.
func ExampleClient_QueuePause() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	const queue = "example-pause"
	ran := make(chan struct{}, 1)
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[SyncCatalogArgs]) error {
		ran <- struct{}{}
		return nil
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers:           workers,
		Queues:            map[string]jobs.QueueConfig{queue: {}},
		FetchPollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()

	if err := client.QueuePause(ctx, queue); err != nil {
		log.Fatal(err)
	}
	paused, _ := client.QueuePaused(ctx, queue)
	fmt.Println("paused:", paused)
	job, err := client.Insert(ctx, pool, SyncCatalogArgs{}, &jobs.InsertOpts{Queue: queue})
	if err != nil {
		log.Fatal(err)
	}
	select {
	case <-ran:
		fmt.Println("ran while paused")
	case <-time.After(300 * time.Millisecond): // several polls
	}
	job, err = client.JobGet(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("job while paused:", job.State)

	if err := client.QueueResume(ctx, queue); err != nil {
		log.Fatal(err)
	}
	select {
	case <-ran:
		fmt.Println("job ran after resume")
	case <-time.After(30 * time.Second):
		fmt.Println("timed out")
	}
	// Output:
	// paused: true
	// job while paused: available
	// job ran after resume
}
