package saga_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/saga"
)

// Cancelling a run whose step is running cancels that step's context, with
// ErrCancelled as its cause, instead of waiting for the step to end: the
// run compensates its completed steps and ends cancelled while the step
// would still have an hour to go — told by the notification Cancel sends,
// or, when no notification comes (here the request is written directly),
// found by the engine's check of the runs it executes.
func TestCancelReachesTheRunningStep(t *testing.T) {
	t.Parallel()
	for _, notified := range []bool{true, false} {
		t.Run(map[bool]string{true: "notified", false: "found by the check"}[notified], func(t *testing.T) {
			t.Parallel()
			cancelReachesTheRunningStep(t, notified)
		})
	}
}

func cancelReachesTheRunningStep(t *testing.T, notified bool) {
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	var released atomic.Int64
	var cause atomic.Value
	started := make(chan struct{})
	saga.Register(reg, "long", 1, func(ctx saga.Context, _ struct{}) (string, error) {
		_, err := saga.StepWithCompensation(ctx, "reserve",
			func(context.Context) (string, error) { return "r-1", nil },
			func(context.Context, string) error { released.Add(1); return nil }, nil)
		if err != nil {
			return "", err
		}
		return saga.Step(ctx, "slow", func(ctx context.Context) (string, error) {
			close(started)
			select {
			case <-ctx.Done():
				cause.Store(context.Cause(ctx))
				return "", ctx.Err()
			case <-time.After(time.Hour):
				return "done", nil
			}
		}, &saga.StepOpts{MaxAttempts: 1})
	})
	e := newEngine(t, pool, reg, true)
	run := start(t, e, pool, "long", struct{}{}, nil)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the slow step did not start within 30s")
	}
	var err error
	if notified {
		err = e.Cancel(context.Background(), pool, run.ID)
	} else {
		_, err = pool.Exec(context.Background(), `UPDATE keel.saga_runs SET cancel_requested_at = now() WHERE id = $1`, run.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
	done := await(t, e, run.ID)
	if done.Status != saga.StatusCancelled || !errors.Is(done.Err(), saga.ErrCancelled) {
		t.Fatalf("run %s: %v, want cancelled", done.Status, done.Err())
	}
	if got, _ := cause.Load().(error); !errors.Is(got, saga.ErrCancelled) {
		t.Errorf("the step's context ended with cause %v, want ErrCancelled", got)
	}
	if released.Load() != 1 {
		t.Errorf("the completed step was compensated %d times, want once", released.Load())
	}
	steps, err := e.Steps(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if s.Name == "slow" {
			t.Errorf("the cancelled step was recorded: %+v", s)
		}
	}
}
