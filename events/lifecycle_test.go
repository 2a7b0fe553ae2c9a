package events_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/listener"
)

// A started subscription handles events in the background; Stop lets the
// batch in hand commit and ends it, a second Start while it runs is
// refused, and after Stop it starts again from its checkpoint. The
// sequencer has the same lifecycle.
func TestSubscriptionStartStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	var handled atomic.Int64
	sub, err := store.NewSubscription(events.SubscriptionConfig{Name: "started", PollInterval: 10 * time.Millisecond,
		Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { handled.Add(1); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.Start(ctx); !errors.Is(err, events.ErrStarted) {
		t.Errorf("second sequencer Start = %v, want ErrStarted", err)
	}
	if err := sub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(ctx); !errors.Is(err, events.ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	appendTx(ctx, t, store, pool, "s-1", events.Any, ev("E", 1))
	eventually(t, 30*time.Second, "the first event handled", func() (bool, error) { return handled.Load() == 1, nil })
	if err := sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	appendTx(ctx, t, store, pool, "s-1", events.Any, ev("E", 2))
	if err := sub.Start(ctx); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	eventually(t, 30*time.Second, "the second event handled", func() (bool, error) { return handled.Load() == 2, nil })
	if err := sub.StopAndCancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := handled.Load(); got != 2 {
		t.Errorf("%d events handled, want each of 2 once", got)
	}
}

// A subscription whose pool is closed stops with an error saying so, run
// blocking or started in the background. (Its LISTEN connection comes
// from a pool of its own here: pool.Close waits for the connection a
// running listener holds, which is why keel.Client stops every component
// before a service closes its pool.)
func TestSubscriptionClosedPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool := testdb.OpenSized(t, url, 4)
	store := newStore(t, pool, events.Config{Listener: listener.New(testdb.OpenSized(t, url, 1), nil)})
	var handled atomic.Int64
	newSub := func(name string) *events.Subscription {
		sub, err := store.NewSubscription(events.SubscriptionConfig{Name: name, PollInterval: 10 * time.Millisecond,
			Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { handled.Add(1); return nil }})
		if err != nil {
			t.Fatal(err)
		}
		return sub
	}
	blocking, background := newSub("blocking"), newSub("background")
	// The pool closes under a subscription seen running: it handled an
	// event.
	appendTx(ctx, t, store, pool, "c-1", events.Any, ev("E", 1))
	done := make(chan error, 1)
	go func() { done <- blocking.Run(ctx) }()
	eventually(t, 30*time.Second, "the event handled", func() (bool, error) { return handled.Load() == 1, nil })
	pool.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("Run after pool.Close = %v, want a closed-pool error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of pool.Close")
	}
	if err := background.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := background.Stop(ctx); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Stop of a subscription on a closed pool = %v, want a closed-pool error", err)
	}
}
