package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
)

// syncBuffer lets the test read what a running command has printed so far.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func appendEvents(t *testing.T, store *events.Store, pool interface {
	Begin(context.Context) (pgx.Tx, error)
}, stream string, types ...string) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	evs := make([]events.EventData, len(types))
	for i, typ := range types {
		evs[i] = events.EventData{Type: typ, Data: []byte(`{"n":1}`)}
	}
	if _, err := store.Append(ctx, tx, stream, events.Any, evs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestEventsTailAndSubscriptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool := testdb.Open(t, url)
	store, err := events.NewStore(pool, events.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	appendEvents(t, store, pool, "order-1", "OrderPlaced", "OrderPaid")
	appendEvents(t, store, pool, "cart-9", "ItemAdded")
	env := map[string]string{"DATABASE_URL": url}

	code, out, errOut := keel(t, env, "events", "tail")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) != 4 || flatten(lines[0]) != "POSITION RECORDED STREAM@VERSION TYPE DATA" ||
		!strings.Contains(flatten(lines[1]), "order-1@1 OrderPlaced") || !strings.Contains(flatten(lines[3]), "cart-9@1 ItemAdded") {
		t.Fatalf("events tail: exit %d %s\n%s", code, errOut, out)
	}
	code, out, _ = keel(t, env, "--json", "events", "tail", "--category", "order", "--from", "1")
	var v eventView
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &v); code != exitOK || err != nil || v.Type != "OrderPaid" || v.Position != 2 {
		t.Errorf("tail --category --from 1: exit %d, %v, %q", code, err, out)
	}

	// --follow prints what is appended while it runs.
	followCtx, stop := context.WithCancel(ctx)
	var buf syncBuffer
	done := make(chan int)
	go func() {
		done <- run(followCtx, []string{"events", "tail", "--from", "3", "--follow"}, &buf, &buf, func(k string) string { return env[k] })
	}()
	appendEvents(t, store, pool, "order-2", "OrderPlaced")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(flatten(buf.String()), "order-2@1 OrderPlaced") {
		if time.Now().After(deadline) {
			t.Fatalf("follow did not print the new event:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if code := <-done; code != exitOK || strings.Contains(buf.String(), "order-1") {
		t.Errorf("follow: exit %d, printed events before --from:\n%s", code, buf.String())
	}

	sub, err := store.NewSubscription(events.SubscriptionConfig{Name: "orders-view", Category: "order", PollInterval: 20 * time.Millisecond,
		Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	subCtx, stopSub := context.WithCancel(ctx)
	subDone := make(chan struct{})
	go func() { _ = sub.Run(subCtx); close(subDone) }()
	deadline = time.Now().Add(30 * time.Second)
	for {
		info, err := store.SubscriptionGet(ctx, "orders-view")
		if err == nil && info.Position == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription did not catch up: %+v %v", info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopSub()
	<-subDone
	code, out, _ = keel(t, env, "subscriptions", "list")
	if code != exitOK || !strings.Contains(strings.Join(strings.Fields(out), " "), "orders-view order active 4 0 -") {
		t.Errorf("subscriptions list: exit %d\n%s", code, out)
	}
	// Reset to 0, it is behind by the events of its category: three of four.
	code, out, _ = keel(t, env, "--json", "subscriptions", "reset", "orders-view")
	var subs []struct {
		Name     string `json:"name"`
		Position int64  `json:"position"`
		Behind   int64  `json:"behind"`
	}
	if err := json.Unmarshal([]byte(out), &subs); code != exitOK || err != nil || len(subs) != 1 || subs[0].Position != 0 || subs[0].Behind != 3 {
		t.Errorf("subscriptions reset: exit %d, %v, %+v", code, err, subs)
	}

	failures := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"subscriptions", "reset", "nobody"}, exitError, "nobody"},
		{[]string{"subscriptions", "reset"}, exitUsage, "keel: subscriptions reset: needs a subscription name"},
		{[]string{"events", "tail", "--limit", "0"}, exitUsage, "--limit must be at least 1"},
		{[]string{"events", "head"}, exitUsage, `keel: events: unknown subcommand "head"; try tail`},
	}
	for _, tc := range failures {
		code, _, errOut := keel(t, env, tc.args...)
		if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
			t.Errorf("keel %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.wantCode, tc.wantErr)
		}
	}
}
