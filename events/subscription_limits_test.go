package events_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// A closed store refuses to start or change subscriptions and to sequence,
// and a nil store is an error rather than a panic.
func TestClosedStoreRefusesSubscriptionWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	store.Close()
	noop := func(context.Context, pgx.Tx, events.RecordedEvent) error { return nil }
	var nilStore *events.Store
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"Sequence", func() error { return store.Sequence(ctx) }, events.ErrClosed},
		{"SubscriptionResume", func() error { return store.SubscriptionResume(ctx, "any") }, events.ErrClosed},
		{"SubscriptionReset", func() error { return store.SubscriptionReset(ctx, "any", 0) }, events.ErrClosed},
		{"Subscription", func() error {
			_, err := store.NewSubscription(events.SubscriptionConfig{Name: "late", Handler: noop})
			return err
		}, events.ErrClosed},
		{"Subscription on a nil store", func() error {
			_, err := nilStore.NewSubscription(events.SubscriptionConfig{Name: "s", Handler: noop})
			return err
		}, events.ErrInvalidArgument},
		{"Sequence on a nil store", func() error { return nilStore.Sequence(ctx) }, events.ErrInvalidArgument},
		{"Run", func() error { return store.Run(ctx) }, events.ErrClosed},
		{"Run on a nil store", func() error { return nilStore.Run(ctx) }, events.ErrInvalidArgument},
		{"subscription without a handler", func() error {
			_, err := newStore(t, pool, events.Config{}).NewSubscription(events.SubscriptionConfig{Name: "s"})
			return err
		}, events.ErrInvalidArgument},
	} {
		before := storeState(ctx, t, pool)
		if err := noPanic(tc.call); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if after := storeState(ctx, t, pool); after != before {
			t.Errorf("%s changed rows: %v, then %v", tc.name, before, after)
		}
	}
}

// A subscription and a sequencer running when their store is closed stop
// with ErrClosed, and a subscription run after refuses to start.
func TestClosedStoreEndsSubscriptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	started := make(chan struct{})
	var once sync.Once
	// Polling, not only notified: the append may commit before the
	// subscription's LISTEN is in place.
	sub, err := store.NewSubscription(events.SubscriptionConfig{Name: "closing", PollInterval: 20 * time.Millisecond,
		Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error {
			once.Do(func() { close(started) })
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx) }()
	sequencing := make(chan error, 1)
	go func() { sequencing <- store.Run(ctx) }()
	appendTx(ctx, t, store, pool, "closing-1", events.NoStream, ev("A", 1))
	<-started
	store.Close()
	if err := <-done; !errors.Is(err, events.ErrClosed) {
		t.Fatalf("running subscription ended with %v, want ErrClosed", err)
	}
	if err := <-sequencing; !errors.Is(err, events.ErrClosed) {
		t.Fatalf("running sequencer ended with %v, want ErrClosed", err)
	}
	if err := sub.Run(ctx); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("Run on a closed store: %v, want ErrClosed", err)
	}
}

// A subscription's name, category and consumer id are checked when it is
// made, not when its row is first written.
func TestSubscriptionConfigRefusesWhatPostgresCannotStore(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	noop := func(context.Context, pgx.Tx, events.RecordedEvent) error { return nil }
	for _, tc := range []struct {
		name  string
		cfg   events.SubscriptionConfig
		field string
		words []string
	}{
		{"empty name", events.SubscriptionConfig{}, "subscription name", []string{"empty"}},
		{"name with NUL", events.SubscriptionConfig{Name: "proj\x00"}, "subscription name", []string{"NUL"}},
		{"name not UTF-8", events.SubscriptionConfig{Name: "proj\xff"}, "subscription name", []string{"UTF-8"}},
		{"name too long", events.SubscriptionConfig{Name: long256}, "subscription name", []string{"255"}},
		{"category with NUL", events.SubscriptionConfig{Name: "p", Category: "order\x00"}, "subscription category", []string{"NUL"}},
		{"category not UTF-8", events.SubscriptionConfig{Name: "p", Category: "\xe2\x82"}, "subscription category", []string{"UTF-8"}},
		{"category too long", events.SubscriptionConfig{Name: "p", Category: long1025}, "subscription category", []string{"1024"}},
		{"category with '-'", events.SubscriptionConfig{Name: "p", Category: "order-1"}, "", []string{"'-'"}},
		{"consumer id with NUL", events.SubscriptionConfig{Name: "p", ConsumerID: "host\x00"}, "consumer id", []string{"NUL"}},
		{"consumer id not UTF-8", events.SubscriptionConfig{Name: "p", ConsumerID: "host\xff"}, "consumer id", []string{"UTF-8"}},
		{"MaxAttempts beyond int32", events.SubscriptionConfig{Name: "p", MaxAttempts: math.MaxInt32 + 1}, "", []string{"MaxAttempts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Handler = noop
			_, err := store.NewSubscription(cfg)
			if !errors.Is(err, events.ErrInvalidArgument) {
				t.Fatalf("got %v, want ErrInvalidArgument", err)
			}
			if tc.field != "" {
				wantField(t, err, tc.field, tc.words...)
			} else if !strings.Contains(err.Error(), tc.words[0]) {
				t.Errorf("%v does not say %q", err, tc.words[0])
			}
		})
	}
	ctx := context.Background()
	for _, name := range []string{"", "a\x00", "\xff", long256} {
		if _, err := store.SubscriptionGet(ctx, name); !errors.Is(err, events.ErrInvalidArgument) {
			t.Errorf("SubscriptionGet(%.20q): %v", name, err)
		}
		if err := store.SubscriptionResume(ctx, name); !errors.Is(err, events.ErrInvalidArgument) {
			t.Errorf("SubscriptionResume(%.20q): %v", name, err)
		}
		if err := store.SubscriptionReset(ctx, name, 0); !errors.Is(err, events.ErrInvalidArgument) {
			t.Errorf("SubscriptionReset(%.20q): %v", name, err)
		}
	}
	// At the limits a subscription runs.
	runSub(t, store, events.SubscriptionConfig{Name: long256[1:], Category: long1025[1:], Handler: noop, PollInterval: 10 * time.Millisecond})
	eventually(t, 10*time.Second, "the subscription's row is written", func() (bool, error) {
		info, err := store.SubscriptionGet(ctx, long256[1:])
		if errors.Is(err, events.ErrSubscriptionNotFound) {
			return false, nil
		}
		return info.Category == long1025[1:], err
	})
}

// A handler failure whose text Postgres cannot store (an error quoting a NUL
// byte or invalid UTF-8, a panic with such a value, the error of an inline
// projection run by an Append in the handler) and a handler that leaves its
// transaction failed yet returns nil are each recorded in the subscription's
// row, retried with backoff and parked at the event at fault, never looped
// on.
func TestSubscriptionRecordsUnstorableFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	projecting := newStore(t, pool, events.Config{InlineProjections: []events.InlineProjection{
		func(context.Context, keeltype.DBTX, []events.RecordedEvent) error {
			return errors.New("projection of \"\xff\x00\" failed")
		},
	}})
	for i := 1; i <= 4; i++ {
		typ := "Good"
		if i == 3 {
			typ = "Poison"
		}
		appendTx(ctx, t, store, pool, "poison-1", events.Any, ev(typ, i))
	}
	for _, tc := range []struct {
		name   string
		poison func(ctx context.Context, tx pgx.Tx) error
		want   string
	}{
		{"error with NUL and invalid UTF-8", func(context.Context, pgx.Tx) error {
			return errors.New("bad byte \x00 and \xff in \"order-\x001\"")
		}, "bad byte \uFFFD and \uFFFD in \"order-\uFFFD1\""},
		{"panic with NUL", func(context.Context, pgx.Tx) error { panic("nul \x00 here \xc3") }, "handler panicked: nul \uFFFD here \uFFFD"},
		{"inline projection error", func(ctx context.Context, tx pgx.Tx) error {
			_, err := projecting.Append(ctx, tx, "side-1", events.Any, ev("Side", 1))
			return err
		}, "projection of \"\uFFFD\uFFFD\" failed"},
		{"error of 100 kB", func(context.Context, pgx.Tx) error {
			return errors.New(strings.Repeat("é", 50_000) + "\x00")
		}, strings.Repeat("é", 1000)},
		{"failed transaction, nil returned", func(ctx context.Context, tx pgx.Tx) error {
			_, _ = tx.Exec(ctx, "SELECT 1/0")
			return nil
		}, "SQLSTATE 25P02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := "poisoned " + tc.name
			var calls atomic.Int32
			runSub(t, store, events.SubscriptionConfig{Name: name, PollInterval: 20 * time.Millisecond,
				MaxAttempts: 3, RetryPolicy: keeltype.ExponentialBackoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
				Handler: func(ctx context.Context, tx pgx.Tx, e events.RecordedEvent) error {
					if e.Type != "Poison" {
						return nil
					}
					calls.Add(1)
					return tc.poison(ctx, tx)
				}})
			var info events.SubscriptionInfo
			eventually(t, 20*time.Second, "the subscription parks", func() (bool, error) {
				var err error
				info, err = store.SubscriptionGet(ctx, name)
				if errors.Is(err, events.ErrSubscriptionNotFound) {
					return false, nil
				}
				return info.Parked, err
			})
			if info.Position != 2 || info.FailedPosition != 3 || info.Attempts != 3 || !strings.Contains(info.LastError, tc.want) {
				t.Errorf("parked %+v: want checkpoint 2, failed at 3 after 3 attempts with %q in the error", info, tc.want)
			}
			if len(info.LastError) > validate.MaxErrorText || !utf8.ValidString(info.LastError) {
				t.Errorf("last_error of %d bytes, valid UTF-8 %v; want at most 16 KiB of UTF-8", len(info.LastError), utf8.ValidString(info.LastError))
			}
			if n := calls.Load(); n != 3 {
				t.Errorf("the handler ran %d times on the poison event, want 3", n)
			}
		})
	}
}
