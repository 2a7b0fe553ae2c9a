package jobs

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestJobCompleteTx: a handler's effect and its job's completion commit
// together; a rolled-back transaction completes nothing and the attempt is
// retried; a job that is not running is reported and leaves the
// transaction usable.
func TestJobCompleteTx(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// commit: the handler commits its transaction (else it rolls back
		// and returns an error).
		commit    bool
		wantState JobState
		wantRows  int
	}{
		{"committed", true, StateCompleted, 1},
		{"rolled back", false, StateRetryable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool, _ := newPool(t, 8)
			ctx := context.Background()
			if _, err := pool.Exec(ctx, `CREATE TABLE effects (job_id bigint PRIMARY KEY)`); err != nil {
				t.Fatal(err)
			}
			w := NewWorkers()
			AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
				tx, err := pool.Begin(ctx)
				if err != nil {
					return err
				}
				defer func() { _ = tx.Rollback(ctx) }()
				if _, err := tx.Exec(ctx, `INSERT INTO effects VALUES ($1)`, j.ID); err != nil {
					return err
				}
				if err := JobCompleteTx(ctx, tx, j); err != nil {
					return err
				}
				if !tt.commit {
					return errors.New("rolled back")
				}
				return tx.Commit(ctx)
			}, nil)
			c := startClient(t, pool, fastConfig(w))
			job := insert(t, c, testArgs{}, &InsertOpts{MaxAttempts: 2})
			if tt.commit {
				waitState(t, c, job.ID, tt.wantState)
			} else {
				waitFor(t, "a failed first attempt, not completed", func() bool {
					row, err := c.JobGet(ctx, job.ID)
					return err == nil && len(row.Errors) >= 1 && row.State != StateCompleted
				})
			}
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != tt.wantRows {
				t.Fatalf("effects: %d rows, want %d", n, tt.wantRows)
			}
		})
	}
}

func TestJobCompleteTxRefuses(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	ctx := context.Background()
	c := insertOnly(t, pool)
	row := insert(t, c, testArgs{}, nil)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := JobCompleteTx[testArgs](ctx, tx, nil); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("nil job: %v, want ErrInvalidOptions", err)
		}
		if err := JobCompleteTx[testArgs](ctx, nil, &Job[testArgs]{JobRow: row}); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("nil tx: %v, want ErrInvalidOptions", err)
		}
		// Available, not running: left as it is, and tx stays usable.
		if err := JobCompleteTx(ctx, tx, &Job[testArgs]{JobRow: row}); !errors.Is(err, ErrJobNotRunning) {
			t.Errorf("a job not running: %v, want ErrJobNotRunning", err)
		}
		var one int
		return tx.QueryRow(ctx, `SELECT 1`).Scan(&one)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.JobGet(ctx, row.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateAvailable {
		t.Fatalf("state %s, want available", got.State)
	}
}

// TestWorkerCompletesJob: a worker whose handlers complete their own jobs
// gets no completion written by the client: a job its handler completed is
// completed, one it left is still running once the client stopped (to be
// rescued).
func TestWorkerCompletesJob(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	ctx := context.Background()
	w := NewWorkers()
	ran := newCounter()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
		defer ran.add(j.ID)
		if j.Args.N%2 == 1 {
			return nil // leaves its job running
		}
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return JobCompleteTx(ctx, tx, j) })
	}, &WorkerOpts{CompletesJob: true})
	c := startClient(t, pool, fastConfig(w))
	completed := insert(t, c, testArgs{N: 2}, nil)
	left := insert(t, c, testArgs{N: 1}, nil)
	waitFor(t, "both handlers", func() bool { return ran.len() == 2 })
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int64]JobState{completed.ID: StateCompleted, left.ID: StateRunning} {
		row, err := c.JobGet(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if row.State != want {
			t.Errorf("job %d: %s, want %s", id, row.State, want)
		}
	}
}
