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

type CleanupArgs struct{}

func (CleanupArgs) Kind() string { return "example_periodic_cleanup" }

// Periodic jobs are inserted on a cron schedule. Two clients — two
// processes of one service — carry the same schedule, and each tick is
// inserted once between them, with no leader.
func ExamplePeriodicJob() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	ran := make(chan struct{}, 100)
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[CleanupArgs]) error {
		ran <- struct{}{}
		return nil
	}, nil)
	cfg := jobs.Config{
		Workers:           workers,
		Queues:            map[string]jobs.QueueConfig{"example-periodic": {}},
		FetchPollInterval: 50 * time.Millisecond,
		PeriodicJobs: []jobs.PeriodicJob{{
			Name:     "example-cleanup",
			Schedule: "* * * * * *", // every second; with five fields, every minute
			Args: func() (jobs.JobArgs, *jobs.InsertOpts) {
				return CleanupArgs{}, &jobs.InsertOpts{Queue: "example-periodic"}
			},
		}},
	}
	var clients []*jobs.Client
	for range 2 {
		client, err := jobs.NewClient(pool, cfg)
		if err != nil {
			log.Fatal(err)
		}
		if err := client.Start(ctx); err != nil {
			log.Fatal(err)
		}
		clients = append(clients, client)
	}
	for i := range 2 {
		select {
		case <-ran:
			fmt.Println("cleanup ran", i+1)
		case <-time.After(30 * time.Second):
			log.Fatal("no tick")
		}
	}
	for _, client := range clients {
		if err := client.Stop(ctx); err != nil {
			log.Fatal(err)
		}
	}

	cleanups, err := clients[0].JobList(ctx, &jobs.JobListParams{Kind: CleanupArgs{}.Kind()})
	if err != nil {
		log.Fatal(err)
	}
	ticks := map[string]bool{}
	for _, job := range cleanups {
		ticks[job.UniqueKey] = true // one key per tick
	}
	fmt.Println("one job per tick:", len(ticks) == len(cleanups))
	// Output:
	// cleanup ran 1
	// cleanup ran 2
	// one job per tick: true
}
