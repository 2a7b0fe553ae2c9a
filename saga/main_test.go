package saga_test

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/saga"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// openPool opens a pool of at most maxConns connections on dbURL, closed
// when the test ends.
func openPool(t testing.TB, dbURL string, maxConns int) *pgxpool.Pool {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", strconv.Itoa(maxConns))
	u.RawQuery = q.Encode()
	return testdb.Open(t, u.String())
}

// testConfig has short intervals, so tests wait little for polls and
// rescues.
func testConfig() saga.Config {
	return saga.Config{
		MaxConcurrentRuns:   20,
		StepMaxAttempts:     3,
		StepRetryPolicy:     keeltype.ExponentialBackoff{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond},
		AwaitPollInterval:   200 * time.Millisecond,
		UnknownVersionRetry: 200 * time.Millisecond,
		Jobs: jobs.Config{
			FetchPollInterval: 100 * time.Millisecond,
			HeartbeatInterval: 100 * time.Millisecond,
			RescueAfter:       time.Second,
		},
	}
}

// newEngine returns an engine on pool; with start it executes runs until the
// test ends.
func newEngine(t testing.TB, pool *pgxpool.Pool, reg *saga.Registry, start bool) *saga.Engine {
	t.Helper()
	return newEngineWith(t, pool, reg, testConfig(), start)
}

// newEngineWith is newEngine with cfg.
func newEngineWith(t testing.TB, pool *pgxpool.Pool, reg *saga.Registry, cfg saga.Config, start bool) *saga.Engine {
	t.Helper()
	e, err := saga.NewEngine(pool, reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if start {
		if err := e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
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

// start starts a run through the pool.
func start(t testing.TB, e *saga.Engine, pool *pgxpool.Pool, name string, input any, opts *saga.StartOpts) *saga.Run {
	t.Helper()
	run, err := e.StartRun(context.Background(), pool, name, input, opts)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return run
}

// await waits at most 30s for the run to finish.
func await(t *testing.T, e *saga.Engine, runID string) *saga.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := e.Await(ctx, runID)
	if err != nil {
		t.Fatalf("await %s: %v", runID, err)
	}
	return run
}

// waitFor polls cond until it holds or 30s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStatus waits until the run has status.
func waitStatus(t *testing.T, e *saga.Engine, pool *pgxpool.Pool, runID string, status saga.Status) *saga.Run {
	t.Helper()
	var run *saga.Run
	waitFor(t, "run "+runID+" to be "+string(status), func() bool {
		var err error
		run, err = e.Get(context.Background(), pool, runID)
		if err != nil {
			t.Fatal(err)
		}
		return run.Status == status
	})
	return run
}

func pgxCollectStrings(rows pgx.Rows) ([]string, error) {
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
