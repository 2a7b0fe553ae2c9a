package keeltest

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/saga"
)

// pollInterval is how often RunJob looks at its job, and how often the
// client it starts looks for work it was not notified of.
const pollInterval = 10 * time.Millisecond

// RunJob inserts one job with args and works it with handle, in a jobs
// client of its own on a queue of its own (so no other job in the database
// is touched), and returns the job once it is final: completed, cancelled,
// or discarded after its one attempt (a failing handler is not retried;
// its error is in the returned row's Errors). The job's handler runs as in
// production — with its context, timeout and panic recovery. It returns
// ctx's error when ctx ends first.
func RunJob[T jobs.JobArgs](ctx context.Context, pool *pgxpool.Pool, handle func(context.Context, *jobs.Job[T]) error, args T) (*jobs.JobRow, error) {
	queue := "keeltest-" + uuid.NewString()
	workers := jobs.NewWorkers()
	if err := jobs.AddWorkerSafely(workers, handle, nil); err != nil {
		return nil, err
	}
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers:           workers,
		Queues:            map[string]jobs.QueueConfig{queue: {MaxWorkers: 1}},
		FetchPollInterval: pollInterval,
	})
	if err != nil {
		return nil, err
	}
	row, err := client.Insert(ctx, pool, args, &jobs.InsertOpts{Queue: queue, MaxAttempts: 1})
	if err != nil {
		return nil, err
	}
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	defer func() { _ = client.Stop(context.WithoutCancel(ctx)) }()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		got, err := client.JobGet(ctx, row.ID)
		if err != nil {
			return nil, err
		}
		if got.State.Final() {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("keeltest: job %d is %s: %w", got.ID, got.State, ctx.Err())
		case <-tick.C:
		}
	}
}

// RunWorkflow registers fn as workflow name (version 1), starts one run of
// it with input on an engine of its own, on a queue of its own, and returns
// the run once it finished (saga.Result decodes its output or error). A
// workflow that waits for a signal or a timer waits here too; ctx bounds the
// wait, and its error is returned when it ends first.
func RunWorkflow[In, Out any](ctx context.Context, pool *pgxpool.Pool, name string, fn func(saga.Context, In) (Out, error), input In) (*saga.Run, error) {
	reg := saga.NewRegistry()
	if err := saga.RegisterSafely(reg, name, 1, fn); err != nil {
		return nil, err
	}
	engine, err := saga.NewEngine(pool, reg, saga.Config{
		Queue:             "keeltest-" + uuid.NewString(),
		AwaitPollInterval: pollInterval,
		Jobs:              jobs.Config{FetchPollInterval: pollInterval},
	})
	if err != nil {
		return nil, err
	}
	if err := engine.Start(ctx); err != nil {
		return nil, err
	}
	defer func() { _ = engine.Stop(context.WithoutCancel(ctx)) }()
	run, err := engine.StartRun(ctx, pool, name, input, nil)
	if err != nil {
		return nil, err
	}
	return engine.Await(ctx, run.ID)
}
