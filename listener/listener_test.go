package listener_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/notify"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/listener"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func recv(t *testing.T, s *listener.Subscription) string {
	t.Helper()
	select {
	case p := <-s.C:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
		return ""
	}
}

// A notification sent in a transaction reaches every subscriber of its
// channel on commit, and none when rolled back.
func TestListenerDeliversOnCommit(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l := listener.New(pool, nil)
	go func() { _ = l.Run(ctx) }()
	a, b := l.Subscribe("keel_test", 8), l.Subscribe("keel_test", 8)
	other := l.Subscribe("keel_other", 8)
	listening(t, a, b, other)

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.New(tx).Notify(ctx, db.NotifyParams{Channel: "keel_test", Payload: "rolled-back"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return db.New(tx).Notify(ctx, db.NotifyParams{Channel: "keel_test", Payload: "committed"})
	}); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*listener.Subscription{"a": a, "b": b} {
		if got := recv(t, s); got != "committed" {
			t.Errorf("subscriber %s got %q, want the committed payload", name, got)
		}
	}
	select {
	case p := <-other.C:
		t.Errorf("subscriber of another channel got %q", p)
	default:
	}
}

// A subscriber is told when its channel is first listened, on a channel
// subscribed before the connection listens and on one subscribed while it
// does: what was sent before did not reach it. A subscriber of a channel
// already listened is not told again.
func TestListenerTellsNewListens(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := db.New(pool).Notify(ctx, db.NotifyParams{Channel: "keel_early", Payload: "before any listen"}); err != nil {
		t.Fatal(err)
	}
	l := listener.New(pool, nil)
	early := l.Subscribe("keel_early", 8)
	go func() { _ = l.Run(ctx) }()
	if got := recv(t, early); got != listener.Reconnected {
		t.Fatalf("first payload %q, want listener.Reconnected", got)
	}
	late := l.Subscribe("keel_late", 8)
	if got := recv(t, late); got != listener.Reconnected {
		t.Fatalf("first payload of a later channel %q, want listener.Reconnected", got)
	}
	for _, ch := range []string{"keel_early", "keel_late"} {
		if err := db.New(pool).Notify(ctx, db.NotifyParams{Channel: ch, Payload: "after"}); err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range map[string]*listener.Subscription{"early": early, "late": late} {
		if got := recv(t, s); got != "after" {
			t.Errorf("%s subscriber got %q next, want the notification", name, got)
		}
	}
}

// After the connection is killed, the Listener reconnects, tells its
// subscribers, and delivers again.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l := listener.New(pool, nil)
	go func() { _ = l.Run(ctx) }()
	s := l.Subscribe("keel_reconnect", 8)
	listening(t, s)
	if _, err := pool.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"); err != nil {
		t.Fatal(err)
	}
	listening(t, s)
	if err := db.New(pool).Notify(ctx, db.NotifyParams{Channel: "keel_reconnect", Payload: "again"}); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, s); got != "again" {
		t.Errorf("after reconnect got %q", got)
	}
}

// Components that share a Listener share its one connection: it opens with
// the first Run, serves every subscriber while any Run lasts, and closes when
// the last Run's context ends.
func TestListenerSharedByRuns(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	l := listener.New(pool, nil)
	jobs, events := l.Subscribe("keel_jobs", 8), l.Subscribe("keel_events", 8)
	runs := make([]context.CancelFunc, 3)
	done := make([]chan struct{}, 3)
	for i := range runs {
		var runCtx context.Context
		runCtx, runs[i] = context.WithCancel(ctx)
		done[i] = make(chan struct{})
		go func() {
			defer close(done[i])
			_ = l.Run(runCtx)
		}()
	}
	t.Cleanup(func() {
		for _, stop := range runs {
			stop()
		}
	})
	waitDelivered(t, pool, jobs, "keel_jobs")
	waitDelivered(t, pool, events, "keel_events")
	if n := listenSessions(t, pool); n != 1 {
		t.Errorf("three Runs of one Listener hold %d listening connections, want 1", n)
	}

	runs[0]()
	runs[1]()
	<-done[0]
	<-done[1]
	drain(jobs, events)
	for _, ch := range []string{"keel_jobs", "keel_events"} {
		if err := db.New(pool).Notify(ctx, db.NotifyParams{Channel: ch, Payload: "still here"}); err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range map[string]*listener.Subscription{"jobs": jobs, "events": events} {
		got := recv(t, s)
		for got == "ping" { // a late probe from waitDelivered
			got = recv(t, s)
		}
		if got != "still here" {
			t.Errorf("%s subscriber, with one Run left, got %q", name, got)
		}
	}

	runs[2]()
	<-done[2]
	deadline := time.Now().Add(10 * time.Second)
	for listenSessions(t, pool) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the listening connection is still open after the last Run returned")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A later Run opens the connection again.
	again, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	go func() { _ = l.Run(again) }()
	waitDelivered(t, pool, jobs, "keel_jobs")
}

// A burst of writers sends one notification per interval, and the last of the
// burst still arrives as a trailing notification.
func TestDebouncerCoalescesBurst(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l := listener.New(pool, nil)
	go func() { _ = l.Run(ctx) }()
	s := l.Subscribe("keel_burst", 256)
	listening(t, s)

	d := notify.NewDebouncer(pool, time.Hour, nil)
	t.Cleanup(d.Close)
	for i := range 50 {
		if err := d.Notify(ctx, pool, "keel_burst", string(rune('a'+i%26))); err != nil {
			t.Fatal(err)
		}
	}
	if got := recv(t, s); got != "a" {
		t.Errorf("first notification %q, want a", got)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(s.C); n != 0 {
		t.Errorf("%d more notifications within the interval, want 0", n)
	}

	short := notify.NewDebouncer(pool, 20*time.Millisecond, nil)
	t.Cleanup(short.Close)
	for _, p := range []string{"x", "y", "z"} {
		if err := short.Notify(ctx, pool, "keel_burst", p); err != nil {
			t.Fatal(err)
		}
	}
	if got := recv(t, s); got != "x" {
		t.Errorf("got %q, want x", got)
	}
	if got := recv(t, s); got != "z" {
		t.Errorf("trailing notification %q, want the last payload z", got)
	}
}

// listening waits until each subscription is told its channel is listened
// on a new connection.
func listening(t *testing.T, subs ...*listener.Subscription) {
	t.Helper()
	for _, s := range subs {
		for recv(t, s) != listener.Reconnected {
		}
	}
}

// listenSessions counts this database's sessions whose last statement was a
// LISTEN: the Listeners' connections.
func listenSessions(t *testing.T, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitDelivered notifies channel until s receives it, then drains s.
func waitDelivered(t *testing.T, pool *pgxpool.Pool, s *listener.Subscription, channel string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := db.New(pool).Notify(context.Background(), db.NotifyParams{Channel: channel, Payload: "ping"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-s.C:
			drain(s)
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing delivered on %s within 10s", channel)
		}
	}
}

// drain waits for stray deliveries, then empties the subscriptions.
func drain(subs ...*listener.Subscription) {
	time.Sleep(100 * time.Millisecond)
	for _, s := range subs {
		for len(s.C) > 0 {
			<-s.C
		}
	}
}
