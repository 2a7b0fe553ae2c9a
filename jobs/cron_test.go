package jobs

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/testdb"
)

func TestPeriodicTickInsertedOnceByThreeClients(t *testing.T) {
	t.Parallel()
	_, url := newPool(t, 1)
	ctx := context.Background()
	newClients := func(name string) []*Client {
		var clients []*Client
		for range 3 {
			w := NewWorkers()
			AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { return nil }, nil)
			cfg := fastConfig(w)
			cfg.PeriodicJobs = []PeriodicJob{{
				Name:     name,
				Schedule: "* * * * * *",
				Args:     func() (JobArgs, *InsertOpts) { return testArgs{N: 7}, nil },
			}}
			c, err := NewClient(testdb.OpenSized(t, url, 4), cfg)
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
		}
		return clients
	}

	t.Run("one tick, three clients at once", func(t *testing.T) {
		clients := newClients("future")
		tick := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		var wg sync.WaitGroup
		inserted := make(chan bool, 3)
		for _, c := range clients {
			wg.Go(func() {
				ok, err := c.enqueueTick(ctx, c.schedules[0], tick)
				if err != nil {
					t.Error(err)
				}
				inserted <- ok
			})
		}
		wg.Wait()
		close(inserted)
		wins := 0
		for ok := range inserted {
			if ok {
				wins++
			}
		}
		if wins != 1 {
			t.Fatalf("%d clients inserted the tick, want 1", wins)
		}
		// The same tick again (a late client) and an earlier one: nothing.
		for _, at := range []time.Time{tick, tick.Add(-time.Second)} {
			if ok, err := clients[0].enqueueTick(ctx, clients[0].schedules[0], at); ok || err != nil {
				t.Fatalf("tick %s again: %v, %v", at, ok, err)
			}
		}
	})

	t.Run("three running clients", func(t *testing.T) {
		clients := newClients("live")
		before, err := countState(clients[0], "")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.StopAndCancel(context.Background()) })
		}
		waitFor(t, "three ticks", func() bool {
			n, err := countState(clients[0], "")
			if err != nil {
				t.Fatal(err)
			}
			return n-before >= 3
		})
		for _, c := range clients {
			if err := c.Stop(ctx); err != nil {
				t.Fatal(err)
			}
		}
		n, err := countState(clients[0], "")
		if err != nil {
			t.Fatal(err)
		}
		ticks := map[string]int64{}
		for id := int64(1); id <= n+10; id++ { // ids of rolled-back inserts are skipped
			row, err := clients[0].JobGet(ctx, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if prev, dup := ticks[row.UniqueKey]; dup {
				t.Fatalf("tick %s inserted twice: jobs %d and %d", row.UniqueKey, prev, id)
			}
			ticks[row.UniqueKey] = id
		}
		if int64(len(ticks)) != n {
			t.Fatalf("%d ticks among %d jobs", len(ticks), n)
		}
	})
}

func TestPeriodicRunOnStartCatchesUpOnce(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { return nil }, nil)
	cfg := fastConfig(w)
	cfg.PeriodicJobs = []PeriodicJob{{
		Name: "hourly", Schedule: "@hourly", RunOnStart: true,
		Args: func() (JobArgs, *InsertOpts) { return testArgs{}, nil },
	}}
	ctx := context.Background()
	for range 2 {
		c, err := NewClient(pool, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.catchUp(ctx, c.schedules[0]); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := countState(insertOnly(t, pool), ""); err != nil || n != 1 {
		t.Fatalf("%d jobs after two catch-ups (%v), want 1", n, err)
	}
}

func TestPeriodicJobValidation(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 1)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { return nil }, nil)
	args := func() (JobArgs, *InsertOpts) { return testArgs{}, nil }
	for _, tc := range []struct {
		name string
		pj   []PeriodicJob
	}{
		{"bad expression", []PeriodicJob{{Name: "x", Schedule: "every tuesday", Args: args}}},
		{"no name", []PeriodicJob{{Schedule: "@daily", Args: args}}},
		{"no args", []PeriodicJob{{Name: "x", Schedule: "@daily"}}},
		{"bad options", []PeriodicJob{{Name: "x", Schedule: "@daily", Args: func() (JobArgs, *InsertOpts) {
			return testArgs{}, &InsertOpts{Priority: 9}
		}}}},
		{"same name twice", []PeriodicJob{{Name: "x", Schedule: "@daily", Args: args}, {Name: "x", Schedule: "@hourly", Args: args}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastConfig(w)
			cfg.PeriodicJobs = tc.pj
			if _, err := NewClient(pool, cfg); !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("got %v, want ErrInvalidOptions", err)
			}
		})
	}
}
