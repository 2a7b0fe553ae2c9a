package jobs

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/testdb"
)

// Environment of the helper process: the database to work, and the client id
// to use.
const (
	helperURLEnv = "KEEL_JOBS_HELPER_URL"
	helperIDEnv  = "KEEL_JOBS_HELPER_ID"
)

// TestHelperProcess is not a test: the crash test runs the test binary again
// with this as its only test, as a worker process to kill.
func TestHelperProcess(t *testing.T) {
	url := os.Getenv(helperURLEnv)
	if url == "" {
		t.Skip("runs only as the crash test's subprocess")
	}
	pool := testdb.OpenSized(t, url, 4)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
		<-ctx.Done() // hold the job until killed
		return ctx.Err()
	}, nil)
	cfg := fastConfig(w)
	cfg.ID = os.Getenv(helperIDEnv)
	cfg.HeartbeatInterval = 100 * time.Millisecond
	cfg.RescueAfter = time.Second
	startClient(t, pool, cfg)
	select {} // until SIGKILL
}

func TestKilledWorkerJobRunsAgainElsewhere(t *testing.T) {
	t.Parallel()
	pool, url := newPool(t, 8)
	ctx := context.Background()
	inserter := insertOnly(t, pool)
	job := insert(t, inserter, testArgs{N: 1}, nil)

	helper := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	helper.Env = append(os.Environ(), helperURLEnv+"="+url, helperIDEnv+"=doomed-worker")
	helper.Stdout, helper.Stderr = os.Stderr, os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the helper to run the job", func() bool {
		row, err := inserter.JobGet(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		return row.State == StateRunning
	})
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := helper.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("helper ended with %v, want killed", err)
	}
	row, err := inserter.JobGet(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if row.State != StateRunning || row.Attempt != 1 {
		t.Fatalf("after the kill: %s, attempt %d", row.State, row.Attempt)
	}

	ran := newCounter()
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { ran.add(j.ID); return nil }, nil)
	cfg := fastConfig(w)
	cfg.HeartbeatInterval = 100 * time.Millisecond
	cfg.RescueAfter = time.Second
	c := startClient(t, pool, cfg)
	row = waitState(t, c, job.ID, StateCompleted)
	if row.Attempt != 2 || ran.get(job.ID) != 1 {
		t.Fatalf("attempt %d, ran here %d times; want 2 and 1", row.Attempt, ran.get(job.ID))
	}
	if len(row.Errors) != 1 || !strings.Contains(row.Errors[0].Error, "doomed-worker stopped heartbeating") {
		t.Fatalf("errors: %+v", row.Errors)
	}
}

func TestRescueAtMovedClock(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	c := insertOnly(t, pool)
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		maxAttempts int
		cancel      bool
		want        JobState
	}{
		{"attempts left", 3, false, StateRetryable},
		{"last attempt", 1, false, StateDiscarded},
		{"cancel requested", 3, true, StateCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := insert(t, c, testArgs{}, &InsertOpts{MaxAttempts: tc.maxAttempts, Queue: tc.name})
			owner := "gone"
			claimedAt := time.Now()
			claimed, err := db.New(pool).ClaimJobs(ctx, db.ClaimJobsParams{Now: ts(claimedAt), Owner: &owner, Queue: tc.name, Max: 1})
			if err != nil || len(claimed) != 1 {
				t.Fatalf("claim: %d, %v", len(claimed), err)
			}
			if tc.cancel {
				if _, err := c.JobCancel(ctx, job.ID); err != nil {
					t.Fatal(err)
				}
			}
			rescue := c.rescueDuty()
			c.now = func() time.Time { return claimedAt.Add(c.cfg.RescueAfter - time.Second) }
			if _, _, err := runDuty(ctx, c, rescue); err != nil {
				t.Fatal(err)
			}
			if row, _ := c.JobGet(ctx, job.ID); row.State != StateRunning {
				t.Fatalf("rescued before the timeout: %s", row.State)
			}
			c.now = func() time.Time { return claimedAt.Add(c.cfg.RescueAfter + time.Second) }
			if _, _, err := runDuty(ctx, c, rescue); err != nil {
				t.Fatal(err)
			}
			row, err := c.JobGet(ctx, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			if row.State != tc.want || len(row.Errors) != 1 || !strings.Contains(row.Errors[0].Error, "gone stopped heartbeating") {
				t.Fatalf("after rescue: %s, errors %+v", row.State, row.Errors)
			}
		})
	}
}
