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

type ChargeCardArgs struct {
	Account string `json:"account"`
}

func (ChargeCardArgs) Kind() string { return "example_cancel_charge_card" }

// A handler that finds its job pointless cancels it for good: the job is
// not retried, and its error is kept in the row.
func ExampleJobCancel() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[ChargeCardArgs]) error {
		return jobs.JobCancel(fmt.Errorf("account %s is closed", job.Args.Account))
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers:           workers,
		Queues:            map[string]jobs.QueueConfig{"example-cancel": {}},
		FetchPollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()

	job, err := client.Insert(ctx, pool, ChargeCardArgs{Account: "acme"}, &jobs.InsertOpts{Queue: "example-cancel"})
	if err != nil {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !job.State.Final() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if job, err = client.JobGet(ctx, job.ID); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(job.State, "after", job.Attempt, "attempt:", job.Errors[0].Error)
	// Output: cancelled after 1 attempt: keel jobs: cancelled by its handler: account acme is closed
}

type ExportReportArgs struct {
	Report string `json:"report"`
}

func (ExportReportArgs) Kind() string { return "example_cancel_export_report" }

// Client.JobCancel cancels a queued job at once, and a running one through
// its context, in whichever process runs it.
func ExampleClient_JobCancel() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	started := make(chan struct{})
	cause := make(chan error, 1)
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[ExportReportArgs]) error {
		close(started)
		<-ctx.Done() // a long export, until it is cancelled
		cause <- context.Cause(ctx)
		return ctx.Err()
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers:           workers,
		Queues:            map[string]jobs.QueueConfig{"example-job-cancel": {}},
		FetchPollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}

	// A job scheduled for later is cancelled before it ever runs.
	later, err := client.Insert(ctx, pool, ExportReportArgs{Report: "yearly"},
		&jobs.InsertOpts{Queue: "example-job-cancel", Delay: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	later, err = client.JobCancel(ctx, later.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("yearly export:", later.State)

	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()
	running, err := client.Insert(ctx, pool, ExportReportArgs{Report: "daily"}, &jobs.InsertOpts{Queue: "example-job-cancel"})
	if err != nil {
		log.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		log.Fatal("the daily export did not start")
	}
	if _, err := client.JobCancel(ctx, running.ID); err != nil {
		log.Fatal(err)
	}
	fmt.Println("handler's context ended by cancel request:", errors.Is(<-cause, jobs.ErrCancelRequested))
	for deadline := time.Now().Add(30 * time.Second); !running.State.Final() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if running, err = client.JobGet(ctx, running.ID); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("daily export:", running.State)
	// Output:
	// yearly export: cancelled
	// handler's context ended by cancel request: true
	// daily export: cancelled
}

type SendDigestArgs struct {
	User string `json:"user"`
}

func (SendDigestArgs) Kind() string { return "example_delete_send_digest" }

// Client.JobDelete removes a job that is not running and returns its row
// as it was. A job that another job waits on is refused: cancelling it
// instead lets its dependents follow their run condition.
func ExampleClient_JobDelete() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	client, err := jobs.NewClient(pool, jobs.Config{}) // inserts and controls jobs, works none
	if err != nil {
		log.Fatal(err)
	}

	later := &jobs.InsertOpts{Queue: "example-job-delete", Delay: time.Hour}
	job, err := client.Insert(ctx, pool, SendDigestArgs{User: "ada"}, later)
	if err != nil {
		log.Fatal(err)
	}
	deleted, err := client.JobDelete(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deleted:", deleted.State, string(deleted.EncodedArgs))
	_, err = client.JobGet(ctx, job.ID)
	fmt.Println("gone:", errors.Is(err, jobs.ErrNotFound))

	ids, err := client.InsertWorkflow(ctx, pool, jobs.NewWorkflow("example-job-delete").
		Add("collect", SendDigestArgs{User: "bob"}, &jobs.TaskOpts{InsertOpts: *later}).
		Add("send", SendDigestArgs{User: "bob"}, &jobs.TaskOpts{After: []string{"collect"}, InsertOpts: *later}))
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.JobDelete(ctx, ids["collect"])
	fmt.Println("collect refused, send waits on it:", errors.Is(err, jobs.ErrJobHasDependents))
	cancelled, err := client.JobCancel(ctx, ids["collect"])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("collect instead:", cancelled.State)
	// Output:
	// deleted: scheduled {"user": "ada"}
	// gone: true
	// collect refused, send waits on it: true
	// collect instead: cancelled
}
