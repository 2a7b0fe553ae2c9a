package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
)

// caughtUpOrders leaves a subscription orders-view to category order that
// handled both order events (positions 1 and 2), then two events of
// category cart (3 and 4), which it never reads.
func caughtUpOrders(t *testing.T) (env map[string]string, pool *pgxpool.Pool, store *events.Store) {
	t.Helper()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool = testdb.Open(t, url)
	store, err := events.NewStore(pool, events.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	appendEvents(t, store, pool, "order-1", "OrderPlaced", "OrderPaid")
	sub, err := store.NewSubscription(events.SubscriptionConfig{Name: "orders-view", Category: "order", PollInterval: 10 * time.Millisecond,
		Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	subCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = sub.Run(subCtx); close(done) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if info, err := store.SubscriptionGet(ctx, "orders-view"); err == nil && info.Position == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("subscription did not catch up")
		}
	}
	stop()
	<-done
	appendEvents(t, store, pool, "cart-9", "ItemAdded", "ItemRemoved")
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"DATABASE_URL": url}, pool, store
}

// subscriptionsJSON runs a subscriptions command with --json.
func subscriptionsJSON(t *testing.T, env map[string]string, args ...string) []subscriptionStats {
	t.Helper()
	code, out, errOut := keel(t, env, append([]string{"--json", "subscriptions"}, args...)...)
	var subs []subscriptionStats
	if err := json.Unmarshal([]byte(out), &subs); code != exitOK || err != nil || len(subs) != 1 {
		t.Fatalf("subscriptions %v: exit %d, %v, %s\n%s", args, code, err, errOut, out)
	}
	return subs
}

// A subscription to one category is behind by the events of that category
// past its checkpoint, in subscriptions list as in stats.
func TestSubscriptionLagCountsItsCategory(t *testing.T) {
	t.Parallel()
	env, _, _ := caughtUpOrders(t)
	if subs := subscriptionsJSON(t, env, "list"); subs[0].Position != 2 || subs[0].Behind != 0 {
		t.Errorf("subscriptions list --json: %+v, want position 2 and 0 behind", subs[0])
	}
	code, out, _ := keel(t, env, "subscriptions", "list")
	if code != exitOK || !strings.Contains(flatten(out), "orders-view order active 2 0 -") {
		t.Errorf("subscriptions list: exit %d\n%s", code, out)
	}
	code, out, _ = keel(t, env, "--json", "stats")
	var st statsView
	if err := json.Unmarshal([]byte(out), &st); code != exitOK || err != nil || len(st.Subscriptions) != 1 || st.Subscriptions[0].Behind != 0 {
		t.Errorf("stats: exit %d, %v, %+v", code, err, st.Subscriptions)
	}
}

// Resuming a parked subscription clears the failure list and stats print:
// the error they showed is no longer the current one.
func TestSubscriptionResumeClearsItsError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, pool, store := caughtUpOrders(t)
	// The state three failed attempts at an event leave, set directly.
	if _, err := pool.Exec(ctx, `UPDATE keel.subscriptions SET status = 'parked', attempts = 3, last_error = 'projection: boom',
		failed_position = 3, retry_at = now() WHERE name = 'orders-view'`); err != nil {
		t.Fatal(err)
	}
	if subs := subscriptionsJSON(t, env, "list"); subs[0].Status != "parked" || subs[0].LastError != "projection: boom" {
		t.Fatalf("parked subscription: %+v", subs[0])
	}
	if subs := subscriptionsJSON(t, env, "resume", "orders-view"); subs[0].Status != "active" || subs[0].LastError != "" {
		t.Errorf("subscriptions resume: %+v, want active with no error", subs[0])
	}
	for _, args := range [][]string{{"subscriptions", "list"}, {"stats"}} {
		if code, out, _ := keel(t, env, args...); code != exitOK || strings.Contains(out, "boom") || strings.Contains(out, "parked") {
			t.Errorf("keel %v after resume: exit %d\n%s", args, code, out)
		}
	}
	info, err := store.SubscriptionGet(ctx, "orders-view")
	if err != nil || info.Parked || info.LastError != "" || info.FailedPosition != 0 || info.Attempts != 0 {
		t.Errorf("after resume: %+v, %v", info, err)
	}
}
