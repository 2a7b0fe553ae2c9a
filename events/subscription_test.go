package events_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
)

// runSub runs a subscription until the test ends.
func runSub(t *testing.T, store *events.Store, cfg events.SubscriptionConfig) {
	t.Helper()
	sub, err := store.NewSubscription(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(startSub(t, sub))
}

// startSub runs sub in a goroutine and returns a function that stops it and
// checks that Run ended cleanly; calling it again does nothing.
func startSub(t *testing.T, sub *events.Subscription) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("subscription: %v", err)
			}
		})
	}
}

func createReadModelIn(ctx context.Context, t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(ctx, createReadModel); err != nil {
		t.Fatal(err)
	}
}

// Writers on many streams commit out of insert order — each writer holds a
// transaction open while a later one commits, some roll back — and one
// transaction stays open throughout. A subscription reading all the while
// handles every committed event exactly once, in gap-free position order
// and per-stream version order, and the open transaction holds back none of
// the others.
func TestSubscriptionSeesOutOfOrderCommitsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.NewSized(t, 8)
	store := newStore(t, pool, events.Config{})
	createReadModelIn(ctx, t, pool)
	runSub(t, store, events.SubscriptionConfig{Name: "ordering", Handler: project, PollInterval: 20 * time.Millisecond, BatchSize: 25})

	long, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = long.Rollback(ctx) }()
	if _, err := store.Append(ctx, long, "long-1", events.NoStream, ev("E", 1)); err != nil {
		t.Fatal(err)
	}

	const writers, rounds = 4, 30
	var committed atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range rounds {
				n := 1 + rng.IntN(3)
				outer, err := pool.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				evs := make([]events.EventData, n)
				for i := range evs {
					evs[i] = ev("E", rng.IntN(100))
				}
				if _, err := store.Append(ctx, outer, fmt.Sprintf("order-%d-%d", w, rng.IntN(3)), events.Any, evs...); err != nil {
					t.Error(err)
					_ = outer.Rollback(ctx)
					return
				}
				if rng.IntN(2) == 0 {
					// A later transaction commits while outer, which
					// inserted first, is still open.
					res := appendTx(ctx, t, store, pool, fmt.Sprintf("cart-%d-%d", w, rng.IntN(3)), events.Any, ev("E", rng.IntN(100)))
					committed.Add(int64(len(res.Events)))
				}
				if rng.IntN(8) == 0 {
					if err := outer.Rollback(ctx); err != nil {
						t.Error(err)
					}
					continue
				}
				if err := outer.Commit(ctx); err != nil {
					t.Error(err)
					return
				}
				committed.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	want := committed.Load()
	eventually(t, time.Minute, "the subscriber handles every committed event while a transaction stays open", func() (bool, error) {
		n, err := seenCount(ctx, pool)
		return n == want, err
	})
	checkSeen(ctx, t, pool, want)
	if err := long.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the long transaction's event arrives after it commits", func() (bool, error) {
		n, err := seenCount(ctx, pool)
		return n == want+1, err
	})
	checkSeen(ctx, t, pool, want+1)
	if got, rebuilt := readTotals(ctx, t, pool), rebuild(ctx, t, store, pool); !slices.Equal(got, rebuilt) {
		t.Errorf("projection %v differs from a rebuild %v", got, rebuilt)
	}
}

// A category subscription handles only its category's events.
func TestCategorySubscription(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	var mu sync.Mutex
	var got []string
	runSub(t, store, events.SubscriptionConfig{Name: "orders", Category: "order", PollInterval: 20 * time.Millisecond,
		Handler: func(_ context.Context, _ pgx.Tx, e events.RecordedEvent) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, fmt.Sprintf("%s@%d", e.StreamID, e.Version))
			return nil
		}})
	for _, s := range []string{"order-1", "cart-1", "order-2", "order-1", "orders-1"} {
		appendTx(ctx, t, store, pool, s, events.Any, ev("E", 1))
	}
	want := []string{"order-1@1", "order-2@1", "order-1@2"}
	var info events.SubscriptionInfo
	eventually(t, 30*time.Second, "category events handled", func() (bool, error) {
		var err error
		info, err = store.SubscriptionGet(ctx, "orders")
		if errors.Is(err, events.ErrSubscriptionNotFound) {
			return false, nil
		}
		return info.Position >= 4, err
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) || info.Category != "order" || info.Position != 4 {
		t.Errorf("handled %v at checkpoint %d (category %q), want %v at 4", got, info.Position, info.Category, want)
	}
	other, err := store.NewSubscription(events.SubscriptionConfig{Name: "orders", Category: "cart", Handler: project})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Run(ctx); !errors.Is(err, events.ErrInvalidArgument) {
		t.Errorf("running a subscription under another category: %v", err)
	}
}

// With polling effectively off, an append's notification alone wakes the
// subscription.
func TestSubscriptionWokenByNotify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	handled := make(chan string, 10)
	runSub(t, store, events.SubscriptionConfig{Name: "wake", PollInterval: time.Hour,
		Handler: func(_ context.Context, _ pgx.Tx, e events.RecordedEvent) error {
			handled <- e.StreamID
			return nil
		}})
	eventually(t, 30*time.Second, "the subscription holds its lease", func() (bool, error) {
		info, err := store.SubscriptionGet(ctx, "wake")
		if errors.Is(err, events.ErrSubscriptionNotFound) {
			return false, nil
		}
		return info.Owner != "", err
	})
	// The subscriber may be between its claim and its wait; notifications
	// keep coming until it handles one.
	deadline := time.After(30 * time.Second)
	for i := 0; ; i++ {
		appendTx(ctx, t, store, pool, fmt.Sprintf("wake-%d", i), events.Any, ev("E", i))
		select {
		case <-handled:
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("no event handled with only notifications to wake the subscription")
		}
	}
}

// A failing handler is retried with backoff; the events before the failing
// one are checkpointed; after MaxAttempts the subscription parks with the
// error in its row, and resuming it goes on from the failed event.
func TestFailingHandlerParks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	for i := 1; i <= 5; i++ {
		typ := "Good"
		if i == 3 {
			typ = "Poison"
		}
		appendTx(ctx, t, store, pool, "fail-1", events.Any, ev(typ, i))
	}
	var healed atomic.Bool
	var calls atomic.Int32
	var handledGood atomic.Int32
	runSub(t, store, events.SubscriptionConfig{Name: "fragile", PollInterval: 20 * time.Millisecond,
		MaxAttempts: 3, RetryPolicy: keeltype.ExponentialBackoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
		Handler: func(_ context.Context, _ pgx.Tx, e events.RecordedEvent) error {
			if e.Type == "Poison" && !healed.Load() {
				calls.Add(1)
				if calls.Load() == 2 {
					panic("handler bug")
				}
				return errors.New("cannot digest poison")
			}
			if e.Type == "Good" {
				handledGood.Add(1)
			}
			return nil
		}})
	var info events.SubscriptionInfo
	eventually(t, 30*time.Second, "the subscription parks", func() (bool, error) {
		var err error
		info, err = store.SubscriptionGet(ctx, "fragile")
		if errors.Is(err, events.ErrSubscriptionNotFound) {
			return false, nil
		}
		return info.Parked, err
	})
	if info.Position != 2 || info.FailedPosition != 3 || info.Attempts != 3 || !strings.Contains(info.LastError, "cannot digest poison") {
		t.Errorf("parked subscription %+v: want checkpoint 2, failed at 3 after 3 attempts with the handler's error", info)
	}
	if calls.Load() != 3 {
		t.Errorf("handler ran %d times on the poison event, want 3", calls.Load())
	}
	healed.Store(true)
	if err := store.SubscriptionResume(ctx, "fragile"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the resumed subscription catches up", func() (bool, error) {
		var err error
		info, err = store.SubscriptionGet(ctx, "fragile")
		return info.Position == 5, err
	})
	if info.Parked || info.LastError != "" || info.Attempts != 0 {
		t.Errorf("after catching up: %+v", info)
	}
	if n := handledGood.Load(); n < 4 {
		t.Errorf("good events handled %d times, want at least 4", n)
	}
	all, err := store.SubscriptionList(ctx)
	if err != nil || len(all) != 1 || all[0].Name != "fragile" || all[0].Position != 5 {
		t.Errorf("listing subscriptions: %+v (%v)", all, err)
	}
	if err := store.SubscriptionResume(ctx, "nobody"); !errors.Is(err, events.ErrSubscriptionNotFound) {
		t.Errorf("resuming an unknown subscription: %v", err)
	}
}

// Two consumers of one subscription never handle events at the same time;
// each event is handled once; when the active one stops, the other takes
// over from its checkpoint.
func TestOneActiveConsumer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.NewSized(t, 8)
	store := newStore(t, pool, events.Config{})
	createReadModelIn(ctx, t, pool)
	var inFlight, maxInFlight atomic.Int32
	byConsumer := map[string]*atomic.Int32{"a": {}, "b": {}}
	handler := func(consumer string) events.Handler {
		return func(ctx context.Context, tx pgx.Tx, e events.RecordedEvent) error {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				m := maxInFlight.Load()
				if n <= m || maxInFlight.CompareAndSwap(m, n) {
					break
				}
			}
			byConsumer[consumer].Add(1)
			return project(ctx, tx, e)
		}
	}
	stops := map[string]func(){}
	for _, c := range []string{"a", "b"} {
		sub, err := store.NewSubscription(events.SubscriptionConfig{Name: "shared", ConsumerID: c, Handler: handler(c),
			BatchSize: 10, PollInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		stops[c] = startSub(t, sub)
		t.Cleanup(stops[c])
	}
	for i := range 100 {
		appendTx(ctx, t, store, pool, fmt.Sprintf("shared-%d", i%7), events.Any, ev("E", i))
	}
	eventually(t, time.Minute, "first 100 events handled", func() (bool, error) {
		n, err := seenCount(ctx, pool)
		return n == 100, err
	})
	info, err := store.SubscriptionGet(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	holder := info.Owner
	stops[holder]()
	for i := range 50 {
		appendTx(ctx, t, store, pool, fmt.Sprintf("shared-%d", i%7), events.Any, ev("E", i))
	}
	eventually(t, time.Minute, "the other consumer takes over", func() (bool, error) {
		n, err := seenCount(ctx, pool)
		return n == 150, err
	})
	checkSeen(ctx, t, pool, 150)
	if maxInFlight.Load() != 1 {
		t.Errorf("%d handlers ran at once", maxInFlight.Load())
	}
	other := map[string]string{"a": "b", "b": "a"}[holder]
	if byConsumer[other].Load() < 50 {
		t.Errorf("consumer %s handled %d events after %s stopped, want at least 50", other, byConsumer[other].Load(), holder)
	}
}

// With notifications off, polling alone delivers events.
func TestSubscriptionPollsWithoutNotify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{DisableNotify: true})
	var handled atomic.Int32
	runSub(t, store, events.SubscriptionConfig{Name: "poll", PollInterval: 20 * time.Millisecond,
		Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error {
			handled.Add(1)
			return nil
		}})
	for i := range 5 {
		appendTx(ctx, t, store, pool, "poll-1", events.Any, ev("E", i))
	}
	eventually(t, 30*time.Second, "polling delivers all 5 events", func() (bool, error) {
		return handled.Load() == 5, nil
	})
}

// Resetting a running subscription to 0 makes it handle every event again:
// the way to rebuild a projection.
func TestResetSubscriptionReplays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	for i := 1; i <= 4; i++ {
		appendTx(ctx, t, store, pool, "reset-1", events.Any, ev("Counted", i))
	}
	var handled atomic.Int32
	runSub(t, store, events.SubscriptionConfig{Name: "counter", PollInterval: 20 * time.Millisecond,
		Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { handled.Add(1); return nil }})
	eventually(t, 30*time.Second, "the first pass", func() (bool, error) { return handled.Load() == 4, nil })
	if err := store.SubscriptionReset(ctx, "counter", 0); err != nil {
		t.Fatal(err)
	}
	// The handler runs before its batch commits the checkpoint.
	eventually(t, 30*time.Second, "the replay", func() (bool, error) {
		info, err := store.SubscriptionGet(ctx, "counter")
		return handled.Load() == 8 && info.Position == 4, err
	})
	if err := store.SubscriptionReset(ctx, "nobody", 0); !errors.Is(err, events.ErrSubscriptionNotFound) {
		t.Errorf("reset of an unknown subscription: %v", err)
	}
	if err := store.SubscriptionReset(ctx, "counter", -1); !errors.Is(err, events.ErrInvalidArgument) {
		t.Errorf("reset to a negative position: %v", err)
	}
}
