package keel_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/outage"
	"github.com/keelpg/keel/internal/testcluster"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/listener"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

// seenIDs counts the distinct items a consumer handled.
type seenIDs struct {
	mu  sync.Mutex
	ids map[string]int
}

func (s *seenIDs) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]int{}
	}
	s.ids[id]++
}

func (s *seenIDs) counts() (distinct, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.ids {
		total += n
	}
	return len(s.ids), total
}

// A primary and a synchronous streaming standby behind one multi-host URL
// (target_session_attrs=read-write). While jobs, a relay, a subscription and
// saga runs work, the standby is promoted and the old primary stopped: every
// component reconnects to the new primary by itself, and every item
// committed before or after the failover is done.
func TestFailover(t *testing.T) {
	t.Parallel()
	primary := testcluster.New(t)
	standby := testcluster.NewStandby(t, primary)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testcluster.FailoverURL(primary, standby)+"&pool_max_conns=20")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	runCtx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	t.Cleanup(func() { cancel(); running.Wait() })
	listener := listener.New(pool, nil)
	poll := 100 * time.Millisecond

	var ran, published, handled seenIDs
	w := jobs.NewWorkers()
	jobs.AddWorker(w, func(_ context.Context, j *jobs.Job[bouncedArgs]) error {
		ran.add(fmt.Sprint(j.Args.N))
		return nil
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers: w, Listener: listener, FetchPollInterval: poll,
		HeartbeatInterval: 500 * time.Millisecond, RescueAfter: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(box.Close)
	relay, err := outbox.NewRelay(pool, outbox.PublisherFunc(func(_ context.Context, d outbox.Delivery) error {
		published.add(string(d.Payload))
		return nil
	}), outbox.RelayConfig{Listener: listener, PollInterval: poll, Lease: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	running.Go(func() { _ = relay.Run(runCtx) })
	store, err := events.NewStore(pool, events.Config{Listener: listener})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	sub, err := store.NewSubscription(events.SubscriptionConfig{Name: "failover", PollInterval: poll, Lease: 3 * time.Second,
		Handler: func(_ context.Context, _ pgx.Tx, e events.RecordedEvent) error {
			handled.add(e.ID.String())
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	running.Go(func() { _ = sub.Run(runCtx) })
	reg := saga.NewRegistry()
	saga.Register(reg, "double", 1, func(ctx saga.Context, in int) (int, error) {
		return saga.Step(ctx, "double", func(context.Context) (int, error) { return 2 * in, nil }, nil)
	})
	// The engine works jobs' default queue too, so it gets the application's
	// workers (saga.Config.Jobs).
	engine, err := saga.NewEngine(pool, reg, saga.Config{AwaitPollInterval: poll, Jobs: jobs.Config{
		Workers: w, Listener: listener, FetchPollInterval: poll, HeartbeatInterval: 500 * time.Millisecond, RescueAfter: 3 * time.Second,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.Stop(context.Background()) })

	// work commits one item of each kind, retrying through the failover as
	// an application would.
	work := func(i int) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := client.Insert(ctx, tx, bouncedArgs{N: i}, nil); err != nil {
					return err
				}
				if _, err := box.Enqueue(ctx, tx, outbox.Message{Topic: "t", Key: fmt.Sprintf("k%d", i%5), Payload: []byte(fmt.Sprint(i))}); err != nil {
					return err
				}
				e, err := events.NewEvent("Failover", map[string]int{"n": i})
				if err != nil {
					return err
				}
				if _, err := store.Append(ctx, tx, fmt.Sprintf("failover-%d", i%7), events.Any, e); err != nil {
					return err
				}
				_, err = engine.StartRun(ctx, tx, "double", i, &saga.StartOpts{RunID: fmt.Sprintf("failover-%d", i)})
				return err
			})
			if err == nil {
				return
			}
			if !outage.Is(err) || time.Now().After(deadline) {
				t.Fatalf("item %d: %v", i, err)
			}
		}
	}
	const before, after = 100, 100
	for i := range before {
		work(i)
	}
	standby.Promote()
	primary.Stop()
	switched := time.Now()
	for i := before; i < before+after; i++ {
		work(i)
	}
	t.Logf("writes went through again %s after the failover", time.Since(switched).Round(time.Millisecond))
	for i := range before + after {
		awaitCtx, cancelAwait := context.WithTimeout(ctx, time.Minute)
		run, err := engine.Await(awaitCtx, fmt.Sprintf("failover-%d", i))
		cancelAwait()
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if out, err := saga.Result[int](run); err != nil || out != 2*i {
			t.Fatalf("run %d: %d, %v", i, out, err)
		}
	}
	t.Logf("runs awaited %s after the failover", time.Since(switched).Round(time.Millisecond))
	const total = before + after
	deadline := time.Now().Add(time.Minute)
	for {
		j, _ := ran.counts()
		m, _ := published.counts()
		e, _ := handled.counts()
		if j == total && m == total && e == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the failover: %d jobs ran, %d messages published, %d events handled, of %d", j, m, e, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, jobRuns := ran.counts()
	_, pubs := published.counts()
	_, evs := handled.counts()
	t.Logf("everything done %s after the failover; ran twice: %d jobs, %d messages, %d events",
		time.Since(switched).Round(time.Millisecond), jobRuns-total, pubs-total, evs-total)
}
