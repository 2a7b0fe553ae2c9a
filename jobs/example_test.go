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

type WelcomeArgs struct {
	Email string `json:"email"`
}

func (WelcomeArgs) Kind() string { return "welcome_email" }

// A job inserted in the caller's transaction runs once the transaction
// commits.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	done := make(chan struct{})
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[WelcomeArgs]) error {
		fmt.Println("welcome mail to", job.Args.Email, "attempt", job.Attempt)
		close(done)
		return nil
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{Workers: workers})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()

	tx, err := pool.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// … the application writes its own rows in tx …
	if _, err := client.Insert(ctx, tx, WelcomeArgs{Email: "ada@example.com"}, nil); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	<-done
	// Output: welcome mail to ada@example.com attempt 1
}

type ResizeArgs struct {
	Size int `json:"size"`
}

func (ResizeArgs) Kind() string { return "resize" }

type PublishArgs struct{}

func (PublishArgs) Kind() string { return "publish" }

// A workflow runs publish after both resizes, and publish reads their outputs.
func ExampleClient_InsertWorkflow() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	published := make(chan []int, 1)
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[ResizeArgs]) error {
		return jobs.RecordOutput(ctx, job.Args.Size*2)
	}, nil)
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[PublishArgs]) error {
		deps, err := jobs.DependencyOutputs(ctx)
		if err != nil {
			return err
		}
		var sizes []int
		for _, d := range deps {
			var n int
			if err := d.Decode(&n); err != nil {
				return err
			}
			sizes = append(sizes, n)
		}
		published <- sizes
		return nil
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers:           workers,
		Queues:            map[string]jobs.QueueConfig{"media": {MaxWorkers: 10}},
		FetchPollInterval: 100 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()

	media := jobs.InsertOpts{Queue: "media"}
	wf := jobs.NewWorkflow("publish-photo").
		Add("small", ResizeArgs{Size: 100}, &jobs.TaskOpts{InsertOpts: media}).
		Add("large", ResizeArgs{Size: 800}, &jobs.TaskOpts{InsertOpts: media}).
		Add("publish", PublishArgs{}, &jobs.TaskOpts{InsertOpts: media, After: []string{"small", "large"}})
	if _, err := client.InsertWorkflow(ctx, pool, wf); err != nil {
		log.Fatal(err)
	}
	fmt.Println("published sizes", <-published)
	// Output: published sizes [200 1600]
}
