package saga_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/saga"
)

// stepKind is how the flaky workflow runs its step.
type stepKind string

const (
	plainStep stepKind = "step"
	txStep    stepKind = "tx"
	asyncStep stepKind = "async"
)

// flakyFlow registers "flaky": one step called "flaky", run as kind, whose
// first fails calls fail (fails < 0: every call), each retry waiting
// backoff. It returns the number of the call that succeeded; calls counts
// them all.
func flakyFlow(reg *saga.Registry, kind stepKind, fails int, backoff time.Duration, calls *atomic.Int64) {
	opts := &saga.StepOpts{
		MaxAttempts: 3,
		RetryPolicy: keeltype.RetryPolicyFunc(func(int, error) time.Duration { return backoff }),
	}
	try := func() (int, error) {
		n := int(calls.Add(1))
		if fails < 0 || n <= fails {
			return 0, fmt.Errorf("attempt %d failed", n)
		}
		return n, nil
	}
	saga.Register(reg, "flaky", 1, func(ctx saga.Context, _ struct{}) (int, error) {
		switch kind {
		case txStep:
			return saga.TxStep(ctx, "flaky", func(context.Context, pgx.Tx) (int, error) { return try() }, opts)
		case asyncStep:
			return saga.StepAsync(ctx, "flaky", func(context.Context) (int, error) { return try() }, opts).Get(ctx)
		}
		return saga.Step(ctx, "flaky", func(context.Context) (int, error) { return try() }, opts)
	})
}

// startRetryEngine starts an engine on pool that parks a run whose step
// waits more than 1s for its next attempt.
func startRetryEngine(t *testing.T, pool *pgxpool.Pool, reg *saga.Registry) *saga.Engine {
	t.Helper()
	cfg := testConfig()
	cfg.StepParkAfter = time.Second
	e, err := saga.NewEngine(pool, reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("stopping engine: %v", err)
		}
	})
	return e
}

// flakyStep is the record of the flaky step (position 1), nil before it has
// one.
func flakyStep(t *testing.T, e *saga.Engine, runID string) *saga.StepInfo {
	t.Helper()
	steps, err := e.Steps(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range steps {
		if steps[i].Seq == 1 {
			return &steps[i]
		}
	}
	return nil
}

// waitParked waits until the run is parked for the flaky step's retry with
// the step recorded waiting after attempts attempts.
func waitParked(t *testing.T, e *saga.Engine, pool *pgxpool.Pool, runID string, attempts int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("the run to park after attempt %d", attempts), func() bool {
		r, err := e.Get(context.Background(), pool, runID)
		if err != nil {
			t.Fatal(err)
		}
		s := flakyStep(t, e, runID)
		return r.Status == saga.StatusWaiting && s != nil && s.Status == "waiting" && s.Attempts == attempts
	})
	r, err := e.Get(context.Background(), pool, runID)
	if err != nil {
		t.Fatal(err)
	}
	s := flakyStep(t, e, runID)
	var w struct {
		RetryAt time.Time `json:"retry_at"`
	}
	if err := json.Unmarshal(s.Output, &w); err != nil || w.RetryAt.IsZero() {
		t.Fatalf("waiting step's output %s: %v", s.Output, err)
	}
	// The run wakes at the retry time (stored to the microsecond), or at
	// its deadline when that comes first.
	early := w.RetryAt.Sub(r.WakeAt)
	if r.WaitReason != "retry flaky" || early <= -time.Microsecond || (r.Deadline.IsZero() && early >= time.Microsecond) ||
		s.Error != fmt.Sprintf("attempt %d failed", attempts) {
		t.Fatalf("run waits for %q until %s; step waits until %s after %q", r.WaitReason, r.WakeAt, w.RetryAt, s.Error)
	}
}

// A step's wait for its next attempt longer than Config.StepParkAfter parks
// the run, with the attempts so far recorded, and the run goes on with the
// next attempt; a shorter wait, or a StepAsync step's, is spent in the
// process. Resumes counts the executions, so it is one more than the parks.
func TestStepRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		kind    stepKind
		backoff time.Duration
		parks   int
	}{
		{name: "long backoff parks", kind: plainStep, backoff: 1500 * time.Millisecond, parks: 2},
		{name: "long backoff parks a TxStep", kind: txStep, backoff: 1500 * time.Millisecond, parks: 2},
		{name: "short backoff waits in the process", kind: plainStep, backoff: 20 * time.Millisecond},
		{name: "StepAsync waits in the process", kind: asyncStep, backoff: 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := openPool(t, testdb.NewURL(t), 8)
			reg := saga.NewRegistry()
			var calls atomic.Int64
			flakyFlow(reg, tt.kind, 2, tt.backoff, &calls)
			e := startRetryEngine(t, pool, reg)
			run := start(t, e, pool, "flaky", struct{}{}, nil)
			for i := 1; i <= tt.parks; i++ {
				waitParked(t, e, pool, run.ID, i)
			}
			done := await(t, e, run.ID)
			got, err := saga.Result[int](done)
			if err != nil || got != 3 {
				t.Fatalf("result %d, %v; want 3", got, err)
			}
			if calls.Load() != 3 || done.Resumes != tt.parks+1 {
				t.Fatalf("%d calls, %d resumes; want 3, %d", calls.Load(), done.Resumes, tt.parks+1)
			}
			s := flakyStep(t, e, run.ID)
			wantKind := "step"
			if tt.kind == txStep {
				wantKind = "tx"
			}
			if s.Kind != wantKind || s.Status != "completed" || s.Attempts != 3 || s.Error != "" || string(s.Output) != "3" {
				t.Fatalf("step recorded %+v", s)
			}
		})
	}
}

// A run parked between a step's attempts keeps its attempt count across a
// restart: a new engine goes on with the next attempt, and the step fails
// after MaxAttempts attempts in all.
func TestStepRetriesSurviveARestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	var calls atomic.Int64
	flakyFlow(reg, plainStep, -1, 1500*time.Millisecond, &calls)
	first := startRetryEngine(t, pool, reg)
	run := start(t, first, pool, "flaky", struct{}{}, nil)
	waitParked(t, first, pool, run.ID, 1)
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// On a loaded machine the first engine may have begun the next attempt
	// before it stopped; an attempt it did not record is made again.
	unrecorded := int(calls.Load()) - flakyStep(t, first, run.ID).Attempts

	second := startRetryEngine(t, pool, reg)
	done := await(t, second, run.ID)
	if done.Status != saga.StatusFailed {
		t.Fatalf("run %s, want failed", done.Status)
	}
	s := flakyStep(t, second, run.ID)
	if s.Status != "failed" || s.Attempts != 3 || s.Error != fmt.Sprintf("attempt %d failed", calls.Load()) {
		t.Fatalf("step recorded %+v", s)
	}
	if int(calls.Load()) != 3+unrecorded {
		t.Fatalf("%d calls, want 3 (and %d unrecorded)", calls.Load(), unrecorded)
	}
}

// A cancel or the workflow timeout ends the retries of a parked step: the
// step is not called again and stays waiting.
func TestParkedStepRetriesEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		timeout time.Duration
		cancel  bool
		want    error
	}{
		{name: "cancel", cancel: true, want: saga.ErrCancelled},
		{name: "timeout", timeout: time.Second, want: saga.ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := openPool(t, testdb.NewURL(t), 8)
			reg := saga.NewRegistry()
			var calls atomic.Int64
			flakyFlow(reg, plainStep, -1, 1500*time.Millisecond, &calls)
			e := startRetryEngine(t, pool, reg)
			run := start(t, e, pool, "flaky", struct{}{}, &saga.StartOpts{Timeout: tt.timeout})
			waitParked(t, e, pool, run.ID, 1)
			if tt.cancel {
				if err := e.Cancel(ctx, pool, run.ID); err != nil {
					t.Fatal(err)
				}
			}
			done := await(t, e, run.ID)
			if !errors.Is(done.Err(), tt.want) {
				t.Fatalf("run ended %s: %v; want %v", done.Status, done.Err(), tt.want)
			}
			if s := flakyStep(t, e, run.ID); calls.Load() != 1 || s.Status != "waiting" || s.Attempts != 1 {
				t.Fatalf("%d calls, step recorded %+v; want 1 call, waiting", calls.Load(), s)
			}
		})
	}
}
