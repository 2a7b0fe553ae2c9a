package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
)

type ImportCSVArgs struct {
	Rows []string `json:"rows"`
}

func (ImportCSVArgs) Kind() string { return "example_progress_import_csv" }

// A handler reports its progress while it runs and records an output when
// done; both are in the job's row, for people, tools and dependent jobs.
func ExampleRecordProgress() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	halfway := make(chan struct{})
	goOn := make(chan struct{})
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[ImportCSVArgs]) error {
		for i := range job.Args.Rows {
			// … import the row …
			if err := jobs.RecordProgress(ctx, 100*(i+1)/len(job.Args.Rows)); err != nil {
				return err
			}
			if i == 1 { // this example looks at the row halfway through
				close(halfway)
				<-goOn
			}
		}
		return jobs.RecordOutput(ctx, map[string]int{"imported": len(job.Args.Rows)})
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers:           workers,
		Queues:            map[string]jobs.QueueConfig{"example-progress": {}},
		FetchPollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()

	job, err := client.Insert(ctx, pool, ImportCSVArgs{Rows: []string{"a", "b", "c", "d"}}, &jobs.InsertOpts{Queue: "example-progress"})
	if err != nil {
		log.Fatal(err)
	}
	select {
	case <-halfway:
	case <-time.After(30 * time.Second):
		log.Fatal("the import did not start")
	}
	if job, err = client.JobGet(ctx, job.ID); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, %d%%\n", job.State, job.Progress)
	close(goOn)

	for deadline := time.Now().Add(30 * time.Second); !job.State.Final() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if job, err = client.JobGet(ctx, job.ID); err != nil {
			log.Fatal(err)
		}
	}
	var out struct{ Imported int }
	if err := json.Unmarshal(job.Output, &out); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, %d%%, imported %d rows\n", job.State, job.Progress, out.Imported)
	// Output:
	// running, 50%
	// completed, 100%, imported 4 rows
}
