package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/testdb"
)

func TestRolledBackInsertNeverRuns(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	handled := newCounter()
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { handled.add(j.ID); return nil }, nil)
	c := startClient(t, pool, fastConfig(w))
	ctx := context.Background()

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rolledBack, err := c.Insert(ctx, tx, testArgs{N: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	tx, err = pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := c.Insert(ctx, tx, testArgs{N: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	row := waitState(t, c, committed.ID, StateCompleted)
	if row.Attempt != 1 || handled.get(committed.ID) != 1 {
		t.Fatalf("committed job: attempt %d, handled %d times; want 1, 1", row.Attempt, handled.get(committed.ID))
	}
	if _, err := c.JobGet(ctx, rolledBack.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rolled-back job: got %v, want ErrNotFound", err)
	}
	if handled.get(rolledBack.ID) != 0 {
		t.Fatal("rolled-back job ran")
	}
}

func TestCompetingClientsHandleEachJobOnce(t *testing.T) {
	t.Parallel()
	const total = 5000
	_, url := newPool(t, 1)
	handled := newCounter()
	var clients []*Client
	for range 3 {
		w := NewWorkers()
		AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { handled.add(j.ID); return nil }, nil)
		cfg := fastConfig(w)
		cfg.Queues = map[string]QueueConfig{DefaultQueue: {MaxWorkers: 50}}
		clients = append(clients, startClient(t, testdb.OpenSized(t, url, 6), cfg))
	}
	params := make([]InsertManyParams, total)
	for i := range params {
		params[i] = InsertManyParams{Args: testArgs{N: i}}
	}
	n, err := clients[0].InsertMany(context.Background(), clients[0].pool, params)
	if err != nil || n != total {
		t.Fatalf("InsertMany: %d, %v", n, err)
	}
	waitFor(t, "every job completed", func() bool {
		done, err := countState(clients[0], StateCompleted)
		if err != nil {
			t.Fatal(err)
		}
		return done == total
	})
	if handled.len() != total {
		t.Fatalf("handled %d distinct jobs, want %d", handled.len(), total)
	}
	handled.mu.Lock()
	defer handled.mu.Unlock()
	for id, times := range handled.seen {
		if times != 1 {
			t.Fatalf("job %d handled %d times", id, times)
		}
	}
}

// countState counts the jobs in a state.
func countState(c *Client, state JobState) (int64, error) {
	return c.JobCount(context.Background(), state)
}

func TestRetriesThenCompletes(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
		if j.Attempt < 3 {
			return errors.New("flaky " + string(rune('0'+j.Attempt)))
		}
		return nil
	}, nil)
	c := startClient(t, pool, fastConfig(w))
	job := insert(t, c, testArgs{}, nil)
	row := waitState(t, c, job.ID, StateCompleted)
	if row.Attempt != 3 || len(row.Errors) != 2 {
		t.Fatalf("attempt %d, %d errors; want 3 and 2", row.Attempt, len(row.Errors))
	}
	for i, e := range row.Errors {
		if e.Attempt != i+1 || !strings.Contains(e.Error, "flaky") || e.At.IsZero() {
			t.Fatalf("error %d: %+v", i, e)
		}
	}
}

func TestBackoffSchedulesRetryAndPromotion(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { return errors.New("boom") }, nil)
	cfg := fastConfig(w)
	cfg.RetryPolicy = nil // the default: exponential backoff with jitter
	cfg.MaintenanceInterval = time.Hour
	c := startClient(t, pool, cfg)
	job := insert(t, c, testArgs{}, nil)
	row := waitState(t, c, job.ID, StateRetryable)
	// The retry time is the failure's time plus the policy's backoff: both
	// come from one reading of the client's clock, so the stored pair shows
	// the backoff exactly, however long the attempt or the test took. The
	// bounds are the default policy's (2s with ±10% jitter), widened by the
	// microsecond to which Postgres truncates run_at (the error's time keeps
	// its nanoseconds in jsonb).
	if len(row.Errors) != 1 {
		t.Fatalf("%d errors recorded, want 1", len(row.Errors))
	}
	wait := row.RunAt.Sub(row.Errors[0].At)
	if lo, hi := 1800*time.Millisecond-time.Microsecond, 2200*time.Millisecond; wait < lo || wait > hi {
		t.Fatalf("first retry %s after the failure; want the default policy's first backoff, 2s with ±10%% jitter", wait)
	}
	// Nothing is due just before its time; at its time it is. Both clocks
	// are moved, so neither depends on how fast the machine is.
	ctx := context.Background()
	if got := promote(t, c, row.RunAt.Add(-time.Millisecond)); got != 0 {
		t.Fatalf("promoted %d jobs before their time", got)
	}
	if got := promote(t, c, row.RunAt.Add(time.Millisecond)); got != 1 {
		t.Fatalf("promoted %d jobs at their time, want 1", got)
	}
	row = waitState(t, c, job.ID, StateRetryable)
	if row.Attempt != 2 {
		t.Fatalf("attempt %d after promotion, want 2", row.Attempt)
	}
	if _, err := c.JobGet(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
}

func promote(t *testing.T, c *Client, now time.Time) int {
	t.Helper()
	queues, err := db.New(c.pool).PromoteDueJobs(context.Background(), db.PromoteDueJobsParams{Now: ts(now), Max: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(queues) > 0 {
		c.run.queues[DefaultQueue].wakeUp()
	}
	return len(queues)
}

func TestDefaultRetryPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{1, 2 * time.Second}, {2, 4 * time.Second}, {5, 32 * time.Second}, {16, 65536 * time.Second}, {17, 24 * time.Hour}, {40, 24 * time.Hour}} {
		for range 50 {
			got := defaultRetryPolicy.NextRetry(tc.attempt, nil)
			if got < tc.want-tc.want/10 || got > tc.want+tc.want/10 {
				t.Fatalf("attempt %d: %s, want %s ± 10%%", tc.attempt, got, tc.want)
			}
		}
	}
}

func TestDiscardedAfterMaxAttemptsAndRetriedByID(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	w := NewWorkers()
	released := make(chan struct{})
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
		if j.Attempt <= 2 {
			return errors.New("always fails")
		}
		<-released
		return nil
	}, nil)
	c := startClient(t, pool, fastConfig(w))
	job := insert(t, c, testArgs{}, &InsertOpts{MaxAttempts: 2})
	row := waitState(t, c, job.ID, StateDiscarded)
	if row.Attempt != 2 || len(row.Errors) != 2 || row.FinalizedAt.IsZero() {
		t.Fatalf("discarded row: %+v", row)
	}
	retried, err := c.JobRetry(context.Background(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if retried.State != StateAvailable || retried.MaxAttempts != 3 {
		t.Fatalf("after retry: state %s, max attempts %d", retried.State, retried.MaxAttempts)
	}
	close(released)
	row = waitState(t, c, job.ID, StateCompleted)
	if row.Attempt != 3 {
		t.Fatalf("attempt %d, want 3", row.Attempt)
	}
	if _, err := c.JobRetry(context.Background(), 1<<40); !errors.Is(err, ErrNotFound) {
		t.Fatalf("retry of no job: %v", err)
	}
}

func TestSnoozeKeepsAttempts(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	w := NewWorkers()
	runs := newCounter()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
		runs.add(j.ID)
		if runs.get(j.ID) < 3 {
			return JobSnooze(time.Duration(runs.get(j.ID)-1) * 10 * time.Millisecond) // 0, then 10ms
		}
		return nil
	}, nil)
	c := startClient(t, pool, fastConfig(w))
	job := insert(t, c, testArgs{}, &InsertOpts{MaxAttempts: 1})
	row := waitState(t, c, job.ID, StateCompleted)
	if runs.get(job.ID) != 3 || row.Attempt != 1 || len(row.Errors) != 0 {
		t.Fatalf("ran %d times, attempt %d, %d errors; want 3, 1, 0", runs.get(job.ID), row.Attempt, len(row.Errors))
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	pool, url := newPool(t, 8)
	started := make(chan int64, 1)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
		switch j.Args.N {
		case 1: // runs until cancelled from elsewhere
			started <- j.ID
			<-ctx.Done()
			if !errors.Is(context.Cause(ctx), ErrCancelRequested) {
				return errors.New("context ended without a cancel request")
			}
			return ctx.Err()
		case 2:
			return JobCancel(errors.New("not worth retrying"))
		}
		return nil
	}, nil)
	cfg := fastConfig(w)
	cfg.HeartbeatInterval = time.Hour // the notification must do it
	cfg.RescueAfter = 2 * time.Hour
	runner := startClient(t, pool, cfg)
	other := insertOnly(t, testdb.OpenSized(t, url, 2))
	ctx := context.Background()

	t.Run("running job on another client", func(t *testing.T) {
		job := insert(t, other, testArgs{N: 1}, nil)
		if id := <-started; id != job.ID {
			t.Fatalf("started %d, want %d", id, job.ID)
		}
		row, err := other.JobCancel(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if row.State != StateRunning || !row.CancelRequested {
			t.Fatalf("right after the request: %s, requested %v", row.State, row.CancelRequested)
		}
		// The runner may have claimed the job by polling before its LISTEN
		// was in place, so the first notification can be lost; a repeated
		// request notifies again. Heartbeats are hours away: only a
		// notification cancels the job here.
		resend := time.NewTicker(time.Second)
		defer resend.Stop()
		waitFor(t, "job to be cancelled", func() bool {
			select {
			case <-resend.C:
				if _, err := other.JobCancel(ctx, job.ID); err != nil {
					t.Fatal(err)
				}
			default:
			}
			row, err = runner.JobGet(ctx, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			return row.State == StateCancelled
		})
		if len(row.Errors) != 1 || !strings.Contains(row.Errors[0].Error, "cancelled") {
			t.Fatalf("errors: %+v", row.Errors)
		}
	})
	t.Run("queued job", func(t *testing.T) {
		job := insert(t, other, testArgs{N: 3}, &InsertOpts{Delay: time.Hour})
		row, err := other.JobCancel(ctx, job.ID)
		if err != nil || row.State != StateCancelled {
			t.Fatalf("cancel: %v, %v", row, err)
		}
	})
	t.Run("by its handler", func(t *testing.T) {
		job := insert(t, other, testArgs{N: 2}, nil)
		row := waitState(t, runner, job.ID, StateCancelled)
		if row.Attempt != 1 || !strings.Contains(row.Errors[0].Error, "not worth retrying") {
			t.Fatalf("row: %+v", row)
		}
	})
	t.Run("final job is left alone", func(t *testing.T) {
		job := insert(t, other, testArgs{N: 4}, nil)
		waitState(t, runner, job.ID, StateCompleted)
		row, err := other.JobCancel(ctx, job.ID)
		if err != nil || row.State != StateCompleted {
			t.Fatalf("cancel of a completed job: %v, %v", row, err)
		}
	})
	t.Run("no such job", func(t *testing.T) {
		if _, err := other.JobCancel(ctx, 1<<40); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
		<-ctx.Done()
		return ctx.Err()
	}, &WorkerOpts{Timeout: 50 * time.Millisecond})
	c := startClient(t, pool, fastConfig(w))
	for _, tc := range []struct {
		name string
		opts *InsertOpts
		want string
	}{
		{"kind's timeout", &InsertOpts{MaxAttempts: 1}, "timed out after 50ms"},
		{"job's timeout", &InsertOpts{MaxAttempts: 1, Timeout: 20 * time.Millisecond}, "timed out after 20ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := insert(t, c, testArgs{}, tc.opts)
			row := waitState(t, c, job.ID, StateDiscarded)
			if len(row.Errors) != 1 || !strings.Contains(row.Errors[0].Error, tc.want) {
				t.Fatalf("errors %+v, want %q", row.Errors, tc.want)
			}
		})
	}
}

func TestUniqueKey(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	c := insertOnly(t, pool)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	first, err := c.Insert(ctx, tx, testArgs{N: 1}, &InsertOpts{UniqueKey: "report:42"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Insert(ctx, tx, testArgs{N: 2}, &InsertOpts{UniqueKey: "report:42"})
	var dup *DuplicateError
	if !errors.Is(err, ErrDuplicate) || !errors.As(err, &dup) || dup.ExistingID != first.ID {
		t.Fatalf("second insert: %v, want a DuplicateError naming %d", err, first.ID)
	}
	// The transaction is still usable, and another key inserts.
	if _, err := c.Insert(ctx, tx, testArgs{N: 3}, &InsertOpts{UniqueKey: "report:43"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Once the holder is final, the key is free again.
	if _, err := c.JobCancel(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	again, err := c.Insert(ctx, pool, testArgs{N: 4}, &InsertOpts{UniqueKey: "report:42"})
	if err != nil {
		t.Fatal(err)
	}
	// Retrying the cancelled holder would make two active holders.
	if _, err := c.JobRetry(ctx, first.ID); !errors.As(err, &dup) || dup.ExistingID != again.ID {
		t.Fatalf("retry of the old holder: %v", err)
	}
}

func TestPauseAndResumeAcrossClients(t *testing.T) {
	t.Parallel()
	pool, url := newPool(t, 8)
	handled := newCounter()
	var clients []*Client
	for range 2 {
		w := NewWorkers()
		AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { handled.add(j.ID); return nil }, nil)
		clients = append(clients, startClient(t, testdb.OpenSized(t, url, 4), fastConfig(w)))
	}
	ctx := context.Background()
	admin := insertOnly(t, pool)
	if err := admin.QueuePause(ctx, DefaultQueue); err != nil {
		t.Fatal(err)
	}
	if paused, err := clients[1].QueuePaused(ctx, DefaultQueue); err != nil || !paused {
		t.Fatalf("paused: %v, %v", paused, err)
	}
	var ids []int64
	for i := range 10 {
		ids = append(ids, insert(t, admin, testArgs{N: i}, nil).ID)
	}
	// Every claim, whoever makes it, finds nothing in a paused queue; the
	// clients' own fetches (woken by the inserts) have found nothing too.
	for _, c := range clients {
		got, err := c.run.queues[DefaultQueue].fetch(ctx, 10)
		if err != nil || got != 0 {
			t.Fatalf("claim from a paused queue: %d, %v", got, err)
		}
	}
	if n, err := countState(admin, StateAvailable); err != nil || n != 10 || handled.len() != 0 {
		t.Fatalf("while paused: %d available (%v), %d handled", n, err, handled.len())
	}
	if err := admin.QueueResume(ctx, DefaultQueue); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		waitState(t, admin, id, StateCompleted)
	}
}
