package jobs

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/periodic"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// testArgs is the kind most tests run; N tells jobs apart.
type testArgs struct {
	N int `json:"n"`
}

func (testArgs) Kind() string { return "test" }

// newPool returns a pool of at most maxConns connections on a fresh database.
func newPool(t *testing.T, maxConns int) (*pgxpool.Pool, string) {
	t.Helper()
	url := testdb.NewURL(t)
	return testdb.OpenSized(t, url, int32(maxConns)), url
}

// fastConfig shortens the intervals so tests settle in milliseconds.
func fastConfig(workers *Workers) Config {
	return Config{
		Workers:             workers,
		FetchPollInterval:   50 * time.Millisecond,
		MaintenanceInterval: 20 * time.Millisecond,
		HeartbeatInterval:   100 * time.Millisecond,
		RescueAfter:         time.Minute,
		RetryPolicy:         keeltype.ExponentialBackoff{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond},
		Logger:              slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// startClient makes and starts a client that is hard-stopped when the test ends.
func startClient(t *testing.T, pool *pgxpool.Pool, cfg Config) *Client {
	t.Helper()
	c, err := NewClient(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.StopAndCancel(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return c
}

// insertOnly returns a client without workers.
func insertOnly(t *testing.T, pool *pgxpool.Pool) *Client {
	t.Helper()
	c, err := NewClient(pool, Config{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitState polls the job until it is in state.
func waitState(t *testing.T, c *Client, id int64, state JobState) *JobRow {
	t.Helper()
	var row *JobRow
	waitFor(t, "job to be "+string(state), func() bool {
		var err error
		row, err = c.JobGet(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return row.State == state
	})
	return row
}

func insert(t *testing.T, c *Client, args JobArgs, opts *InsertOpts) *JobRow {
	t.Helper()
	row, err := c.Insert(context.Background(), c.pool, args, opts)
	if err != nil {
		t.Fatal(err)
	}
	return row
}

// counter counts handled jobs by id.
type counter struct {
	mu   sync.Mutex
	seen map[int64]int
}

func newCounter() *counter { return &counter{seen: map[int64]int{}} }

func (c *counter) add(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[id]++
}

func (c *counter) get(id int64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[id]
}

func (c *counter) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// total counts every run, repeats included.
func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.seen {
		n += k
	}
	return n
}

// runDuty runs one pass of a maintenance duty.
func runDuty(ctx context.Context, c *Client, d periodic.Duty) (ran, more bool, err error) {
	return periodic.RunOnce(ctx, c.pool, d)
}
