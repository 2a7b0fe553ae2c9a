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

type ImportFeedArgs struct{}

func (ImportFeedArgs) Kind() string { return "example_dependencies_import_feed" }

type FollowUpArgs struct {
	Step string `json:"step"`
}

func (FollowUpArgs) Kind() string { return "example_dependencies_follow_up" }

// A job that depends on others waits, pending, until they are final, and
// then runs or is cancelled by its RunWhen: here a notification runs only
// if the import succeeded, and a clean-up only if it failed.
func ExampleRunWhen() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[ImportFeedArgs]) error {
		return errors.New("feed unreachable")
	}, nil)
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[FollowUpArgs]) error {
		return nil
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers:             workers,
		Queues:              map[string]jobs.QueueConfig{"example-dependencies": {}},
		FetchPollInterval:   50 * time.Millisecond,
		MaintenanceInterval: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()

	queue := "example-dependencies"
	imp, err := client.Insert(ctx, pool, ImportFeedArgs{}, &jobs.InsertOpts{Queue: queue, MaxAttempts: 1})
	if err != nil {
		log.Fatal(err)
	}
	notify, err := client.Insert(ctx, pool, FollowUpArgs{Step: "notify"},
		&jobs.InsertOpts{Queue: queue, DependsOn: []int64{imp.ID}}) // RunAfterSuccess
	if err != nil {
		log.Fatal(err)
	}
	cleanup, err := client.Insert(ctx, pool, FollowUpArgs{Step: "clean up"},
		&jobs.InsertOpts{Queue: queue, DependsOn: []int64{imp.ID}, RunWhen: jobs.RunAfterFailure})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("notify:", notify.State)

	for _, j := range []*jobs.JobRow{imp, notify, cleanup} {
		name := map[int64]string{imp.ID: "import", notify.ID: "notify", cleanup.ID: "clean up"}[j.ID]
		for deadline := time.Now().Add(30 * time.Second); !j.State.Final() && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			if j, err = client.JobGet(ctx, j.ID); err != nil {
				log.Fatal(err)
			}
		}
		fmt.Println(name+":", j.State)
	}
	// Output:
	// notify: pending
	// import: discarded
	// notify: cancelled
	// clean up: completed
}
