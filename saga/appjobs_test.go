package saga_test

import (
	"context"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/saga"
)

type appJob struct{}

func (appJob) Kind() string { return "app-job" }

// An engine given the application's Workers and no queues works jobs'
// default queue too, as a plain jobs client would: the application's own
// jobs run next to its workflows.
func TestEngineWorksTheDefaultQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, testdb.NewURL(t), 8)
	ran := make(chan struct{}, 1)
	w := jobs.NewWorkers()
	jobs.AddWorker(w, func(context.Context, *jobs.Job[appJob]) error { ran <- struct{}{}; return nil }, nil)
	e, err := saga.NewEngine(pool, saga.NewRegistry(), saga.Config{Jobs: jobs.Config{Workers: w, FetchPollInterval: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop(ctx) })
	if _, err := e.Jobs().Insert(ctx, pool, appJob{}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("a job on the default queue did not run on the engine's client")
	}
}
