package saga

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/testdb"
)

// TestGroupBatchesWhatQueues: a request that finds the group idle is written
// alone and at once; the requests that arrive while it is written go
// together in the next write; each caller gets its own result.
func TestGroupBatchesWhatQueues(t *testing.T) {
	t.Parallel()
	const queued = 25
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	g := &group[int, int]{}
	g.write = func(_ context.Context, batch []*call[int, int]) {
		mu.Lock()
		first := len(sizes) == 0
		sizes = append(sizes, len(batch))
		mu.Unlock()
		if first {
			<-release
		}
		for _, c := range batch {
			c.res = c.req * 2
		}
	}
	ctx := context.Background()
	results := make([]int, queued+1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		results[0], _ = g.do(ctx, 0)
	}()
	waitUntil(t, "the first write", func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 1 })
	for i := 1; i <= queued; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = g.do(ctx, i)
		}()
	}
	waitUntil(t, "every request queued", func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.queue) == queued })
	close(release)
	wg.Wait()
	if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != queued {
		t.Fatalf("batches %v, want [1 %d]", sizes, queued)
	}
	for i, r := range results {
		if r != i*2 {
			t.Fatalf("request %d got %d", i, r)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.busy || len(g.queue) != 0 {
		t.Fatalf("idle group: busy %t, %d queued", g.busy, len(g.queue))
	}
}

// TestGroupCommitIsolatesARefusal: a checkpoint the database refuses fails
// alone; the others of its batch are written.
func TestGroupCommitIsolatesARefusal(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	e, err := NewEngine(pool, NewRegistry(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	q := db.New(pool)
	for _, id := range []string{"a", "b", "c"} {
		if _, err := q.InsertRun(ctx, db.InsertRunParams{ID: id, Workflow: "w", Version: 1, Queue: "default", Input: []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	step := func(run, kind string) *call[commitReq, commitRes] {
		return &call[commitReq, commitRes]{req: commitReq{step: &db.CheckpointParams{
			RunID: run, Epoch: 0, Seq: 1, Name: "s", Kind: kind, Status: db.KeelSagaStepStatusCompleted,
			Output: []byte("1"), Attempts: 1, Owner: ptr("test"),
		}}}
	}
	batch := []*call[commitReq, commitRes]{step("a", "step"), step("b", "no such kind"), step("c", "step")}
	e.writeCommits(ctx, batch)
	var pg *pgconn.PgError
	for i, c := range batch {
		refused := i == 1
		if refused != (c.err != nil) || refused == c.res.written {
			t.Fatalf("call %d: written %t, err %v", i, c.res.written, c.err)
		}
		if refused && (!errors.As(c.err, &pg) || pg.Code != "23514") {
			t.Fatalf("call %d: %v, want a check violation", i, c.err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM keel.saga_steps`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d steps recorded, want 2", n)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
