package jobs

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestJobDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := newPool(t, 8)
	started := make(chan int64, 1)
	release := make(chan struct{})
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
		started <- j.ID
		<-release
		return nil
	}, nil)
	runner := startClient(t, pool, fastConfig(w))
	c := insertOnly(t, pool)
	gone := func(t *testing.T, id int64) {
		t.Helper()
		if _, err := c.JobGet(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("job %d after delete: %v, want ErrNotFound", id, err)
		}
	}

	t.Run("queued and final jobs", func(t *testing.T) {
		scheduled := insert(t, c, testArgs{N: 1}, &InsertOpts{Queue: "idle", Delay: time.Hour, Tags: []string{"a"}})
		cancelled := insert(t, c, testArgs{N: 2}, &InsertOpts{Queue: "idle"})
		if _, err := c.JobCancel(ctx, cancelled.ID); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			job   *JobRow
			state JobState
		}{{scheduled, StateScheduled}, {cancelled, StateCancelled}} {
			row, err := c.JobDelete(ctx, tc.job.ID)
			if err != nil {
				t.Fatalf("delete %s job: %v", tc.state, err)
			}
			if row.ID != tc.job.ID || row.State != tc.state || string(row.EncodedArgs) != string(tc.job.EncodedArgs) {
				t.Fatalf("deleted row %+v, want job %d as it was (%s)", row, tc.job.ID, tc.state)
			}
			gone(t, tc.job.ID)
		}
	})

	t.Run("running job is refused", func(t *testing.T) {
		job := insert(t, c, testArgs{N: 3}, nil)
		if id := <-started; id != job.ID {
			t.Fatalf("started %d, want %d", id, job.ID)
		}
		if _, err := c.JobDelete(ctx, job.ID); !errors.Is(err, ErrJobRunning) {
			t.Fatalf("delete of a running job: %v, want ErrJobRunning", err)
		}
		close(release)
		waitState(t, runner, job.ID, StateCompleted)
		if _, err := c.JobDelete(ctx, job.ID); err != nil {
			t.Fatalf("delete once completed: %v", err)
		}
		gone(t, job.ID)
	})

	t.Run("job with pending dependents is refused", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := c.InsertWorkflow(ctx, tx, NewWorkflow("delete").
			Add("first", testArgs{N: 4}, &TaskOpts{InsertOpts: InsertOpts{Queue: "idle", Delay: time.Hour}}).
			Add("second", testArgs{N: 5}, &TaskOpts{After: []string{"first"}, InsertOpts: InsertOpts{Queue: "idle"}}))
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.JobDelete(ctx, ids["first"]); !errors.Is(err, ErrJobHasDependents) {
			t.Fatalf("delete of a job another waits on: %v, want ErrJobHasDependents", err)
		}
		if row, err := c.JobGet(ctx, ids["first"]); err != nil || row.State != StateScheduled {
			t.Fatalf("refused job afterwards: %v, %v", row, err)
		}
		// A pending job may go; then nothing waits on its dependency.
		row, err := c.JobDelete(ctx, ids["second"])
		if err != nil || row.State != StatePending || len(row.DependsOn) != 1 || row.DependsOn[0] != ids["first"] {
			t.Fatalf("delete of the pending job: %+v, %v", row, err)
		}
		if _, err := c.JobDelete(ctx, ids["first"]); err != nil {
			t.Fatalf("delete once nothing waits on it: %v", err)
		}
		gone(t, ids["first"])
		gone(t, ids["second"])
	})

	t.Run("no such job", func(t *testing.T) {
		if _, err := c.JobDelete(ctx, 1<<40); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
	})
}
