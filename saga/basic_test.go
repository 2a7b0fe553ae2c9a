package saga_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/saga"
)

type order struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

func TestStepsRunOnceAndResultIsRecorded(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	var calls atomic.Int64
	saga.Register(reg, "checkout", 1, func(ctx saga.Context, in order) (string, error) {
		reserved, err := saga.Step(ctx, "reserve", func(context.Context) (int, error) { calls.Add(1); return in.Total, nil }, nil)
		if err != nil {
			return "", err
		}
		charged, err := saga.Step(ctx, "charge", func(context.Context) (int, error) { calls.Add(1); return reserved * 2, nil }, nil)
		if err != nil {
			return "", err
		}
		return saga.Step(ctx, "ship", func(context.Context) (string, error) {
			calls.Add(1)
			return in.ID + " shipped for " + string(rune('0'+charged%10)), nil
		}, nil)
	})
	e := newEngine(t, pool, reg, true)
	run := start(t, e, pool, "checkout", order{ID: "o1", Total: 21}, nil)
	if run.Status != saga.StatusPending || run.Version != 1 {
		t.Fatalf("started run = %+v", run)
	}
	done := await(t, e, run.ID)
	out, err := saga.Result[string](done)
	if err != nil || out != "o1 shipped for 2" {
		t.Fatalf("result = %q, %v", out, err)
	}
	if calls.Load() != 3 {
		t.Fatalf("steps ran %d times, want 3", calls.Load())
	}
	steps, err := e.Steps(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"reserve", "charge", "ship"}
	if len(steps) != 3 {
		t.Fatalf("steps = %+v", steps)
	}
	for i, s := range steps {
		if s.Seq != i+1 || s.Name != names[i] || s.Status != "completed" || s.Attempts != 1 || s.FinishedAt.Before(s.StartedAt) {
			t.Errorf("step %d = %+v", i, s)
		}
	}
}

func TestStepRetriesThenFailsWithStepError(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	var attempts atomic.Int64
	boom := errors.New("boom")
	saga.Register(reg, "flaky", 1, func(ctx saga.Context, n int) (int, error) {
		v, err := saga.Step(ctx, "flaky", func(context.Context) (int, error) {
			if attempts.Add(1) < int64(n) {
				return 0, boom
			}
			return n, nil
		}, &saga.StepOpts{MaxAttempts: 3})
		var se *saga.StepError
		if err != nil && (!errors.As(err, &se) || !errors.Is(err, boom) || se.Attempts != 3) {
			return 0, errors.New("step error is not a live *StepError wrapping boom after 3 attempts")
		}
		return v, err
	})
	e := newEngine(t, pool, reg, true)
	tests := []struct {
		name      string
		n         int
		wantState saga.Status
	}{
		{"succeeds on the third attempt", 3, saga.StatusSucceeded},
		{"fails after three attempts", 4, saga.StatusFailed},
	}
	for _, tt := range tests {
		attempts.Store(0)
		run := await(t, e, start(t, e, pool, "flaky", tt.n, nil).ID)
		if run.Status != tt.wantState {
			t.Fatalf("%s: status %s, error %v", tt.name, run.Status, run.Err())
		}
		steps, _ := e.Steps(context.Background(), run.ID)
		if len(steps) != 1 || steps[0].Attempts != 3 {
			t.Fatalf("%s: steps %+v", tt.name, steps)
		}
	}
}
