package periodic_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/periodic"
	"github.com/keelpg/keel/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// While one process is inside a pass, no other process runs that duty;
// a different duty runs alongside.
func TestOnePassAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	inside := make(chan struct{})
	release := make(chan struct{})
	var running atomic.Int32
	slow := periodic.Duty{Name: "slow", Key: 1, Interval: time.Hour, Pass: func(ctx context.Context, tx pgx.Tx) (bool, error) {
		running.Add(1)
		close(inside)
		<-release
		return false, nil
	}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if ran, _, err := periodic.RunOnce(ctx, pool, slow); !ran || err != nil {
			t.Errorf("first pass: ran=%v err=%v", ran, err)
		}
	}()
	<-inside
	ran, _, err := periodic.RunOnce(ctx, pool, slow)
	if err != nil || ran {
		t.Errorf("second process ran the duty while the first held it: ran=%v err=%v", ran, err)
	}
	other := periodic.Duty{Name: "other", Key: 2, Pass: func(context.Context, pgx.Tx) (bool, error) { return false, nil }}
	if ran, _, err := periodic.RunOnce(ctx, pool, other); !ran || err != nil {
		t.Errorf("another duty was blocked: ran=%v err=%v", ran, err)
	}
	close(release)
	wg.Wait()
	if ran, _, err := periodic.RunOnce(ctx, pool, periodic.Duty{Name: "slow", Key: 1, Pass: func(context.Context, pgx.Tx) (bool, error) { return false, nil }}); !ran || err != nil {
		t.Errorf("lock not released after the pass: ran=%v err=%v", ran, err)
	}
	if running.Load() != 1 {
		t.Errorf("slow pass ran %d times", running.Load())
	}
}

// A pass that fails rolls back its writes.
func TestFailedPassRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	if _, err := pool.Exec(ctx, "CREATE TABLE marks (n int)"); err != nil {
		t.Fatal(err)
	}
	d := periodic.Duty{Name: "fails", Key: 3, Pass: func(ctx context.Context, tx pgx.Tx) (bool, error) {
		if _, err := tx.Exec(ctx, "INSERT INTO marks VALUES (1)"); err != nil {
			return false, err
		}
		return false, context.DeadlineExceeded
	}}
	if _, _, err := periodic.RunOnce(ctx, pool, d); err == nil {
		t.Fatal("want the pass's error")
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM marks").Scan(&n); err != nil || n != 0 {
		t.Errorf("failed pass left %d rows (%v)", n, err)
	}
}

// Run keeps going while a pass reports more work, then waits; it stops with
// its context.
func TestRunDrainsThenStops(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	var passes atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		periodic.Run(ctx, pool, periodic.Duty{Name: "drain", Key: 4, Interval: time.Hour, Pass: func(context.Context, pgx.Tx) (bool, error) {
			if passes.Add(1) == 3 {
				cancel()
			}
			return true, nil
		}}, nil, nil)
	}()
	<-done
	if got := passes.Load(); got != 3 {
		t.Errorf("Run made %d passes before stopping, want 3 (more=true must not wait an Interval)", got)
	}
}
