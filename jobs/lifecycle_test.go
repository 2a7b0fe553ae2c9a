package jobs

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/hooktest"
	"github.com/keelpg/keel/keeltype"
)

func TestProgressAndOutput(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	halfway := make(chan struct{})
	release := make(chan struct{})
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
		if err := RecordProgress(ctx, 50); err != nil {
			return err
		}
		if err := RecordOutput(ctx, map[string]int{"rows": 12}); err != nil {
			return err
		}
		close(halfway)
		<-release
		return nil
	}, nil)
	c := startClient(t, pool, fastConfig(w))
	job := insert(t, c, testArgs{}, nil)
	<-halfway
	row, err := c.JobGet(context.Background(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if row.State != StateRunning || row.Progress != 50 || string(row.Output) != `{"rows": 12}` {
		t.Fatalf("while running: %s, progress %d, output %s", row.State, row.Progress, row.Output)
	}
	close(release)
	row = waitState(t, c, job.ID, StateCompleted)
	if row.Progress != 100 || string(row.Output) != `{"rows": 12}` {
		t.Fatalf("completed: progress %d, output %s", row.Progress, row.Output)
	}
	for _, err := range []error{RecordProgress(context.Background(), 1), RecordOutput(context.Background(), 1)} {
		if !errors.Is(err, ErrNotInJob) {
			t.Fatalf("outside a job: %v", err)
		}
	}
	if _, err := DependencyOutputs(context.Background()); !errors.Is(err, ErrNotInJob) {
		t.Fatalf("outside a job: %v", err)
	}
}

func TestRetentionAtMovedClock(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { return nil }, nil)
	cfg := fastConfig(w)
	cfg.CompletedRetention = time.Hour
	cfg.CancelledRetention = -1 // forever
	c, err := NewClient(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	done := insert(t, c, testArgs{}, nil)
	owner := "test"
	q := db.New(pool)
	if _, err := q.ClaimJobs(ctx, db.ClaimJobsParams{Now: ts(time.Now()), Owner: &owner, Queue: DefaultQueue, Max: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.CompleteJobs(ctx, db.CompleteJobsParams{Now: ts(time.Now()), Ids: []int64{done.ID}, Attempts: []int32{1}}); err != nil {
		t.Fatal(err)
	}
	cancelled := insert(t, c, testArgs{}, nil)
	if _, err := c.JobCancel(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	kept := insert(t, c, testArgs{}, nil)
	for _, tc := range []struct {
		at      time.Duration
		present map[int64]bool
	}{
		{30 * time.Minute, map[int64]bool{done.ID: true, cancelled.ID: true, kept.ID: true}},
		{2 * time.Hour, map[int64]bool{done.ID: false, cancelled.ID: true, kept.ID: true}},
		{365 * 24 * time.Hour, map[int64]bool{done.ID: false, cancelled.ID: true, kept.ID: true}},
	} {
		c.now = func() time.Time { return time.Now().Add(tc.at) }
		if _, _, err := runDuty(ctx, c, c.retentionDuty()); err != nil {
			t.Fatal(err)
		}
		for id, want := range tc.present {
			_, err := c.JobGet(ctx, id)
			if got := err == nil; got != want {
				t.Fatalf("at +%s: job %d present %v, want %v (%v)", tc.at, id, got, want, err)
			}
		}
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		hard      bool
		deadline  time.Duration
		release   bool // the handler finishes while Stop waits
		wantErr   error
		wantState JobState
	}{
		{"graceful finishes running jobs", false, time.Minute, true, nil, StateCompleted},
		{"graceful cancels at the deadline", false, 50 * time.Millisecond, false, context.DeadlineExceeded, StateRetryable},
		{"hard cancels at once", true, time.Minute, false, nil, StateRetryable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool, _ := newPool(t, 8)
			started := make(chan struct{})
			release := make(chan struct{})
			w := NewWorkers()
			AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
				close(started)
				select {
				case <-release:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}, nil)
			cfg := fastConfig(w)
			cfg.RetryPolicy = keeltype.RetryPolicyFunc(func(int, error) time.Duration { return time.Hour })
			c, err := NewClient(pool, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			job := insert(t, c, testArgs{}, nil)
			<-started
			ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
			defer cancel()
			stopped := make(chan error)
			go func() {
				if tc.hard {
					stopped <- c.StopAndCancel(ctx)
				} else {
					stopped <- c.Stop(ctx)
				}
			}()
			if tc.release {
				close(release)
			}
			if err := <-stopped; !errors.Is(err, tc.wantErr) {
				t.Fatalf("stop: %v, want %v", err, tc.wantErr)
			}
			row, err := c.JobGet(context.Background(), job.ID)
			if err != nil {
				t.Fatal(err)
			}
			if row.State != tc.wantState {
				t.Fatalf("after stop: %s, want %s", row.State, tc.wantState)
			}
		})
	}
}

// The hook hears of every insert and attempt, with the attempt's outcome,
// and of every claim; the handler runs with the context the hook returned.
func TestHook(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	hook := &hooktest.Recorder{}
	var carried atomic.Int64
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
		if hooktest.Carried(ctx, keeltype.OpJobRun) {
			carried.Add(1)
		}
		if j.Args.N == 1 {
			return errors.New("no")
		}
		return nil
	}, nil)
	cfg := fastConfig(w)
	cfg.Hook = hook
	c := startClient(t, pool, cfg)
	ok := insert(t, c, testArgs{N: 0}, nil)
	bad := insert(t, c, testArgs{N: 1}, &InsertOpts{MaxAttempts: 1})
	waitState(t, c, ok.ID, StateCompleted)
	waitState(t, c, bad.ID, StateDiscarded)
	// The hook hears of a failure after its row is written.
	waitFor(t, "the failure to reach the hook", func() bool { return len(hook.Ended(keeltype.OpJobRun)) == 2 })

	if got := len(hook.Ended(keeltype.OpJobInsert)); got != 2 {
		t.Errorf("%d inserts ended, want 2", got)
	}
	var claimed int64
	for _, m := range hook.Measured(keeltype.MeasureJobsClaimed) {
		claimed += m.Value
	}
	if claimed != 2 {
		t.Errorf("claims took %d jobs, want 2", claimed)
	}
	if carried.Load() != 2 {
		t.Errorf("%d of 2 handlers ran with the hook's context", carried.Load())
	}
	outcomes := map[string]hooktest.Ended{}
	for _, e := range hook.Ended(keeltype.OpJobRun) {
		outcomes[e.Op.ID] = e
	}
	okEnd, badEnd := outcomes[strconv.FormatInt(ok.ID, 10)], outcomes[strconv.FormatInt(bad.ID, 10)]
	if okEnd.Outcome.State != string(StateCompleted) || okEnd.Outcome.Err != nil || okEnd.Op.Name != "test" || okEnd.Op.Attempt != 1 || okEnd.Op.Scheduled.IsZero() {
		t.Errorf("completed attempt: %+v", okEnd)
	}
	if badEnd.Outcome.State != string(StateDiscarded) || badEnd.Outcome.Err == nil || badEnd.Op.Queue != DefaultQueue {
		t.Errorf("failed attempt: %+v", badEnd)
	}
}
